"""A household game as an environment: TextWorld's PDDL engine is the real world.

:class:`HouseholdEnvironment` plays a :class:`~planner.env.household.generate.Game`:

- **real steps** through TextWorld's ``PddlEnv`` (``engine="textworld"``, the default: the
  ``household`` extra), which runs the ``alfworld`` package's own domain and grammar and
  answers each command with its text; a command the engine does not admit in the current state
  changes nothing ("Nothing happens.") and is reported with ``applicable=False``.
  ``engine="planner"`` steps the planner's own grounding instead (no text; for fast data
  collection, and to check the two engines agree);
- **state**: the game's facts in a compact form over its receptacles and items only (no
  agent, location or type objects, which a learned model would have to spend placeholders
  on): what changes — ``(at R)`` (the agent stands at receptacle ``R``; no ``at`` fact at the
  start), ``(in O R)``, ``(holding O)``, ``(opened R)``, ``(isclean O)``, ``(ishot O)``,
  ``(iscool O)``, ``(issliced O)``, ``(istoggled O)`` — and what the game fixes:
  ``(fits O R)`` (R's type can hold O's), ``(openable R)``, ``(microwave R)``, ``(fridge R)``,
  ``(sink R)``, and of items ``pickupable``, ``heatable``, ``coolable``, ``cleanable``,
  ``sliceable``, ``toggleable``, ``knife``. It is the engine's state, one for one: the
  engine's facts map to it and back (:meth:`HouseholdEnvironment.compact`,
  :meth:`HouseholdEnvironment.expand`; the engine's bookkeeping ``checked`` aside). The text
  the engine answered is in ``info["observation"]`` of ``reset`` and of every step, and in
  :attr:`HouseholdEnvironment.observation`;
- **actions**: the grammar's command templates as Lisp forms — ``(go cabinet_1)``,
  ``(open cabinet_1)``, ``(take mug_1 countertop_1)``, ``(move mug_1 cabinet_1)``,
  ``(heat mug_1 microwave_1)``, ``(use desklamp_1)``, … (:meth:`command` gives the text,
  ``go to cabinet_1``). Candidates: every command some grounding of the domain could ever
  apply, from the fixed facts alone (not the engine's list of admissible commands, which would
  be an applicability oracle). A command that would change nothing (going where the agent
  already is) is not applicable, as the engine answers it;
- **goal**: the task's goal as the domain writes it (an existential goal grounded over the
  game's objects), in the compact facts; reward 1.0 on the step that reaches it;
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
from planner.env.household.generate import Game, planning_environment
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


RENAMED = {"inreceptacle": "in", "opened": "opened", "isclean": "isclean", "ishot": "ishot", "iscool": "iscool",
           "issliced": "issliced", "istoggled": "istoggled"}
"""Changing facts of the domain kept under a compact name (the arguments stay)."""
DERIVED = ("objectatlocation", "holdsany", "ison")
"""Changing facts of the domain the compact state leaves out: the first two follow from the
others; ``ison`` is never read (no precondition or goal names it) and the engine's translator
drops it, so the engine's state never has it."""
ITEM_PROPERTIES = ("pickupable", "heatable", "coolable", "cleanable", "sliceable", "toggleable")
APPLIANCES = {"microwavetype": "microwave", "fridgetype": "fridge", "sinkbasintype": "sink"}
KNIVES = ("knifetype", "butterknifetype")


