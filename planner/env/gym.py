"""Discrete-action Gymnasium environments as planner environments, given observation → facts.

:class:`GymEnvironment` wraps a Gymnasium environment whose action space is ``Discrete``; a
function the user gives turns each observation into ground facts (``"(at r2 c3)"``), so states
are symbolic :class:`~planner.types.State` objects that world models and search understand.
:class:`GymSimulator` adds an exact ``simulate`` for environments that are deterministic given
their reset seed (it replays action sequences in a private copy), so the exact model
(``--oracle``) works with them. :func:`make_frozenlake` builds Gymnasium's FrozenLake-v1 this
way (registered as ``frozenlake-v0``).

Rules the adapter follows (Gymnasium and the planner mean slightly different things):

- **applicable**: an ``info["applicable"]`` bool from the environment wins. Otherwise a step is
  *not applicable* when the facts did not change and the reward is 0 — the environment
  reported nothing (FrozenLake: walking into the edge of the map). Every other step applied.
- **terminated / truncated**: Gymnasium's flags pass through, with one translation: the
  planner's ``terminated`` means the goal was reached, so a Gymnasium termination at a state
  that does not satisfy the goal (a failure terminal, e.g. a hole in the ice) is reported as
  ``truncated=True`` with ``info["env_terminated"] = True``. ``max_steps`` truncates too.
- **seeds**: ``reset(seed=s)`` reseeds the Gymnasium environment with ``s``; ``reset()`` with
  no seed uses the seed given at construction, and without one a fresh random seed (recorded,
  so a :class:`GymSimulator` still replays exactly).

gymnasium is an optional dependency (the ``gym`` extra); it is imported on first use.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from planner.env.base import StepResult
from planner.errors import ConfigError, EnvironmentStepError, UnknownActionError
from planner.protocols import Goal
from planner.types import Action, FactGoal, Prediction, State

FactsFn = Callable[[Any], Iterable[str]]
"""``facts(observation) -> ground facts``: the symbolic state of a Gymnasium observation."""

FROZENLAKE_ACTIONS = ("(left)", "(down)", "(right)", "(up)")
"""FrozenLake-v1's four actions, in the order of its action space (0..3)."""

MAX_FROZENLAKE_SIZE = 64
"""Largest side (cells) of a generated FrozenLake map: 4,096 cells, each a state."""

_SEED_RANGE = 2**31
"""Fresh random seeds are drawn from ``0 .. _SEED_RANGE - 1``."""


def import_gymnasium() -> Any:
    """The ``gymnasium`` module; :class:`ConfigError` saying how to install it when absent."""
    try:
        import gymnasium
    except ImportError as exc:
        raise ConfigError(f"Gymnasium environments need gymnasium: pip install 'planner[gym]' ({exc})") from None
    return gymnasium


@dataclass(frozen=True, slots=True)
class PredicateGoal:
    """A goal given as a test of the state; progress is all or nothing (0.0 or 1.0).

    Attributes:
        test: ``test(state) -> bool``, True when ``state`` reaches the goal.
        description: shown by ``str()`` (logs record it as the goal).
    """

    test: Callable[[State], bool]
    description: str = "a goal test"

    def satisfied(self, state: State) -> bool:
        return bool(self.test(state))

    def progress(self, state: State) -> float:
        return 1.0 if self.satisfied(state) else 0.0

    def __str__(self) -> str:
        return self.description


def as_goal(goal: Goal | Callable[[State], bool]) -> Goal:
    """``goal`` as a :class:`~planner.protocols.Goal`: a goal object as is, a function of the
    state wrapped in :class:`PredicateGoal`. :class:`ConfigError` for anything else."""
    if isinstance(goal, Goal):
        return goal
    if callable(goal):
        return PredicateGoal(goal, description=getattr(goal, "__name__", "a goal test"))
    raise ConfigError(f"goal must be a FactGoal (or another Goal) or a function state -> bool, "
                      f"got {type(goal).__name__}")


