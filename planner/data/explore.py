"""Experience from any environment with symbolic states, through its public protocol only.

:func:`collect_from_env` asks an environment for nothing but ``reset(seed=…)``, ``step(action)``
and ``candidate_actions(state)``: no simulator, no list of applicable actions. Which actions
apply is learned the way the agent would learn it, by trying them; every try is recorded,
the ones the environment refuses with ``applicable=False``.

Behaviours (each episode has one; it is the record's ``source``):

- ``"random"``: a uniformly random candidate action, never one already refused at this exact
  state (a refused action leaves the state unchanged, so retrying it teaches nothing).
- ``"novelty"``: a candidate whose *local view* was never tried; when every view here is
  known, one seen to apply (least tried first), which moves the walk on to new states. The
  local view of an action at a state is its schema name with the facts of the state that
  mention only the action's arguments (and nullary facts), written by argument position:
  exactly the part of a state a STRIPS precondition can read, so the walk meets each
  precondition case early.
- ``"probe"``: alternates a probe (an action whose local view has never been seen to apply: it
  may well not) with a step most likely to apply (a view seen to apply, least tried first).
- ``"boundary"``: a novelty walk in which every other step is a *near miss* when there is
  one: an action whose local view was never seen to apply yet differs by a single fact from a
  view of the same schema that was (one fact more, one fact fewer), the least tried such view
  first. These are the cases that tell a precondition apart from its neighbours — a ``take``
  at a receptacle that opens but is closed, beside the ``take``s seen to apply where it is
  open or does not open — and the ones a learned model most needs: novelty and probe walks
  try such a view once and then move on, so a rule decided by an absent fact is met a few
  times in a large collection. What was seen to apply is remembered across the seeds of one
  call, so one call over many seeds finds more near misses than many calls (or ``planner
  collect --workers``, one job per seed) over one seed each. Not among the defaults (a
  collection made before it keeps its episodes); ask for it with ``behaviours``
  (``planner collect --behaviour boundary``).
- ``"demo"``: the user's own plan for a seed, replayed step by step (given with
  ``demonstrations``); its refused steps are recorded as such.

Facts and actions are PDDL's Lisp forms, ``"(on a b)"`` and ``"(stack a b)"``; the objects of
an episode are the arguments met in its start state, its goal and its start state's candidate
actions, and those the environment declares in an ``objects`` attribute
(:func:`~planner.env.base.episode_objects`). A step into a state that names an object the
episode did not start with (a world that makes things: water poured off becomes a new portion;
an object a schema names as a constant) adds it to the objects of that record and of the
episode's later ones, so every record can be written with its own objects; the split's
``new_objects`` counts such steps. Seeds of different splits must be disjoint, so
held-out episodes start from states no training episode was generated from.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict

from planner.data.collect import Source, Split, TransitionRecord
from planner.env.base import episode_objects
from planner.errors import ConfigError, EnvironmentStepError, PlannerError
from planner.io import JsonlLog
from planner.logs import get_logger
from planner.protocols import Environment
from planner.types import Action, FactGoal, State, objects_of, parse_atom

log = get_logger(__name__)

Behaviour = Literal["random", "novelty", "probe", "boundary"]
"""Exploration behaviours :func:`collect_from_env` can run (``"demo"`` comes from
``demonstrations``)."""

BEHAVIOURS: tuple[Behaviour, ...] = get_args(Behaviour)
DEFAULT_BEHAVIOURS: tuple[Behaviour, ...] = ("random", "novelty", "probe")
"""The behaviours episodes cycle through when none are named."""
SPLITS: tuple[Split, ...] = get_args(Split)

_T = TypeVar("_T")

ViewKey = tuple[str, frozenset[str]]
"""An action's local view: (schema name, the facts it can see, by argument position)."""


