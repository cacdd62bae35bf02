"""Experience collection: real transitions of PDDL environments, appended to JSONL logs.

Behaviours are mixed so a world model sees what search will ask it: random walks whose steps
are 50% applicable actions, 25% near-miss inapplicable actions (one precondition missing)
and 25% arbitrary inapplicable actions; goal-directed plans (which end at the goal, the only
source of ``done``), each step preceded now and then by an inapplicable probe; short and long
episodes. Splits are by problem, never by transition, so test problems are unseen.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from planner.env.blocksworld import generate_problem
from planner.env.pddl import PDDLEnvironment
from planner.errors import ConfigError
from planner.io import CorruptLogError, JsonlLog, iter_jsonl_numbered
from planner.search.beam import beam_search
from planner.search.policies import distance_value
from planner.search.problem import Budget, SearchProblem
from planner.types import Action, State
from planner.world.oracle import OracleWorldModel

Split = Literal["train", "val", "test"]
Source = Literal["random", "plan", "novelty", "probe", "boundary", "demo", "synthetic"]
"""The behaviour that produced a record: ``random`` walks and goal-directed ``plan`` episodes
(this module); ``novelty`` walks, ``probe`` and ``boundary`` episodes and replayed ``demo``
plans (:mod:`planner.data.explore`); ``synthetic`` steps (:mod:`planner.data.synth`)."""

SPLIT_SEED_BASE: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000}
"""Generated Blocksworld problems of each split come from disjoint seed ranges."""


class TransitionRecord(BaseModel):
    """One real transition, as stored in a transition log (one JSON object a line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    problem: str
    domain: str
    objects: list[str]
    goal: list[str]
    state: list[str]
    action: str
    applicable: bool
    next_state: list[str]
    reward: float
    done: bool
    episode: str
    step: int
    source: Source
    split: Split

    def state_obj(self) -> State:
        return State.from_facts(self.state)

    def next_state_obj(self) -> State:
        return State.from_facts(self.next_state)


def read_records(path: str | Path, *, limit: int | None = None,
                 lines: Iterable[bytes] | None = None) -> list[TransitionRecord]:
    """The transition records of the JSONL log ``path`` (the first ``limit`` when given; those
    on ``lines`` instead of the file's, when given: see :func:`planner.io.iter_jsonl_numbered`).

    Read as every log is (a torn last line is skipped, see :func:`planner.io.iter_jsonl`);
    :class:`~planner.io.CorruptLogError` (a ``ValueError``) names the file and line of a line
    that is not JSON or not a transition record.
    """
    out: list[TransitionRecord] = []
    if limit is not None and limit <= 0:
        return out
    for number, data in iter_jsonl_numbered(path, lines=lines):
        try:
            out.append(TransitionRecord.model_validate(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            raise CorruptLogError(f"{path}:{number}: not a transition record: {where}: {first['msg']}") from None
        if limit is not None and len(out) >= limit:
            break
    return out


@dataclass(frozen=True)
class CollectStats:
    problems: int
    episodes: int
    transitions: int
    applicable: int
    done: int


def _pick_action(env: PDDLEnvironment, state: State, rng: random.Random) -> Action:
    """50% applicable, 25% near-miss inapplicable, 25% any inapplicable."""
    actions = env.candidate_actions(state)
    roll = rng.random()
    applicable = env.applicable_actions(state)
    if roll < 0.5 and applicable:
        return rng.choice(applicable)
    inapplicable = [a for a in actions if not env.operator(a).applicable(state.facts)]
    if roll < 0.75:
        near = [a for a in inapplicable if len(env.operator(a).preconditions - state.facts) == 1]
        if near:
            return rng.choice(near)
    return rng.choice(inapplicable or list(actions))


def _record(env: PDDLEnvironment, *, state: State, action: Action, episode: str, step: int,
            source: Literal["random", "plan"], split: Split, problem: str) -> tuple[TransitionRecord, State]:
    result = env.step(action)
    rec = TransitionRecord(
        problem=problem, domain=env.task.domain_name, objects=list(env.task.objects),
        goal=sorted(env.goal.facts), state=sorted(state.facts), action=action.name,
        applicable=result.applicable, next_state=sorted(result.state.facts),
        reward=result.reward, done=result.terminated, episode=episode, step=step,
        source=source, split=split,
    )
    return rec, result.state


def goal_directed_plan(env: PDDLEnvironment, start: State) -> list[Action]:
    """A short plan from ``start`` (beam search with the exact model and hFF)."""
    problem = SearchProblem.from_env(env, OracleWorldModel(env), value=distance_value(env.distance_heuristic("ff")))
    result = beam_search(problem, start, Budget(beam_width=8))
    return list(result.plan.actions) if result.plan.reaches_goal else []


def collect_from_env(
    env: PDDLEnvironment,
    sink: Callable[[TransitionRecord], None],
    *,
    problem: str,
    split: Split,
    rng: random.Random,
    random_episodes: int = 2,
    plan_episodes: int = 1,
    max_steps: tuple[int, int] = (5, 60),
) -> tuple[int, int, int, int]:
    """Collect from one problem; returns (episodes, transitions, applicable, done)."""
    counts = [0, 0, 0, 0]

    def emit(rec: TransitionRecord) -> None:
        sink(rec)
        counts[1] += 1
        counts[2] += rec.applicable
        counts[3] += rec.done

    for e in range(random_episodes):
        state, _ = env.reset()
        episode = f"{problem}/random-{e}"
        counts[0] += 1
        for step in range(rng.randint(*max_steps)):
            rec, state = _record(env, state=state, action=_pick_action(env, state, rng),
                                 episode=episode, step=step, source="random", split=split,
                                 problem=problem)
            emit(rec)
            if rec.done:
                break
    for e in range(plan_episodes):
        state, _ = env.reset()
        # Start the plan from a random point of a short random walk, so plans cover more states.
        for _ in range(rng.randint(0, 6)):
            applicable = env.applicable_actions(state)
            if not applicable:  # a dead end: plan from here
                break
            state = env.step(rng.choice(applicable)).state
        episode = f"{problem}/plan-{e}"
        counts[0] += 1
        step = 0
        for action in goal_directed_plan(env, state):
            if rng.random() < 0.5:  # an inapplicable probe before the real step
                probe = _pick_action(env, state, rng)
                if not env.operator(probe).applicable(state.facts):
                    rec, state = _record(env, state=state, action=probe, episode=episode, step=step,
                                         source="plan", split=split, problem=problem)
                    emit(rec)
                    step += 1
            rec, state = _record(env, state=state, action=action, episode=episode, step=step,
                                 source="plan", split=split, problem=problem)
            emit(rec)
            step += 1
    return counts[0], counts[1], counts[2], counts[3]


def _check_blocksworld_request(problems: dict[Split, int], blocks: Sequence[int]) -> None:
    """:class:`~planner.errors.ConfigError` naming the first bad split, count or size."""
    for split, count in problems.items():
        if split not in SPLIT_SEED_BASE:
            raise ConfigError(f"unknown split {split!r}; choose among {sorted(SPLIT_SEED_BASE)}")
        if count < 0:
            raise ConfigError(f"the number of {split} problems must be >= 0, got {count}")
    from planner.env.blocksworld import MAX_BLOCKS, MIN_BLOCKS

    if not blocks or any(not MIN_BLOCKS <= n <= MAX_BLOCKS for n in blocks):
        raise ConfigError(f"blocks must be a non-empty list of sizes in {MIN_BLOCKS}..{MAX_BLOCKS}, got {list(blocks)}")


def collect_blocksworld(
    out_dir: str | Path,
    *,
    problems: dict[Split, int],
    blocks: Sequence[int] = (3, 4, 5, 6, 7, 8),
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[Split, CollectStats]:
    """Generate Blocksworld problems for each split and append their transitions to
    ``out_dir/<split>.jsonl``. Problem seeds of the splits are disjoint.

    ``problems`` maps a split to its number of problems; problem ``i`` has
    ``blocks[i % len(blocks)]`` blocks. Raises :class:`~planner.errors.ConfigError` naming a
    bad split, count or size, and :class:`~planner.io.FileWriteError` when a log cannot be
    written.
    """
    from tempfile import TemporaryDirectory

    from planner.env.blocksworld import DOMAIN_PDDL

    _check_blocksworld_request(problems, blocks)
    out = Path(out_dir)
    stats: dict[Split, CollectStats] = {}
    rng = random.Random(seed)
    with TemporaryDirectory() as tmp:
        # Scratch inputs for the PDDL parser, private to this call: plain writes suffice.
        domain = Path(tmp) / "domain.pddl"
        domain.write_text(DOMAIN_PDDL)
        for split, count in problems.items():
            totals = [0, 0, 0, 0]
            with JsonlLog(out / f"{split}.jsonl", fsync=False) as log:
                for i in range(count):
                    n = blocks[i % len(blocks)]
                    pseed = SPLIT_SEED_BASE[split] + seed * 100_000 + i
                    problem_file = Path(tmp) / "problem.pddl"
                    problem_file.write_text(generate_problem(n, seed=pseed))
                    env = PDDLEnvironment(domain, problem_file)
                    got = collect_from_env(env, log.write, problem=f"bw-{n}-{pseed}", split=split, rng=rng)
                    totals = [a + b for a, b in zip(totals, got)]
                    if progress is not None:
                        progress(1)
            stats[split] = CollectStats(count, *totals)
    return stats


def collect_pddl(
    out_dir: str | Path,
    *,
    domain: str | Path,
    problems: Iterable[str | Path],
    split_of: Callable[[int], Split],
    seed: int = 0,
    episodes: int = 4,
) -> dict[Split, CollectStats]:
    """Collect from a user's own PDDL domain; ``split_of(i)`` assigns problem ``i`` a split."""
    out = Path(out_dir)
    rng = random.Random(seed)
    totals: dict[Split, list[int]] = {}
    logs: dict[Split, JsonlLog] = {}
    try:
        for i, problem in enumerate(problems):
            split = split_of(i)
            if split not in logs:
                logs[split] = JsonlLog(out / f"{split}.jsonl", fsync=False)
                totals[split] = [0, 0, 0, 0, 0]
            env = PDDLEnvironment(domain, problem)
            got = collect_from_env(env, logs[split].write, problem=f"{env.task.name}", split=split,
                                   rng=rng, random_episodes=episodes, plan_episodes=max(1, episodes // 2))
            totals[split] = [totals[split][0] + 1] + [a + b for a, b in zip(totals[split][1:], got)]
    finally:
        for log in logs.values():
            log.close()
    return {s: CollectStats(*t) for s, t in totals.items()}

