"""``planner collect --workers N`` / ``--ray ADDRESS``: experience collection as independent jobs.

One job per generated Blocksworld problem, per PDDL problem file, or per environment seed
(``--env``). Each job collects exactly as the serial collectors do for one problem
(:func:`planner.data.collect.collect_from_env`, :func:`planner.data.explore.collect_from_env`),
with its own random stream — ``Random(f"{seed}:{split}:{index}")`` for a generated problem,
``Random(f"{seed}:{index}")`` for a PDDL file, the explorer's own per-seed streams for an
environment — and, for an environment, its own exploration memory. So the records depend only
on the job, never on which worker ran it or what ran before: any worker count, and Ray, give
the same records. A run without ``--workers``/``--ray`` instead draws one random stream through
all problems in turn (and, for ``--env``, one exploration memory through all seeds), so its
records differ from these.

Order in the logs: the records of one job are written together, in the job's own order, when
the job finishes; jobs appear in the order they finish (with one worker: problem or seed order).
A job that raises is reported after the others have run; the records of the others are kept.
"""

from __future__ import annotations

import random
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.errors import PlannerError
from planner.io import JsonlLog, read_jsonl
from planner.logs import get_logger
from planner.scale.executor import Executor

__all__ = [
    "BlocksworldCollect", "CollectJob", "Collected", "EnvCollect", "PddlCollect", "blocksworld_jobs",
    "collect_jobs", "env_jobs", "pddl_jobs",
]

log = get_logger(__name__)


@dataclass(frozen=True)
class CollectJob:
    """One problem or seed to collect from.

    Attributes:
        split: the split its records go to (``train``, ``val``, ``test``).
        index: the problem's index in its split (generated problems), in the list of files
            (PDDL), or the environment seed (``--env``).
        problem: the PDDL problem file, for PDDL jobs.
    """

    split: str
    index: int
    problem: str | None = None


@dataclass(frozen=True)
class Collected:
    """What one job collected.

    Attributes:
        split: its split.
        records: the transition records, in order, as JSON objects.
        counts: ``episodes``, ``transitions``, ``applicable``, ``done`` (and for environments
            ``new_objects``).
    """

    split: str
    records: tuple[dict[str, Any], ...]
    counts: dict[str, int] = field(default_factory=dict)


def _collected(split: str, records: Sequence[Any], episodes: int, **extra: int) -> Collected:
    rows = tuple(r if isinstance(r, dict) else r.model_dump(mode="json") for r in records)
    counts = {"episodes": episodes, "transitions": len(rows), "applicable": sum(bool(r["applicable"]) for r in rows),
              "done": sum(bool(r["done"]) for r in rows), **extra}
    return Collected(split, rows, counts)


@dataclass(frozen=True)
class BlocksworldCollect:
    """Generated Blocksworld problems (``planner collect`` without ``--domain``/``--env``):
    problem ``i`` of a split has ``blocks[i % len(blocks)]`` blocks and the split's seed
    (:data:`planner.data.collect.SPLIT_SEED_BASE`), as :func:`~planner.data.collect.collect_blocksworld`."""

    blocks: tuple[int, ...]
    seed: int = 0

    def start(self) -> BlocksworldCollect:
        return self

    def __call__(self, job: CollectJob) -> Collected:
        from planner.data.collect import SPLIT_SEED_BASE, collect_from_env
        from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
        from planner.env.pddl import environment_from_text

        n = self.blocks[job.index % len(self.blocks)]
        pseed = SPLIT_SEED_BASE[job.split] + self.seed * 100_000 + job.index
        env = environment_from_text(DOMAIN_PDDL, generate_problem(n, seed=pseed), name="blocksworld")
        records: list[Any] = []
        episodes, *_ = collect_from_env(env, records.append, problem=f"bw-{n}-{pseed}", split=job.split,  # type: ignore[arg-type]
                                        rng=random.Random(f"{self.seed}:{job.split}:{job.index}"))
        return _collected(job.split, records, episodes)