class ExploreStats(BaseModel):
    """What :func:`collect_from_env` wrote for one split.

    Attributes:
        seeds: environment seeds (problems) visited.
        episodes: episodes run (exploration and demonstrations).
        transitions: records written.
        applicable: records whose action the environment applied.
        done: records whose step reached the goal.
        new_objects: steps whose next state named an object the episode had not named before
            (added to the objects of that record and the episode's later ones).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: int = 0
    episodes: int = 0
    transitions: int = 0
    applicable: int = 0
    done: int = 0
    new_objects: int = 0


def local_view(state: State, action: Action) -> ViewKey:
    """The part of ``state`` a STRIPS precondition of ``action`` can read, lifted.

    Facts whose arguments are all arguments of ``action`` are written with ``?i`` for the
    action's argument ``i`` (every position an object holds, when it appears twice).
    """
    name, args = parse_atom(action.name)
    lifted: set[str] = set()
    for fact in state.facts:
        pred, fargs = parse_atom(fact)
        if all(a in args for a in fargs):
            slots = ["|".join(f"?{i}" for i, b in enumerate(args) if b == a) for a in fargs]
            lifted.add(f"{pred}({','.join(slots)})" if slots else pred)
    return name, frozenset(lifted)


class _Memory:
    """What exploration has seen so far: tries and successes per local view, and tries and
    episode ends per exact (state, action)."""

    def __init__(self) -> None:
        self.tried: Counter[ViewKey] = Counter()
        self.applied: Counter[ViewKey] = Counter()
        self.tried_here: Counter[tuple[State, Action]] = Counter()
        self.ended: set[tuple[State, Action]] = set()
        # schema → the views seen to apply, each less one of its facts
        self.applied_less_one: dict[str, set[frozenset[str]]] = {}

    def note(self, key: ViewKey, applicable: bool) -> None:
        self.tried[key] += 1
        if applicable and not self.applied[key]:
            name, view = key
            self.applied_less_one.setdefault(name, set()).update(view - {f} for f in view)
        self.applied[key] += applicable

    def near_miss(self, key: ViewKey) -> bool:
        """Whether ``key`` was never seen to apply but a view of its schema one fact away was:
        one fact fewer (``key`` is such a view less a fact) or one fact more."""
        if self.applied[key]:
            return False
        name, view = key
        return view in self.applied_less_one.get(name, ()) or any(self.applied[name, view - {f}] for f in view)

    def note_exact(self, state: State, action: Action, *, ended: bool) -> None:
        self.tried_here[state, action] += 1
        if ended:
            self.ended.add((state, action))


def _choose(behaviour: str, state: State, options: Sequence[Action], memory: _Memory, step: int,
            rng: random.Random) -> Action:
    """The next action of ``behaviour`` among ``options`` (never empty)."""
    if behaviour == "random":
        return rng.choice(options)
    keys = {a: local_view(state, a) for a in options}
    if behaviour == "boundary" and step % 2 == 0:
        misses = [a for a in options if memory.near_miss(keys[a])]
        if misses:
            return min(misses, key=lambda a: (memory.tried[keys[a]], rng.random()))
    if behaviour == "probe":
        if step % 2 == 0:
            unproven = [a for a in options if memory.applied[keys[a]] == 0]
            if unproven:
                return rng.choice(unproven)
        proven = [a for a in options if memory.applied[keys[a]] > 0]
        if proven:
            return min(proven, key=lambda a: (memory.tried[keys[a]], rng.random()))
    # Views first (a STRIPS world's news); then, where views do not tell states apart (actions
    # without arguments, such as a grid walker's moves), the exact (state, action): one that
    # ended an episode last (a hole, a crash), then the fewest tries, so walks reach farther.
    return min(options, key=lambda a: (_novelty_rank(memory, keys[a]), (state, a) in memory.ended,
                                       memory.tried_here[state, a], memory.tried[keys[a]], rng.random()))


def _novelty_rank(memory: _Memory, key: ViewKey) -> int:
    """0: a view never tried (its outcome is news); 1: a view seen to apply (it moves the walk
    on to new states); 2: a view only ever refused (nothing new to learn here)."""
    if memory.tried[key] == 0:
        return 0
    return 1 if memory.applied[key] > 0 else 2


def _check_request(seeds: Mapping[Split, range], episodes_per_seed: int, max_steps: int,
                   behaviours: Sequence[str], demonstrations: Mapping[int, Sequence[str]] | None) -> None:
    """:class:`ConfigError` naming the first bad split, seed range, count or behaviour."""
    owner: dict[int, str] = {}
    for split, seed_range in seeds.items():
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose among {list(SPLITS)}")
        if not isinstance(seed_range, range):
            raise ConfigError(f"seeds of split {split} must be a range, got {seed_range!r}")
        for s in seed_range:
            if s in owner:
                raise ConfigError(f"seed {s} is in both split {owner[s]} and split {split}; "
                                  "the seeds of different splits must be disjoint")
            owner[s] = split
    if episodes_per_seed < 0:
        raise ConfigError(f"episodes_per_seed must be >= 0, got {episodes_per_seed}")
    if max_steps < 1:
        raise ConfigError(f"max_steps must be >= 1, got {max_steps}")
    for b in behaviours:
        if b not in BEHAVIOURS:
            raise ConfigError(f"unknown behaviour {b!r}; choose among {list(BEHAVIOURS)}")
    if episodes_per_seed and not behaviours:
        raise ConfigError("behaviours must not be empty when episodes_per_seed > 0")
    for s in demonstrations or {}:
        if s not in owner:
            raise ConfigError(f"demonstration for seed {s}, which is in no split's seed range")


class _Episode:
    """One episode's fixed record fields, and the step calls that wrap the environment's errors."""

    def __init__(self, env: Environment, *, seed: int, domain: str, split: Split, source: Source,
                 episode: str, sink: Callable[[TransitionRecord], None], stats: Counter[str]) -> None:
        self.env, self.seed, self.domain, self.split = env, seed, domain, split
        self.source, self.episode, self.sink, self.stats = source, episode, sink, stats
        self.problem = f"{domain}-{seed}"
        self.state = self._call("reset", None, lambda: env.reset(seed=seed)[0])
        if not self.state.is_symbolic:
            raise ConfigError(f"seed {seed}: reset() gave a text state ({self.state.text!r:.60}); "
                              "collect_from_env needs symbolic states (facts)")
        goal = env.goal
        self.goal = sorted(goal.facts) if isinstance(goal, FactGoal) else []
        self.objects = episode_objects(env, [*self.state.facts, *self.goal], self.candidates())
        self.step_no = 0
        self.over = False

    def _call(self, what: str, action: Action | None, fn: Callable[[], _T]) -> _T:
        """``fn()``, or :class:`EnvironmentStepError` naming the seed, step and action."""
        try:
            return fn()
        except Exception as exc:
            step = getattr(self, "step_no", 0)
            at = f", action {action}" if action is not None else ""
            raise EnvironmentStepError(f"environment {what} raised at seed {self.seed}, step {step}{at} "
                                       f"({self.episode}): {type(exc).__name__}: {exc}") from exc

    def candidates(self) -> list[Action]:
        """The environment's candidate actions at the current state."""
        return self._call("candidate_actions", None, lambda: list(self.env.candidate_actions(self.state)))

    def act(self, action: Action) -> bool:
        """Step ``action`` for real and record it; return whether it applied."""
        result = self._call("step", action, lambda: self.env.step(action))
        new = set(objects_of(result.state.facts)) - set(self.objects)
        if new:  # the world made something: this record and the episode's later ones name it too
            self.stats["new_objects"] += 1
            self.objects = sorted({*self.objects, *new})
        self._record(action, applicable=result.applicable, next_state=result.state, reward=result.reward,
                     done=result.terminated)
        self.stats["applicable"] += result.applicable
        self.stats["done"] += result.terminated
        self.state = result.state
        self.over = bool(result.terminated or result.truncated)
        if result.truncated and not result.terminated and result.info.get("env_terminated") is True:
            self._dead_end()
        return result.applicable

    def _record(self, action: Action, *, applicable: bool, next_state: State, reward: float, done: bool) -> None:
        """Write one transition from the current state, as the episode's next step."""
        self.sink(TransitionRecord(
            problem=self.problem, domain=self.domain, objects=self.objects, goal=self.goal,
            state=sorted(self.state.facts), action=action.name, applicable=applicable,
            next_state=sorted(next_state.facts), reward=reward, done=done,
            episode=self.episode, step=self.step_no, source=self.source, split=self.split))
        self.stats["transitions"] += 1
        self.step_no += 1

    def _dead_end(self) -> None:
        """Record that nothing applies in a state where the environment itself ended the
        episode away from the goal (a Gymnasium termination, ``info["env_terminated"]``: a
        hole in the ice): one refusal per candidate action, so a learned model treats the state
        as the dead end it is, instead of imagining walks on from it (no episode ever shows a
        step out of such a state)."""
        for action in self.candidates():
            self._record(action, applicable=False, next_state=self.state, reward=0.0, done=False)


