"""``planner synth --workers N`` / ``--ray ADDRESS``: synthetic experience, one job per seed.

Each job is :func:`planner.data.synth.synthesize` over one environment seed: its random
choices come from ``Random(f"{seed}:{env_seed}:{k}")`` already, so a seed's records are the
same whichever worker imagines them, and the same as a serial run's. A worker loads the GGUF
model once and re-binds it to each seed's problem (:class:`~planner.scale.models.ModelPool`,
llama.cpp with one thread unless ``threads`` says otherwise).

Order in the log: the records of one seed are written together, in their own order, when the
seed finishes; seeds appear in the order they finish (with one worker: seed order). The report
sums the seeds' counts; its ``seconds`` is the whole run's wall time.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.config import ModelConfig
from planner.data.synth import SynthReport
from planner.errors import PlannerError
from planner.io import JsonlLog, read_jsonl
from planner.scale.executor import Executor
from planner.scale.models import ModelPool

__all__ = ["SynthSeed", "SynthTask", "synthesize_jobs"]

_COUNTS = ("episodes", "steps", "confirmed", "agreeing_steps", "anchors", "corrections")


@dataclass(frozen=True)
class SynthSeed:
    """What one seed produced: its records (JSON objects, in order) and its report's counts."""

    seed: int
    records: tuple[dict[str, Any], ...]
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SynthTask:
    """The arguments of :func:`~planner.data.synth.synthesize` shared by every seed, and the
    model: ``model`` a GGUF file (``None``: the exact model, ``oracle``) run with ``threads``
    llama.cpp threads (``None``: one per worker) and ``gpu_layers`` layers on a GPU."""

    env: str
    env_args: dict[str, Any]
    model: str | None
    episodes_per_seed: int = 1
    max_steps: int = 20
    policy: str = "random"
    anchor_every: int | None = None
    seed: int = 0
    threads: int | None = None
    gpu_layers: int = 0

    def start(self) -> _SynthWorker:
        return _SynthWorker(self)


class _SynthWorker:
    """One worker's job function: its models stay loaded across seeds."""

    def __init__(self, task: SynthTask) -> None:
        self.task = task
        self.models = ModelPool(ModelConfig(kind="oracle" if task.model is None else "gguf",
                                            path=Path(task.model) if task.model else None, cache_size=0,
                                            n_threads=task.threads or 1, n_gpu_layers=task.gpu_layers))

    def __call__(self, env_seed: int) -> SynthSeed:
        from planner.data.synth import synthesize
        from planner.env.registry import make

        t = self.task
        with tempfile.TemporaryDirectory(prefix="planner-synth-") as scratch:
            out = Path(scratch) / "synth.jsonl"
            report = synthesize(lambda s: make(t.env, seed=s, **t.env_args),
                                lambda env: self.models.world_model(env, seed=env_seed), seeds=[env_seed],
                                episodes_per_seed=t.episodes_per_seed, max_steps=t.max_steps,
                                policy=t.policy,  # type: ignore[arg-type]  # checked there
                                anchor_every=t.anchor_every, out_path=out, seed=t.seed)
            records = read_jsonl(out) if out.is_file() else []
        counts = report.model_dump()
        return SynthSeed(env_seed, tuple(records), {k: int(counts[k]) for k in _COUNTS})


def synthesize_jobs(task: SynthTask, seeds: Sequence[int], *, out_path: str | Path, executor: Executor,
                    progress: Any = None) -> SynthReport:
    """Run one job per seed on ``executor``, append each seed's records to ``out_path`` as it
    finishes, and report the sums (see the module's description).

    ``progress``: an object with ``advance(success=…, error=…)``. Raises
    :class:`PlannerError` naming every seed that raised, after the others are written; an
    interrupt stops the workers and propagates.
    """
    started = time.perf_counter()
    totals = dict.fromkeys(_COUNTS, 0)
    failed: list[str] = []
    with JsonlLog(out_path, fsync=False) as sink:
        for finished in executor.run(task, list(seeds)):
            if finished.value is None:
                failed.append(f"seed {finished.job}: {finished.error}")
                if progress is not None:
                    progress.advance(error=True)
                continue
            for rec in finished.value.records:
                sink.write(rec)
            for key in _COUNTS:
                totals[key] += finished.value.counts[key]
            if progress is not None:
                progress.advance(success=True)
    if failed:
        raise PlannerError(f"{len(failed)} seed(s) raised (the records of the others are written): "
                           + "; ".join(failed[:5]) + (f"; and {len(failed) - 5} more" if len(failed) > 5 else ""))
    episodes, steps = totals["episodes"], totals["steps"]
    return SynthReport(episodes=episodes, steps=steps, confirmed=totals["confirmed"],
                       consistency=totals["confirmed"] / episodes if episodes else 0.0,
                       agreeing_steps=totals["agreeing_steps"],
                       step_agreement=totals["agreeing_steps"] / steps if steps else 1.0,
                       anchors=totals["anchors"], corrections=totals["corrections"],
                       seconds=time.perf_counter() - started)
