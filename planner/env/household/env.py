"""A household game as an environment: TextWorld's PDDL engine is the real world.

:class:`HouseholdEnvironment` plays a :class:`~planner.env.household.generate.Game`:

- **real steps** through TextWorld's ``PddlEnv`` (``engine="textworld"``, the default: the
  ``household`` extra), which runs the ``alfworld`` package's own domain and grammar and
  answers each command with its text; a command the engine does not admit in the current state
  changes nothing ("Nothing happens.") and is reported with ``applicable=False``.
  ``engine="planner"`` steps the planner's own grounding instead (no text; for fast data
  collection, and to check the two engines agree);
- **state**: the game's facts, in Lisp form (``(inreceptacle mug_1 cabinet_1)``), the fixed
  ones (types, what holds what, properties) with the changing ones (where the agent, items
  and receptacles stand, open, held, hot, cool, clean, sliced, switched on); the engine's
  bookkeeping fact ``checked`` is left out. The text the engine answered is in
  ``info["observation"]`` of ``reset`` and of every step, and in :attr:`observation`;
- **actions**: the grammar's command templates as Lisp forms — ``(go cabinet_1)``,
  ``(open cabinet_1)``, ``(take mug_1 countertop_1)``, ``(move mug_1 cabinet_1)``,
  ``(heat mug_1 microwave_1)``, ``(use desklamp_1)``, … (:meth:`command` gives the text,
  ``go to cabinet_1``). Candidates: every command some grounding of the domain could ever
  apply, from the fixed facts alone (not the engine's list of admissible commands, which would
  be an applicability oracle). A command that would change nothing (going where the agent
  already is) is not applicable, as the engine answers it;
- **goal**: the task's goal as the domain writes it (an existential goal grounded over the
  game's objects), reward 1.0 on the step that reaches it;
- ``simulate``: the exact outcome by the planner's own grounding of the planning copy of the
  domain (:func:`~planner.env.household.alfred.planning_domain`), so the exact model can stand
  in for a learned one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from types import MappingProxyType
from typing import Any

from planner.env.base import StepResult
from planner.env.household.alfred import EXTRA_HINT, grammar_text, planning_domain
from planner.env.household.generate import Game
from planner.errors import ConfigError, EnvironmentStepError, UnknownActionError
from planner.types import Action, Prediction, State

__all__ = ["ENGINES", "HouseholdEnvironment", "command_templates"]

ENGINES = ("textworld", "planner")
"""What steps the real game: TextWorld's PDDL engine, or the planner's own grounding."""
GOAL_REWARD = 1.0
BOOKKEEPING = ("checked",)
"""Engine facts that are not part of the state (besides the engine's negated atoms, ``not_…``)."""


@cache
def command_templates() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Domain action (lower case) → (command template, the action's parameters in order), for
    the actions of the planning copy of the domain; the template's slots are parameter
    names (``"take {o} from {r}"``)."""
    templates: dict[str, str] = {}
    for name, template in re.findall(r"action\s+(\w+)\s*\{\s*template\s*::\s*\"([^\"]*)\"", grammar_text()):
        template = re.sub(r"\[\{(\w+)\.name\s*\|[^\]]*\]", r"{\1}", template)  # go to [{r.name | …}]
        templates[name.lower()] = template
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, params in re.findall(r"\(:action\s+(\S+)\s+:parameters\s*\(([^)]*)\)", planning_domain()):
        key = name.lower()
        if key not in templates:
            raise ConfigError(f"the household grammar has no command template for the domain's action {name}")
        found[key] = (templates[key], tuple(p[1:].lower() for p in re.findall(r"\?\w+", params)))
    return found


def _command(op_name: str) -> tuple[str, str]:
    """A ground operator ``(pickupobject agent1 loc_1 mug_1 countertop_1)`` → its command as
    a Lisp form and as text: ``("(take mug_1 countertop_1)", "take mug_1 from countertop_1")``."""
    name, *args = op_name.strip("()").split()
    template, params = command_templates()[name]
    values = dict(zip(params, args, strict=True))
    slots = re.findall(r"\{(\w+)\}", template)
    lowered = {k.lower(): v for k, v in values.items()}
    text = re.sub(r"\{(\w+)\}", lambda m: lowered[m.group(1).lower()], template)
    verb = template.split()[0]
    return f"({' '.join([verb, *(lowered[s.lower()] for s in slots)])})", text


def _fact(name: str, args: Sequence[str]) -> str:
    return f"({' '.join([name.lower(), *(a.lower() for a in args)])})"


class HouseholdEnvironment:
    """A household game (see the module's description).

    Args:
        game: the game to play.
        engine: ``"textworld"`` (real steps by TextWorld's PDDL engine) or ``"planner"``.
        max_steps: truncate the episode after this many steps (``None``: never).

    Raises :class:`ConfigError` naming the ``household`` extra when the engine is not
    installed, and an unknown engine.
    """

    def __init__(self, game: Game, *, engine: str = "textworld", max_steps: int | None = None) -> None:
        from planner.env.pddl import environment_from_text

        if engine not in ENGINES:
            raise ConfigError(f"unknown household engine {engine!r}; known: {', '.join(ENGINES)}")
        self.game = game
        self.engine = engine
        self.max_steps = max_steps
        self.planning = environment_from_text(planning_domain(), game.problem, name="household")
        self._by_command: dict[str, list[str]] = {}
        self._text: dict[str, str] = {}
        for op in self.planning.task.operators:
            lisp, text = _command(op)
            self._by_command.setdefault(lisp, []).append(op)
            self._text[lisp] = text
        self._actions = tuple(Action(c) for c in sorted(self._by_command))
        self.objects = tuple(sorted({a for c in self._by_command for a in c.strip("()").split()[1:]}
                                    | {a for f in self.planning.task.init.facts for a in f.strip("()").split()[1:]}))
        self._tw: Any = None
        if engine == "textworld":
            self._tw = _textworld_env(game)
        self._state = self.planning.task.init
        self.observation = ""
        self._steps = 0

    # -- the Environment protocol ---------------------------------------------------------
    @property
    def goal(self) -> Any:
        """The task's goal (:class:`~planner.types.FactGoal` or a grounded formula goal)."""
        return self.planning.goal

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        """Start the game again (games are deterministic; ``seed`` is accepted and ignored)."""
        self._steps = 0
        if self._tw is not None:
            game_state = self._tw.reset()
            self._state = self._engine_state(game_state)
            self.observation = str(game_state.feedback)
        else:
            self._state = self.planning.task.init
            self.observation = ""
        info = {"observation": self.observation, "task": self.game.task, "task_type": self.game.task_type,
                "scene": self.game.scene}
        return self._state, info

    def step(self, action: Action) -> StepResult:
        """Play ``action`` (a Lisp-form command); :class:`UnknownActionError` for one that is
        no command of this game."""
        if action.name not in self._by_command:
            raise UnknownActionError(f"unknown household command {action.name!r}: not a command of this game (for "
                                     f"example {', '.join(a.name for a in self._actions[:3])})")
        before = self._state
        if self._tw is not None:
            game_state, score, _done = self._tw.step(self._text[action.name])
            self._state = self._engine_state(game_state)
            self.observation = str(game_state.feedback)
            applicable = self.observation != "Nothing happens." or self._state != before
            won = bool(game_state["won"])
            reward = float(score) if won else 0.0
        else:
            pred = self.simulate(before, action)
            self._state, applicable, won, reward = pred.next_state, pred.applicable, pred.done, pred.reward
            self.observation = ""
        self._steps += 1
        truncated = self.max_steps is not None and self._steps >= self.max_steps and not won
        return StepResult(state=self._state, reward=reward, terminated=won, truncated=truncated,
                          info=MappingProxyType({"observation": self.observation}), applicable=applicable)

    def candidate_actions(self, state: State) -> Sequence[Action]:
        """Every command of the game (see the module's description), sorted."""
        return self._actions

    # -- the Simulator protocol -----------------------------------------------------------
    def simulate(self, state: State, action: Action) -> Prediction:
        """The exact outcome of ``action`` at ``state`` by the planner's grounding."""
        names = self._by_command.get(action.name)
        if names is None:
            raise UnknownActionError(f"unknown household command {action.name!r}: not a command of this game")
        for name in names:
            op = self.planning.task.operators[name]
            if op.applicable(state.facts):
                nxt = State(op.apply(state.facts))
                if nxt == state:  # "go to" where the agent stands: the engine refuses it
                    continue
                done = self.goal.satisfied(nxt)
                return Prediction(applicable=True, next_state=nxt, reward=GOAL_REWARD if done else 0.0, done=done)
        return Prediction(applicable=False, next_state=state, reward=0.0, done=False)

    # -- helpers --------------------------------------------------------------------------
    def command(self, action: Action | str) -> str:
        """The command text of a Lisp-form action: ``(take mug_1 countertop_1)`` →
        ``take mug_1 from countertop_1``."""
        name = action.name if isinstance(action, Action) else action
        if name not in self._text:
            raise UnknownActionError(f"unknown household command {name!r}: not a command of this game")
        return self._text[name]

    def distance_heuristic(self, name: str = "ff") -> Any:
        """A PDDL distance heuristic (``"ff"``, ``"add"``, ``"max"``, ``"lmcut"``) of the
        planning copy, over this environment's states: what ``--heuristic auto`` uses."""
        return self.planning.distance_heuristic(name)

    def optimal_plan(self) -> list[Action] | None:
        """A shortest plan, as commands (``None`` when there is none)."""
        plan = self.planning.optimal_plan()
        return None if plan is None else [Action(_command(a.name)[0]) for a in plan]

    def _engine_state(self, game_state: Any) -> State:
        try:
            facts = game_state["facts"]
        except KeyError as exc:
            raise EnvironmentStepError(f"TextWorld's engine gave no facts: {exc}") from None
        return State(frozenset(_fact(p.name, [v.name for v in p.arguments]) for p in facts
                               if p.name.lower() not in BOOKKEEPING and not p.name.lower().startswith("not_")))


def _textworld_env(game: Game) -> Any:
    """TextWorld's ``PddlEnv`` loaded with ``game`` (the package's domain and grammar, the task
    sentence in the grammar)."""
    try:
        import textworld
        from textworld.envs.pddl import PddlEnv
    except ImportError as exc:
        raise ConfigError(f"the household environment's engine needs TextWorld with its PDDL engine "
                          f"({exc.name or exc}): {EXTRA_HINT}, or engine='planner'") from None
    from planner.env.household.alfred import domain_text

    infos = textworld.EnvInfos(facts=True, admissible_commands=False, won=True, feedback=True)
    env = PddlEnv(infos)
    env.load({"pddl_domain": domain_text(), "grammar": grammar_text().replace("UNKNOWN GOAL", game.task),
              "pddl_problem": game.engine_problem})
    return env


def game_json(game: Game) -> Mapping[str, Any]:
    """The game as TextWorld loads it (``game.tw-pddl``'s keys): the package's domain, its grammar
    with the task sentence, the problem, ``solvable`` and a walkthrough (the optimal plan's
    commands)."""
    from planner.env.household.alfred import domain_text

    env = HouseholdEnvironment(game, engine="planner")
    plan = env.optimal_plan() or []
    return {"pddl_domain": domain_text(), "grammar": grammar_text().replace("UNKNOWN GOAL", game.task),
            "pddl_problem": game.engine_problem, "solvable": bool(plan),
            "walkthrough": [env.command(a) for a in plan]}