def _explore(ep: _Episode, behaviour: str, *, max_steps: int, memory: _Memory, rng: random.Random) -> None:
    """Run one exploration episode of at most ``max_steps`` recorded steps."""
    refused: set[Action] = set()  # refused at the current state
    while ep.step_no < max_steps and not ep.over:
        actions = ep.candidates()
        if not actions:
            break
        options = [a for a in actions if a not in refused] or actions
        action = _choose(behaviour, ep.state, options, memory, ep.step_no, rng)
        key = local_view(ep.state, action)
        before = ep.state
        applied = ep.act(action)
        memory.note(key, applied)
        memory.note_exact(before, action, ended=ep.over)
        refused = set() if applied else refused | {action}


def _replay(ep: _Episode, plan: Sequence[str], *, max_steps: int) -> None:
    """Replay a demonstration (action names) until it ends, the goal is reached or the limit."""
    for name in plan[:max_steps]:
        if ep.over:
            break
        if not ep.act(Action(name)):
            log.warning("demonstration step refused", seed=ep.seed, step=ep.step_no - 1, action=name)


def build_environment(make_env: Callable[[int], Environment], seed: int) -> Environment:
    """``make_env(seed)``; a planner error passes through, anything else the factory raises is
    an :class:`EnvironmentStepError` naming the seed."""
    try:
        return make_env(seed)
    except PlannerError:
        raise
    except Exception as exc:
        raise EnvironmentStepError(f"building the environment of seed {seed} raised: "
                                   f"{type(exc).__name__}: {exc}") from exc