class GymEnvironment:
    """A discrete-action Gymnasium environment with symbolic states (see the module's rules).

    Args:
        env_or_id: a Gymnasium environment, or an id for ``gymnasium.make``.
        facts: ``facts(observation) -> Iterable[str]``: the ground facts of an observation.
        goal: a :class:`~planner.types.FactGoal` (or any Goal), or ``goal(state) -> bool``.
        action_names: one name per discrete action, in the action space's order (default
            ``"(action 0)"``, ``"(action 1)"``, …).
        max_steps: truncate the episode after this many real steps (``None``: only the
            environment's own limit).
        seed: the reset seed used when ``reset()`` gets none (``None``: a fresh random one).
        objects: every object the facts and actions may name, when not all of them appear in
            the start state, the goal or the actions (a grid's rows and columns): learning and
            binding a model use them (see :func:`planner.env.base.episode_objects`).

    Raises :class:`ConfigError` for an action space that is not ``Discrete``, action names of
    the wrong number or repeated, a bad ``max_steps``, or objects that are not distinct names.
    """

    def __init__(self, env_or_id: Any, *, facts: FactsFn, goal: Goal | Callable[[State], bool],
                 action_names: Sequence[str] | None = None, max_steps: int | None = None,
                 seed: int | None = None, objects: Sequence[str] | None = None) -> None:
        gymnasium = import_gymnasium()
        self.env = gymnasium.make(env_or_id) if isinstance(env_or_id, str) else env_or_id
        space = getattr(self.env, "action_space", None)
        if not isinstance(space, gymnasium.spaces.Discrete):
            raise ConfigError(f"GymEnvironment needs a Discrete action space, got {space!r}")
        if not callable(facts):
            raise ConfigError(f"facts must be a function observation -> facts, got {type(facts).__name__}")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise ConfigError(f"max_steps must be a whole number >= 1 or None, got {max_steps!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"seed must be a whole number or None, got {seed!r}")
        if objects is not None:
            objects = tuple(objects)
            if not all(isinstance(o, str) and o and not any(c.isspace() or c in "()" for c in o) for o in objects) \
                    or len(set(objects)) != len(objects):
                raise ConfigError(f"objects must be distinct names without spaces or parentheses, got {objects!r:.120}")
            self.objects: tuple[str, ...] = objects
        self.facts_of = facts
        self._goal = as_goal(goal)
        self.max_steps = max_steps
        self.seed = seed
        self._start = int(space.start)
        self._actions = _action_names(int(space.n), action_names)
        self._index = {a.name: i for i, a in enumerate(self._actions)}
        self._state = State()
        self._steps = 0
        self.episode_seed: int | None = None
        """The seed of the last reset (drawn at random when none was given)."""

    # -- the Environment protocol ---------------------------------------------------------
    @property
    def goal(self) -> Goal:
        return self._goal

    @property
    def state(self) -> State:
        """The current real state (empty before the first reset)."""
        return self._state

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        """Reset the Gymnasium environment with ``seed`` (see the module's seed rule)."""
        self.episode_seed = self._resolve_seed(seed)
        obs, info = self.env.reset(seed=self.episode_seed)
        self._state = self.state_of(obs)
        self._steps = 0
        return self._state, {**dict(info), "seed": self.episode_seed}

    def step(self, action: Action) -> StepResult:
        """Take ``action`` for real; :class:`UnknownActionError` for a name not in the action space."""
        index = self.action_index(action)
        before = self._state
        obs, reward, terminated, truncated, info = self.env.step(index)
        after = self.state_of(obs)
        self._steps += 1
        self._state = after
        return self._result(before, after, float(reward), bool(terminated), bool(truncated), dict(info))

    def candidate_actions(self, state: State) -> Sequence[Action]:
        """Every discrete action, by name, in the action space's order (at every state)."""
        return self._actions

    # -- helpers --------------------------------------------------------------------------
    def state_of(self, observation: Any) -> State:
        """The symbolic state of ``observation``; :class:`ConfigError` when ``facts`` does not
        give strings."""
        facts = tuple(self.facts_of(observation))
        bad = [f for f in facts if not isinstance(f, str)]
        if bad:
            raise ConfigError(f"facts(observation) must give strings, got {bad[0]!r} "
                              f"for observation {observation!r:.80}")
        return State.from_facts(facts)

    def action_index(self, action: Action | str) -> int:
        """The Gymnasium action (an int of the action space) named by ``action``."""
        name = action.name if isinstance(action, Action) else action
        i = self._index.get(name)
        if i is None:
            raise UnknownActionError(f"unknown action {name!r}; the actions are {', '.join(self._index)}")
        return self._start + i

    def close(self) -> None:
        """Close the Gymnasium environment."""
        self.env.close()

    def _resolve_seed(self, seed: int | None) -> int:
        if seed is None:
            seed = self.seed if self.seed is not None else random.SystemRandom().randrange(_SEED_RANGE)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be a whole number or None, got {seed!r}")
        return seed

    def _result(self, before: State, after: State, reward: float, terminated: bool, truncated: bool,
                info: dict[str, Any]) -> StepResult:
        """A :class:`StepResult` under the module's applicability and termination rules."""
        reported = info.get("applicable")
        applicable = reported if isinstance(reported, bool) else (after != before or reward != 0.0)
        if not applicable:
            info.setdefault("reason", "the state did not change and the environment reported no reward")
        reached = self._goal.satisfied(after)
        if terminated and not reached:
            info["env_terminated"] = True
            terminated, truncated = False, True
        if self.max_steps is not None and self._steps >= self.max_steps and not terminated:
            truncated = True
        return StepResult(state=after, reward=reward, terminated=terminated, truncated=truncated,
                          info=MappingProxyType(info), applicable=applicable)


class GymSimulator(GymEnvironment):
    """A :class:`GymEnvironment` that is deterministic given its reset seed, with an exact
    ``simulate``: the outcome of an action at a state is found by replaying, in a private copy
    of the environment, the action sequence that first reached that state since the last reset
    (then taking the action). Exact when the facts determine the environment's state; costs
    one reset and as many steps as the state's path is long (plus one) per call.

    Arguments as for :class:`GymEnvironment`.
    """

    def __init__(self, env_or_id: Any, *, facts: FactsFn, goal: Goal | Callable[[State], bool],
                 action_names: Sequence[str] | None = None, max_steps: int | None = None,
                 seed: int | None = None, objects: Sequence[str] | None = None) -> None:
        super().__init__(env_or_id, facts=facts, goal=goal, action_names=action_names, max_steps=max_steps,
                         seed=seed, objects=objects)
        self._scratch: Any = None
        self._scratch_path: tuple[int, ...] | None = None
        self._paths: dict[State, tuple[int, ...]] = {}
        self._real_path: tuple[int, ...] = ()

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        state, info = super().reset(seed=seed)
        self._paths = {state: ()}
        self._real_path = ()
        self._scratch_path = None
        return state, info

    def step(self, action: Action) -> StepResult:
        index = self.action_index(action)
        result = super().step(action)
        self._real_path += (index,)
        self._paths.setdefault(result.state, self._real_path)
        return result

    def simulate(self, state: State, action: Action) -> Prediction:
        """The exact outcome of ``action`` at ``state``; never changes the real environment.

        Raises :class:`EnvironmentStepError` for a state not reached (really or in simulation)
        since the last reset.
        """
        index = self.action_index(action)
        path = self._paths.get(state)
        if path is None:
            if self.episode_seed is None:
                raise EnvironmentStepError("simulate() needs a reset() first")
            raise EnvironmentStepError(f"cannot simulate from {state}: no action sequence since the last reset "
                                       "reaches it")
        scratch = self._scratch_at(path)
        obs, reward, _, _, info = scratch.step(index)
        self._scratch_path = (*path, index)
        after = self.state_of(obs)
        reported = dict(info).get("applicable")
        applicable = reported if isinstance(reported, bool) else (after != state or float(reward) != 0.0)
        if not applicable:
            return Prediction(applicable=False, next_state=state, reward=0.0, done=False)
        self._paths.setdefault(after, self._scratch_path)
        return Prediction(applicable=True, next_state=after, reward=float(reward),
                          done=self.goal.satisfied(after))

    def _scratch_at(self, path: tuple[int, ...]) -> Any:
        """The private copy, reset with the episode's seed and stepped along ``path``."""
        if self._scratch is None:
            self._scratch = copy.deepcopy(self.env)
        if self._scratch_path != path:
            self._scratch.reset(seed=self.episode_seed)
            for index in path:
                self._scratch.step(index)
            self._scratch_path = path
        return self._scratch

    def close(self) -> None:
        super().close()
        if self._scratch is not None:
            self._scratch.close()


def _action_names(n: int, names: Sequence[str] | None) -> tuple[Action, ...]:
    """One :class:`Action` per discrete action; :class:`ConfigError` for a wrong count or repeats."""
    if names is None:
        return tuple(Action(f"(action {i})") for i in range(n))
    names = list(names)
    if len(names) != n or len(set(names)) != n or not all(isinstance(x, str) and x.strip() for x in names):
        raise ConfigError(f"action_names must be {n} distinct non-empty strings (one per discrete action), "
                          f"got {names!r:.200}")
    return tuple(Action(x) for x in names)


# -- FrozenLake -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GridFacts:
    """Facts of a grid position observation ``row * columns + column``: ``("(at r2 c3)",)``,
    followed by the fixed facts ``extra`` (e.g. ``"(hole r1 c1)"``: the map, when it varies
    between episodes and a learned model must see it).

    Attributes:
        columns: the grid's width (cells).
        extra: facts true in every state.
    """

    columns: int
    extra: tuple[str, ...] = ()

    def __call__(self, observation: Any) -> tuple[str, ...]:
        row, column = divmod(int(observation), self.columns)
        return (f"(at r{row} c{column})", *self.extra)


def make_frozenlake(*, seed: int = 0, map_name: str | None = None, size: int | None = None, is_slippery: bool = False,
                    max_steps: int | None = None, holes: bool | None = None) -> GymEnvironment:
    """Gymnasium's FrozenLake-v1: walk from S to G on a grid without falling through a hole (H).

    Facts: ``(at rR cC)`` (row ``R``, column ``C``, from 0 at the top left); the goal is
    ``(at rR cC)`` of the G cell; actions ``(left)``, ``(down)``, ``(right)``, ``(up)``. Walking
    into the map's edge is not applicable; falling in a hole ends the episode (truncated).

    Args:
        seed: the reset seed; with ``size``, it also picks the random map.
        map_name: Gymnasium's fixed map, ``"4x4"`` (the default) or ``"8x8"``; not with ``size``.
        size: side of a random map (2..64 cells) generated from ``seed`` by Gymnasium.
        is_slippery: Gymnasium's slippery ice (moves go astray); then no exact ``simulate``.
        max_steps: truncate after this many real steps (Gymnasium's own limit: 100 on 4x4,
            200 on 8x8).
        holes: add a fact ``(hole rR cC)`` per hole to every state, so the map is part of the
            state (``None``: yes for random maps, where a learned model must see the map to
            generalise to maps it never saw; no for the fixed maps).

    Returns a :class:`GymSimulator` when not slippery, else a :class:`GymEnvironment`.
    """
    gymnasium = import_gymnasium()
    from gymnasium.envs.toy_text.frozen_lake import MAPS, generate_random_map

    if size is not None and map_name is not None:
        raise ConfigError(f"give map_name or size, not both (got map_name={map_name!r}, size={size!r})")
    map_name = "4x4" if map_name is None else map_name
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= MAX_FROZENLAKE_SIZE:
            raise ConfigError(f"size must be a whole number in 2..{MAX_FROZENLAKE_SIZE}, got {size!r}")
        desc = list(generate_random_map(size=size, seed=seed))
    elif map_name in MAPS:
        desc = list(MAPS[map_name])
    else:
        raise ConfigError(f"map_name must be one of {', '.join(sorted(MAPS))}, got {map_name!r}")
    if not isinstance(is_slippery, bool):
        raise ConfigError(f"is_slippery must be true or false, got {is_slippery!r}")
    if holes is not None and not isinstance(holes, bool):
        raise ConfigError(f"holes must be true or false, got {holes!r}")
    show = size is not None if holes is None else holes
    extra = tuple(f"(hole r{r} c{c})" for r, line in enumerate(desc) for c, cell in enumerate(line)
                  if cell == "H") if show else ()
    goal_row = next(r for r, line in enumerate(desc) if "G" in line)
    goal = FactGoal(frozenset({f"(at r{goal_row} c{desc[goal_row].index('G')})"}))
    env = gymnasium.make("FrozenLake-v1", desc=desc, is_slippery=is_slippery)
    cls = GymEnvironment if is_slippery else GymSimulator
    objects = [*(f"r{r}" for r in range(len(desc))), *(f"c{c}" for c in range(len(desc[0])))]
    return cls(env, facts=GridFacts(len(desc[0]), extra), goal=goal, action_names=FROZENLAKE_ACTIONS,
               max_steps=max_steps, seed=seed, objects=objects)
