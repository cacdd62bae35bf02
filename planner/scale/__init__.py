"""Many episodes at once: executors (serial, local processes, Ray) and the batches that use
them — ``planner eval`` (:mod:`planner.scale.eval`), and ``planner collect`` / ``planner synth``
with ``--workers`` or ``--ray`` (:mod:`planner.scale.collect`, :mod:`planner.scale.synth`).

Jobs are picklable frozen specs; a worker starts its task once (loading its world model once)
and runs many jobs; results come back as jobs complete. Ray is optional (the ``ray`` extra).
"""

from __future__ import annotations

from planner.scale.eval import (
    BatchInterrupted,
    EvalJob,
    EvalSettings,
    EvalSummary,
    evaluate_batch,
    problem_jobs,
    reference_length,
    resolve_model,
    seed_jobs,
)
from planner.scale.executor import Executor, Finished, ProcessExecutor, SerialExecutor, WorkerTask, make_executor
from planner.scale.results import EpisodeRecord, EvalHeader

__all__ = [
    "BatchInterrupted", "EpisodeRecord", "EvalHeader", "EvalJob", "EvalSettings", "EvalSummary", "Executor",
    "Finished", "ProcessExecutor", "SerialExecutor", "WorkerTask", "evaluate_batch", "make_executor",
    "problem_jobs", "reference_length", "resolve_model", "seed_jobs",
]