def collect_from_env(
    make_env: Callable[[int], Environment],
    *,
    out_dir: str | Path,
    seeds: Mapping[Split, range],
    episodes_per_seed: int = 3,
    max_steps: int = 60,
    behaviours: Sequence[Behaviour] = DEFAULT_BEHAVIOURS,
    demonstrations: Mapping[int, Sequence[str]] | None = None,
    domain: str = "env",
    seed: int = 0,
) -> dict[Split, ExploreStats]:
    """Explore the environments ``make_env(s)`` for the seeds of each split; append every
    real step to ``out_dir/<split>.jsonl``.

    Args:
        make_env: builds the environment of seed ``s`` (called once per seed; each episode
            starts with ``reset(seed=s)``).
        out_dir: folder of the logs (created when missing; existing logs are appended to).
        seeds: split → its environment seeds; ranges of different splits must be disjoint.
        episodes_per_seed: exploration episodes per seed; episode ``k`` runs
            ``behaviours[k % len(behaviours)]``.
        max_steps: most recorded steps (tries, applied or refused) per episode.
        behaviours: exploration behaviours to cycle through (see the module's description);
            by default :data:`DEFAULT_BEHAVIOURS` (``"boundary"`` is asked for by name).
        demonstrations: seed → a plan (action names) replayed as one more episode of that seed.
        domain: the domain name written in every record; problems are ``<domain>-<seed>``.
        seed: seeds the exploration's random choices (same arguments, same logs).

    Returns split → :class:`ExploreStats`. Raises :class:`ConfigError` naming a bad argument
    (before anything is written) and :class:`EnvironmentStepError` naming the seed, step and
    action when the environment raises; records written before that stay in the logs.
    """
    _check_request(seeds, episodes_per_seed, max_steps, behaviours, demonstrations)
    out = Path(out_dir)
    memory = _Memory()
    stats: dict[Split, ExploreStats] = {}
    for split, seed_range in seeds.items():
        counts: Counter[str] = Counter()
        with JsonlLog(out / f"{split}.jsonl", fsync=False) as sink:
            for env_seed in seed_range:
                env = build_environment(make_env, env_seed)
                counts["seeds"] += 1
                for k in range(episodes_per_seed):
                    behaviour = behaviours[k % len(behaviours)]
                    ep = _Episode(env, seed=env_seed, domain=domain, split=split, source=behaviour,
                                  episode=f"{domain}-{env_seed}/{behaviour}-{k}", sink=sink.write, stats=counts)
                    _explore(ep, behaviour, max_steps=max_steps, memory=memory,
                             rng=random.Random(f"{seed}:{env_seed}:{k}"))
                    counts["episodes"] += 1
                plan = (demonstrations or {}).get(env_seed)
                if plan is not None:
                    ep = _Episode(env, seed=env_seed, domain=domain, split=split, source="demo",
                                  episode=f"{domain}-{env_seed}/demo-0", sink=sink.write, stats=counts)
                    _replay(ep, plan, max_steps=max_steps)
                    counts["episodes"] += 1
        stats[split] = ExploreStats(**counts)
        log.info("collected", split=split, **dict(counts))
    return stats