@dataclass(frozen=True)
class PddlCollect:
    """Your own PDDL problem files (``planner collect --domain D --problem P …``), as
    :func:`~planner.data.collect.collect_pddl`: ``episodes`` random walks and
    ``max(1, episodes // 2)`` goal-directed episodes per problem."""

    domain: str
    seed: int = 0
    episodes: int = 4

    def start(self) -> PddlCollect:
        return self

    def __call__(self, job: CollectJob) -> Collected:
        from planner.data.collect import collect_from_env
        from planner.env.pddl import PDDLEnvironment

        assert job.problem is not None
        env = PDDLEnvironment(self.domain, job.problem)
        records: list[Any] = []
        episodes, *_ = collect_from_env(env, records.append, problem=env.task.name, split=job.split,  # type: ignore[arg-type]
                                        rng=random.Random(f"{self.seed}:{job.index}"),
                                        random_episodes=self.episodes, plan_episodes=max(1, self.episodes // 2))
        return _collected(job.split, records, episodes)


@dataclass(frozen=True)
class EnvCollect:
    """An environment's seeds (``planner collect --env``), each explored by
    :func:`planner.data.explore.collect_from_env` on its own (see the module's description)."""

    env: str
    env_args: dict[str, Any]
    episodes_per_seed: int
    max_steps: int
    behaviours: tuple[str, ...]
    demonstrations: dict[int, list[str]] = field(default_factory=dict)
    domain: str = "env"
    seed: int = 0

    def start(self) -> EnvCollect:
        return self

    def __call__(self, job: CollectJob) -> Collected:
        from planner.data.explore import collect_from_env
        from planner.env.registry import split_aware

        s = job.index
        seeds = {job.split: range(s, s + 1)}
        demo = {s: self.demonstrations[s]} if s in self.demonstrations else None
        with tempfile.TemporaryDirectory(prefix="planner-collect-") as scratch:
            # as without workers: the seed is built in its job's split
            stats = collect_from_env(split_aware(self.env, self.env_args, seeds), out_dir=scratch,
                                     seeds=seeds,  # type: ignore[arg-type]
                                     episodes_per_seed=self.episodes_per_seed, max_steps=self.max_steps,
                                     behaviours=self.behaviours,  # type: ignore[arg-type]
                                     demonstrations=demo, domain=self.domain, seed=self.seed)
            records = read_jsonl(Path(scratch) / f"{job.split}.jsonl")
        st = stats[job.split]  # type: ignore[index]
        return Collected(job.split, tuple(records), {"episodes": st.episodes, "transitions": st.transitions,
                                                     "applicable": st.applicable, "done": st.done,
                                                     "new_objects": st.new_objects})


def blocksworld_jobs(problems: dict[str, int]) -> list[CollectJob]:
    """One job per generated problem of each split (split → number of problems)."""
    return [CollectJob(split, i) for split, count in problems.items() for i in range(count)]


def pddl_jobs(problems: Sequence[str | Path], splits: Sequence[str]) -> list[CollectJob]:
    """One job per PDDL problem file, ``splits[i]`` its split."""
    return [CollectJob(split, i, str(Path(p))) for i, (p, split) in enumerate(zip(problems, splits))]


def env_jobs(seeds: dict[str, range]) -> list[CollectJob]:
    """One job per environment seed of each split."""
    return [CollectJob(split, s) for split, seed_range in seeds.items() for s in seed_range]


def collect_jobs(task: Any, jobs: Iterable[CollectJob], *, out_dir: str | Path, executor: Executor,
                 progress: Any = None) -> dict[str, dict[str, int]]:
    """Run collection ``jobs`` with ``task`` on ``executor``; append each finished job's
    records to ``out_dir/<split>.jsonl`` (through :class:`~planner.io.JsonlLog`, each record
    one write); return split → summed counts (plus ``problems``: jobs of the split).

    ``progress``: an object with ``advance(success=…, error=…)`` (a
    :class:`~planner.scale.progress.JobProgress`). Raises :class:`PlannerError` naming every job
    that raised, after all the others have run and been written; an interrupt stops the
    workers and propagates (what was written stays).
    """
    out = Path(out_dir)
    logs: dict[str, JsonlLog] = {}
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    failed: list[str] = []
    try:
        for finished in executor.run(task, jobs):
            job = finished.job
            if finished.value is None:
                where = job.problem or (f"seed {job.index}" if isinstance(task, EnvCollect) else f"problem {job.index}")
                failed.append(f"{job.split} {where}: {finished.error}")
                if progress is not None:
                    progress.advance(error=True)
                continue
            got: Collected = finished.value
            if got.split not in logs:
                logs[got.split] = JsonlLog(out / f"{got.split}.jsonl", fsync=False)
            for rec in got.records:
                logs[got.split].write(rec)
            split_totals = totals[got.split]
            split_totals["problems"] += 1
            for key, value in got.counts.items():
                split_totals[key] += value
            if progress is not None:
                progress.advance(success=True)
    finally:
        for sink in logs.values():
            sink.close()
    if failed:
        raise PlannerError(f"{len(failed)} collection job(s) raised (the records of the others are written): "
                           + "; ".join(failed[:5]) + (f"; and {len(failed) - 5} more" if len(failed) > 5 else ""))
    return {split: dict(counts) for split, counts in totals.items()}