class HouseholdEnvironment:
    """A household game (see the module's description).

    Args:
        game: the game to play.
        engine: ``"textworld"`` (real steps by TextWorld's PDDL engine) or ``"planner"``.
        max_steps: truncate the episode after this many steps (``None``: never).

    Raises :class:`ConfigError` naming the ``household`` extra when the engine is not
    installed, and an unknown engine.
    """

    world_model_domain = "household-v0"
    """The domain the shipped household world model records: ``planner solve --env household-v0``
    uses that model when no ``--model`` is named."""

    def __init__(self, game: Game, *, engine: str = "textworld", max_steps: int | None = None) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"unknown household engine {engine!r}; known: {', '.join(ENGINES)}")
        self.game = game
        self.engine = engine
        self.max_steps = max_steps
        self.planning = planning_environment(game.problem)
        self._by_command: dict[str, list[str]] = {}
        self._text: dict[str, str] = {}
        for op in self.planning.task.operators:
            lisp, text = _command(op)
            self._by_command.setdefault(lisp, []).append(op)
            self._text[lisp] = text
        self._actions = tuple(Action(c) for c in sorted(self._by_command))
        self._static_full, self._static = self._statics(self.planning.task.init.facts)
        self.objects = tuple(sorted({*game.receptacles, *game.items}))
        self._goal = _compact_goal(self.planning.goal, self._atom)
        self._tw: Any = None
        if engine == "textworld":
            self._tw = _textworld_env(game)
        self._state = self.compact(self.planning.task.init)
        self.observation = ""
        self._steps = 0

    # -- the Environment protocol ---------------------------------------------------------
    @property
    def goal(self) -> Any:
        """The task's goal over compact facts (:class:`~planner.types.FactGoal`, or a grounded
        formula goal when it has alternatives)."""
        return self._goal

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        """Start the game again (games are deterministic; ``seed`` is accepted and ignored)."""
        self._steps = 0
        if self._tw is not None:
            game_state = self._tw.reset()
            self._state = self._engine_state(game_state)
            self.observation = str(game_state.feedback)
        else:
            self._state = self.compact(self.planning.task.init)
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
        full = self.expand(state).facts
        applied = self._applied(action, full)
        if applied is None:
            return Prediction(applicable=False, next_state=state, reward=0.0, done=False)
        nxt = self.compact(State(applied[1]))
        done = self.goal.satisfied(nxt)
        return Prediction(applicable=True, next_state=nxt, reward=GOAL_REWARD if done else 0.0, done=done)

    def _applied(self, action: Action, full: frozenset[str]) -> tuple[str, frozenset[str]] | None:
        """The ground operator the engine applies for the command ``action`` at the domain's
        facts ``full``, and the facts after it; ``None`` when none applies or it would change
        nothing ("go to" where the agent stands: the engine refuses it).
        :class:`UnknownActionError` for a command of no game."""
        names = self._by_command.get(action.name)
        if names is None:
            raise UnknownActionError(f"unknown household command {action.name!r}: not a command of this game")
        for name in names:
            op = self.planning.task.operators[name]
            if op.applicable(full):
                after = op.apply(full)
                if after != full:
                    return name, after
        return None

    # -- helpers --------------------------------------------------------------------------
    def command(self, action: Action | str) -> str:
        """The command text of a Lisp-form action: ``(take mug_1 countertop_1)`` →
        ``take mug_1 from countertop_1``."""
        name = action.name if isinstance(action, Action) else action
        if name not in self._text:
            raise UnknownActionError(f"unknown household command {name!r}: not a command of this game")
        return self._text[name]

    def render_text(self, before: State, action: Action, after: State) -> str:
        """The text the engine answers when ``action`` leads from ``before`` to ``after``,
        rendered from the facts of ``after`` through the game's grammar, as the engine renders
        its own (so a predicted next state gives the predicted text). ``"Nothing happens."``
        when ``action`` does not apply at ``before``. Needs ``engine="textworld"``."""
        from textworld.logic import Placeholder, Proposition, Variable

        if self._tw is None:
            raise ConfigError("rendering text needs TextWorld's engine (engine='textworld')")
        applied = self._applied(action, self.expand(before).facts)
        if applied is None or after == before:
            return "Nothing happens."
        pddl_state, logic = self._tw._pddl_state, self._tw._logic
        types = pddl_state.name2type
        schema, *args = applied[0].strip("()").split()
        propositions = [Proposition(pred, [Variable(a, types[a]) for a in rest])
                        for pred, *rest in (f.strip("()").split() for f in self.expand(after).facts)]
        parameters = pddl_state._actions[schema].parameters
        mapping = {Placeholder(p.name.strip("?"), p.type_name): Variable(a, p.type_name)
                   for p, a in zip(parameters, args, strict=True)}
        infos = self._tw._entity_infos
        context = {"state": _logic_state(pddl_state, logic, propositions), "facts": propositions,
                   "variables": {ph.name: infos[var.name] for ph, var in mapping.items()}, "mapping": mapping,
                   "entity_infos": infos}
        return str(logic.grammar.derive(logic.actions[schema].feedback_rule, context))

    def distance_heuristic(self, name: str = "ff") -> Any:
        """A PDDL distance heuristic (``"ff"``, ``"add"``, ``"max"``, ``"lmcut"``) of the
        planning copy, over this environment's (compact) states: what ``--heuristic auto``
        uses."""
        distance = self.planning.distance_heuristic(name)

        def over_compact(state: State) -> float:
            return float(distance(self.expand(state, strict=False)))

        return over_compact

    def optimal_plan(self) -> list[Action] | None:
        """A shortest plan, as commands (``None`` when there is none)."""
        plan = self.planning.optimal_plan()
        return None if plan is None else [Action(_command(a.name)[0]) for a in plan]

    def _engine_state(self, game_state: Any) -> State:
        try:
            facts = game_state["facts"]
        except KeyError as exc:
            raise EnvironmentStepError(f"TextWorld's engine gave no facts: {exc}") from None
        return self.compact(State(frozenset(
            _fact(p.name, [v.name for v in p.arguments]) for p in facts
            if p.name.lower() not in BOOKKEEPING and not p.name.lower().startswith("not_"))))

    # -- the compact state ----------------------------------------------------------------
    def _statics(self, init: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
        """The domain's fixed facts of the game, and their compact form."""
        changing = set(RENAMED) | set(DERIVED) | {"atlocation", "holds"}
        full = frozenset(f for f in init if f[1:].split()[0].rstrip(")") not in changing)
        rtype: dict[str, str] = {}
        otype: dict[str, str] = {}
        self._location: dict[str, str] = {}  # receptacle -> its location
        contain: set[tuple[str, str]] = set()
        compact: set[str] = set()
        for f in full:
            name, *args = f.strip("()").split()
            if name == "receptacletype":
                rtype[args[0]] = args[1]
            elif name == "objecttype":
                otype[args[0]] = args[1]
            elif name == "receptacleatlocation":
                self._location[args[0]] = args[1]
            elif name == "cancontain":
                contain.add((args[0], args[1]))
            elif name in ITEM_PROPERTIES or name == "openable":
                compact.add(f)
        for r, t in rtype.items():
            if t in APPLIANCES:
                compact.add(f"({APPLIANCES[t]} {r})")
        for o, t in otype.items():
            if t in KNIVES:
                compact.add(f"(knife {o})")
            for r, rt in rtype.items():
                if (rt, t) in contain:
                    compact.add(f"(fits {o} {r})")
        self._receptacle_at = {loc: r for r, loc in self._location.items()}
        return full, frozenset(compact)

    def _atom(self, fact: str) -> str | None:
        """The compact form of one changing fact of the domain (``None``: left out)."""
        name, *args = fact.strip("()").split()
        if name in RENAMED:
            return _fact(RENAMED[name], args)
        if name == "atlocation":
            where = self._receptacle_at.get(args[1])
            return None if where is None else f"(at {where})"
        if name == "holds":
            return f"(holding {args[1]})"
        return None

    def compact(self, state: State) -> State:
        """The compact state of a state in the domain's facts (see the module's description)."""
        facts = set(self._static)
        for f in state.facts:
            if f in self._static_full:
                continue
            atom = self._atom(f)
            if atom is not None:
                facts.add(atom)
        return State(frozenset(facts))

    def expand(self, state: State, *, strict: bool = True) -> State:
        """The state in the domain's facts of a compact state (the inverse of :meth:`compact`).

        A fact no game state can hold — ``(at X)`` or ``(in O X)`` for an ``X`` that is no
        receptacle, as a learned model may imagine — raises :class:`ConfigError` naming it, or
        with ``strict=False`` is left out (for heuristics over imagined states)."""
        facts = set(self._static_full)
        at = None
        for f in state.facts:
            name, *args = f.strip("()").split()
            if name in ("at", "in") and args and args[-1] not in self._location:
                if strict:
                    raise ConfigError(f"the household fact {f} names {args[-1]!r}, which is no receptacle of this "
                                      f"game (receptacles: {', '.join(sorted(self._location))})")
                continue
            if name == "at":
                at = self._location[args[0]]
            elif name == "in":
                facts.add(f"(inreceptacle {args[0]} {args[1]})")
                facts.add(f"(objectatlocation {args[0]} {self._location[args[1]]})")
            elif name == "holding":
                facts.add(f"(holds agent1 {args[0]})")
                facts.add("(holdsany agent1)")
            elif name in RENAMED.values():
                facts.add(f)
        facts.add(f"(atlocation agent1 {at or 'loc_start'})")
        return State(frozenset(facts))


def _compact_goal(goal: Any, atom: Any) -> Any:
    """``goal`` (a fact or formula goal over the domain's facts) over compact facts."""
    from planner.env.adl import Condition, FormulaGoal
    from planner.types import FactGoal

    def facts(found: frozenset[str]) -> frozenset[str]:
        mapped = {atom(f) for f in found}
        if None in mapped:
            raise ConfigError(f"the household goal {goal} names a fact the compact state leaves out")
        return frozenset(m for m in mapped if m is not None)

    def condition(c: Condition) -> Condition:
        return Condition(positive=facts(c.positive), negative=facts(c.negative),
                         alternatives=tuple(tuple(condition(o) for o in options) for options in c.alternatives))

    if isinstance(goal, FormulaGoal):
        return FormulaGoal(facts=facts(goal.facts), condition=condition(goal.condition))
    return FactGoal(facts(goal.facts))


def _logic_state(like: Any, logic: Any, propositions: Sequence[Any]) -> Any:
    """A state of TextWorld's logic holding exactly ``propositions``, of the engine's own state
    class (``PddlState``, built as its constructor starts, without a planning task: the grammar
    only queries its facts). Written for TextWorld 1.7, which the ``household`` extra pins."""
    from collections import Counter, defaultdict

    cls: Any = type(like)
    state = object.__new__(cls)
    state._facts = defaultdict(set)
    state._vars_by_name = {}
    state._vars_by_type = defaultdict(set)
    state._var_counts = Counter()
    state._logic = logic
    state.add_facts(propositions)
    return state


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
