"""Many planning episodes at once: ``planner eval``.

A batch is one :class:`EvalSettings` (environment or PDDL domain, configuration, model) and
many :class:`EvalJob` s — environment seeds or PDDL problem files. Each job is one full episode
as ``planner solve`` plays it: the environment of that seed (``--env NAME --seed S``) or that
problem file, the world model the configuration names bound to it (behind a transition cache),
the :class:`~planner.agent.Agent` planning with it, acting in the real environment and
replanning on divergence, ``reset(seed=S)`` (a PDDL problem: ``search.seed``). Its result is
one :class:`~planner.scale.results.EpisodeRecord`.

:func:`evaluate_batch` runs the jobs a results file does not hold yet through an executor
(:mod:`planner.scale.executor`), appends each record as its episode finishes, and returns an
:class:`EvalSummary` over every job of the batch (those run before included). A job that
raises is recorded with its error (naming the job) and the batch goes on.

Each worker is an :class:`EpisodeRunner`: it loads each GGUF model once and re-binds it to
every job's problem (:class:`~planner.scale.models.ModelPool`). Worker processes run
llama.cpp with one thread unless the configuration sets ``model.n_threads``: llama.cpp's
threads spin-wait for each other, so several multi-threaded processes on the same cores stall
one another.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from planner.agent import Agent, EpisodeResult
from planner.config import PlannerConfig
from planner.errors import PlannerError
from planner.io import JsonlLog
from planner.logs import get_logger
from planner.protocols import Environment
from planner.scale.executor import Executor, Finished, error_text
from planner.scale.models import ModelPool
from planner.scale.results import EpisodeRecord, EvalHeader, JobId, Results, locked, open_results

__all__ = [
    "BatchInterrupted", "BatchProgress", "EpisodeRunner", "EvalJob", "EvalSettings", "EvalSummary",
    "evaluate_batch", "problem_jobs", "reference_length", "resolve_model", "seed_jobs",
]

log = get_logger(__name__)

WORKER_THREADS = 1
"""llama.cpp threads per worker when the configuration does not set ``model.n_threads``."""


@dataclass(frozen=True)
class EvalJob:
    """One episode to play.

    Attributes:
        id: the job's id in the results: the environment seed, or the PDDL problem file
            (absolute path).
        seed: the environment seed (it builds the environment, seeds ``reset`` and the
            search); for a PDDL problem, the configuration's ``search.seed``.
        problem: the PDDL problem file (absolute path), ``None`` for an environment seed.
    """

    id: JobId
    seed: int
    problem: str | None = None


def seed_jobs(seeds: Iterable[int]) -> list[EvalJob]:
    """One job per environment seed (duplicates dropped, order kept)."""
    return [EvalJob(id=s, seed=s) for s in dict.fromkeys(seeds)]


def problem_jobs(problems: Iterable[str | Path], *, seed: int = 0) -> list[EvalJob]:
    """One job per PDDL problem file (by absolute path; duplicates dropped, order kept)."""
    paths = dict.fromkeys(str(Path(p).resolve()) for p in problems)
    return [EvalJob(id=p, seed=seed, problem=p) for p in paths]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class EvalSettings:
    """What every job of a batch shares; also the executor's task (each worker calls
    :meth:`start` once).

    Attributes:
        config: search, agent and model configuration (``model.path``: resolve the shipped
            default first, see :func:`resolve_model`, so that the header names the file).
        env: the environment (registered id or ``PATH.py:FACTORY``) for seed jobs.
        env_args: keyword arguments of the environment's factory.
        domain: the PDDL domain file for problem jobs.
        reference: compute each problem's reference plan length (A* for PDDL problems: exact,
            meant for the sizes a world model plans; turn off for large ones).
    """

    config: PlannerConfig
    env: str | None = None
    env_args: dict[str, Any] = field(default_factory=dict)
    domain: str | None = None
    reference: bool = True

    def worker_config(self) -> PlannerConfig:
        """The configuration a worker runs: ``model.n_threads`` defaults to :data:`WORKER_THREADS`."""
        if self.config.model.n_threads is not None:
            return self.config
        return self.config.updated(model={"n_threads": WORKER_THREADS})

    def header(self, *, command: str | None = None) -> EvalHeader:
        """The results file's header for this batch (hashes the model file)."""
        m = self.config.model
        if m.kind == "oracle":
            model, digest = "oracle", None
        elif m.path is None:
            model, digest = "default", None
        else:
            path = Path(m.path).resolve()
            model, digest = str(path), _sha256(path) if path.is_file() else None
        data = self.config.model_dump(mode="json")
        # how the model runs (threads, GPU, in-process or served and the client's settings) gives
        # the same answers: not part of what a resumed batch must share
        running = ("n_threads", "n_gpu_layers", "server", "concurrency", "timeout_s")
        data["model"] = {k: v for k, v in data["model"].items() if k not in running}
        if data["model"].get("votes") == 1:  # one vote is what files written before votes existed mean
            del data["model"]["votes"]
            data["model"].pop("vote_below", None)  # and then no answer is asked again
        return EvalHeader(source="pddl" if self.domain is not None else "env", env=self.env,
                          env_args=dict(self.env_args),
                          domain=str(Path(self.domain).resolve()) if self.domain is not None else None,
                          model=model, model_sha256=digest, config=data, reference=self.reference,
                          created=time.time(), command=command)

    def start(self) -> EpisodeRunner:
        return EpisodeRunner(self)


def resolve_model(config: PlannerConfig, env: Environment) -> PlannerConfig:
    """``config`` with ``model.path`` set to the shipped model that ``env``'s problem gets by
    default (a GGUF model without a path: the model whose recorded signature equals a PDDL
    domain's, or the one for the environment's ``world_model_domain``), so that every worker
    uses that file and the results name it. Unchanged for the exact model, a named file, or
    an environment without a default (the jobs then report why)."""
    from planner.env.pddl import PDDLEnvironment
    from planner.world.factory import default_model_for, default_model_path
    from planner.world.signature import domain_signature

    m = config.model
    if m.kind == "oracle" or m.path is not None:
        return config
    if isinstance(env, PDDLEnvironment):
        task = env.task
        path = default_model_for(domain_signature(task.domain), domain_name=task.domain_name)
    else:
        domain = getattr(env, "world_model_domain", None)
        if not isinstance(domain, str):
            return config
        path = default_model_path(domain)
    return config.updated(model={"path": Path(path)})


def reference_length(env: Environment) -> tuple[int | None, str | None]:
    """(length, kind) of a reference plan of ``env``'s problem: a PDDL problem's optimal plan
    (:func:`planner.env.ipc.optimal_plan_length`: A*, or Gripper's closed form), else the
    environment's ``gold_path()`` (kind ``"gold"``) or ``optimal_plan()`` when it has one;
    ``(None, None)`` when none is known or finding it fails (logged)."""
    from planner.env.pddl import PDDLEnvironment

    try:
        if isinstance(env, PDDLEnvironment):
            from planner.env.ipc import optimal_plan_length

            return optimal_plan_length(env), "optimal"
        gold = getattr(env, "gold_path", None)
        if callable(gold):
            return len(gold()), "gold"
        optimal = getattr(env, "optimal_plan", None)
        if callable(optimal):
            plan = optimal()
            return (len(plan), "optimal") if plan is not None else (None, None)
    except Exception as exc:  # a reference is optional: never fail the episode for it
        log.warning("no_reference", env=type(env).__name__, error=f"{type(exc).__name__}: {exc}")
    return None, None


class EpisodeRunner:
    """Plays jobs in one worker (see the module's description)."""

    def __init__(self, settings: EvalSettings) -> None:
        self.settings = settings
        self.config = settings.worker_config()
        self.models = ModelPool(self.config.model)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def environment(self, job: EvalJob) -> Environment:
        """The real environment of ``job`` (its errors propagate, naming the seed or file)."""
        s = self.settings
        if job.problem is not None:
            from planner.env.pddl import PDDLEnvironment

            if s.domain is None:
                raise PlannerError(f"job {job.id}: a PDDL problem needs the settings' domain")
            return PDDLEnvironment(s.domain, job.problem)
        if s.env is None:
            raise PlannerError(f"job {job.id}: a seed job needs the settings' environment")
        from planner.data.explore import build_environment
        from planner.env.registry import make

        name, kwargs = s.env, s.env_args
        return build_environment(lambda seed: make(name, seed=seed, **kwargs), job.seed)

    def __call__(self, job: EvalJob) -> EpisodeRecord:
        """Play ``job``'s episode; a planner error or any other exception is recorded as the
        job's error (an interrupt propagates)."""
        cfg = self.config.updated(search={"seed": job.seed})
        started = time.perf_counter()
        reference: tuple[int | None, str | None] = (None, None)
        reference_seconds = 0.0
        result: EpisodeResult | None = None
        error: str | None = None
        try:
            env = self.environment(job)
            if self.settings.reference:
                t = time.perf_counter()
                reference = reference_length(env)
                reference_seconds = time.perf_counter() - t
            model = self.models.world_model(env, seed=job.seed)
            result = Agent(env, model, config=cfg).run(seed=job.seed)
        except Exception as exc:
            partial = getattr(exc, "episode_result", None)
            result = partial if isinstance(partial, EpisodeResult) else None
            error = f"job {job.id}: {error_text(exc)}"
            log.info("episode_failed", job=job.id, error=error)  # recorded; the batch's summary lists it
        seconds = time.perf_counter() - started - reference_seconds
        return episode_record(job, result, reference=reference, seconds=seconds, error=error, worker=self.worker)


def episode_record(job: EvalJob, result: EpisodeResult | None, *, reference: tuple[int | None, str | None],
                   seconds: float, error: str | None, worker: str) -> EpisodeRecord:
    """The results line of ``job`` (``result``: the episode, or what of it ran before an error)."""
    length, kind = reference
    success = bool(result is not None and result.solved and error is None)
    steps = len(result.steps) if result is not None else 0
    ratio = None
    if success and length is not None:
        ratio = steps / length if length > 0 else (1.0 if steps == 0 else None)
    return EpisodeRecord(
        job=job.id, success=success, plan_length=steps, reference_length=length,
        reference=kind if length is not None else None,  # type: ignore[arg-type]  # "optimal" or "gold"
        ratio=round(ratio, 6) if ratio is not None else None,
        replans=result.replans if result else 0, searches=result.searches if result else 0,
        divergences=result.divergences if result else 0, probes=result.probes if result else 0,
        model_calls=result.model_calls if result else 0, seconds=round(seconds, 4),
        stopped_by="error" if error else (result.stopped_by if result else "error"), error=error,
        plan=[a.name for a in result.actions] if result else [], worker=worker, finished=round(time.time(), 3))


def _crash_record(finished: Finished[EvalJob, EpisodeRecord]) -> EpisodeRecord:
    """The record of a job whose worker failed outside the episode (it died, or the runner
    itself raised)."""
    job = finished.job
    return EpisodeRecord(job=job.id, success=False, plan_length=0, stopped_by="error",
                         error=f"job {job.id}: {finished.error}", seconds=round(finished.seconds, 4),
                         finished=round(time.time(), 3))


# -- the batch ----------------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class EvalSummary:
    """Every job of a batch, those run earlier included.

    Attributes:
        results: the results file.
        executor, workers: what ran this invocation's jobs.
        jobs: jobs in the batch.
        done: jobs with a record (``jobs`` when the batch completed).
        ran: jobs run by this invocation.
        solved: jobs whose latest record is a solved episode.
        errors: the error of each job whose latest record is an error (the job raised).
        mean_ratio: mean plan length / reference length over solved episodes with a
            reference (``None``: none).
        ratios: how many episodes ``mean_ratio`` averages.
        mean_plan_length: mean plan length of the solved episodes (``None``: none).
        model_calls: world-model predictions over all recorded episodes.
        wall_seconds: this invocation's wall time (seconds; worker start-up included).
        episode_seconds: summed episode times of this invocation's jobs (seconds).
    """

    results: str
    executor: str
    workers: int
    jobs: int
    done: int
    ran: int
    solved: int
    errors: tuple[str, ...]
    mean_ratio: float | None
    ratios: int
    mean_plan_length: float | None
    model_calls: int
    wall_seconds: float
    episode_seconds: float

    @property
    def success_rate(self) -> float | None:
        """Solved jobs over jobs done (``None`` when none is done)."""
        return self.solved / self.done if self.done else None

    @property
    def episodes_per_second(self) -> float | None:
        """Episodes this invocation ran per wall second (``None`` when it ran none)."""
        return self.ran / self.wall_seconds if self.ran and self.wall_seconds > 0 else None

    @property
    def complete(self) -> bool:
        """Every job has a record and none is an error."""
        return self.done == self.jobs and not self.errors

    @classmethod
    def of(cls, results: Results, jobs: Sequence[EvalJob], ran: Sequence[EpisodeRecord], *, executor: Executor,
           wall_seconds: float) -> EvalSummary:
        records = [results.latest[j.id] for j in jobs if j.id in results.latest]
        solved = [r for r in records if r.success]
        ratios = [r.ratio for r in solved if r.ratio is not None]
        return cls(results=str(results.path), executor=executor.name, workers=executor.workers, jobs=len(jobs),
                   done=len(records), ran=len(ran), solved=len(solved),
                   errors=tuple(r.error or "" for r in records if r.error is not None),
                   mean_ratio=_mean(ratios), ratios=len(ratios),
                   mean_plan_length=_mean([r.plan_length for r in solved]),
                   model_calls=sum(r.model_calls for r in records), wall_seconds=wall_seconds,
                   episode_seconds=sum(r.seconds for r in ran))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``success_rate`` and ``episodes_per_second``."""
        data = asdict(self)
        data["errors"] = list(self.errors)
        data["success_rate"] = self.success_rate
        data["episodes_per_second"] = self.episodes_per_second
        return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in data.items()}

    def table(self) -> str:
        """The summary as an aligned two-column table."""
        before = self.done - self.ran
        rate = self.success_rate
        ratio = ("n/a (no solved episode with a reference)" if self.mean_ratio is None
                 else f"{self.mean_ratio:.3f} (mean over {self.ratios} solved episodes with a reference)")
        length = "n/a" if self.mean_plan_length is None else f"{self.mean_plan_length:.1f} (solved episodes)"
        per = f" ({self.model_calls / self.done:,.0f} per episode)" if self.done else ""
        speed = ("n/a (nothing run now)" if self.episodes_per_second is None
                 else f"{self.episodes_per_second:.2f} ({self.ran} episodes run now in {self.wall_seconds:.1f} s; "
                      f"{self.episode_seconds:.1f} s inside episodes)")
        workers = f"{self.executor}, {self.workers} worker{'s' if self.workers != 1 else ''}"
        rows = [
            ("results", f"{self.results} ({self.jobs} jobs: {self.ran} run now, {before} from before"
                        + (f", {self.jobs - self.done} not run" if self.done < self.jobs else "") + ")"),
            ("executor", workers),
            ("success", f"{self.solved}/{self.done}" + (f" ({rate:.1%})" if rate is not None else "")),
            ("errors", str(len(self.errors))),
            ("plan/reference", ratio),
            ("plan length", length),
            ("model calls", f"{self.model_calls:,}{per}"),
            ("episodes/s", speed),
            ("wall time", f"{self.wall_seconds:.1f} s"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


class BatchInterrupted(KeyboardInterrupt):
    """Raised by :func:`evaluate_batch` on an interrupt, after the workers stopped; ``summary``
    covers what was recorded (every record written stays in the file)."""

    def __init__(self, summary: EvalSummary) -> None:
        super().__init__("batch interrupted")
        self.summary = summary


class BatchProgress(Protocol):
    """Receives a batch's progress: :meth:`begin` once, then :meth:`record` per new record."""

    def begin(self, *, total: int, done: Sequence[EpisodeRecord]) -> None: ...

    def record(self, record: EpisodeRecord) -> None: ...


def evaluate_batch(
    settings: EvalSettings,
    jobs: Sequence[EvalJob],
    *,
    results: str | Path,
    executor: Executor,
    progress: BatchProgress | None = None,
    command: str | None = None,
    on_record: Callable[[EpisodeRecord], None] | None = None,
) -> EvalSummary:
    """Run the jobs of a batch that ``results`` does not hold yet and return the summary of
    all of them.

    Args:
        settings: what the jobs share (and the executor's task).
        jobs: the batch (ids must be distinct).
        results: the results file (JSONL; created with its header when missing; see
            :mod:`planner.scale.results` for resuming and the refusal of another batch's file).
        executor: runs the jobs (:func:`~planner.scale.executor.make_executor`).
        progress: shown the progress (e.g. a progress bar).
        command: the command line, recorded in a new file's header.
        on_record: called with each new record after it is written.

    Raises :class:`~planner.errors.ConfigError` for a results file of another batch (or one
    in use), :class:`~planner.io.CorruptLogError` for a malformed one, and
    :class:`BatchInterrupted` on an interrupt (after the workers stopped). A job that raises
    does not raise here: it is recorded with its error (see :attr:`EvalSummary.errors`).
    """
    started = time.perf_counter()
    path = Path(results)
    header = settings.header(command=command)
    ran: list[EpisodeRecord] = []
    with locked(path):
        store = open_results(path, header)
        todo = [j for j in jobs if store.needs(j.id)]
        if progress is not None:
            progress.begin(total=len(jobs),
                           done=[store.latest[j.id] for j in jobs if j.id in store.latest and not store.needs(j.id)])
        log.info("batch", jobs=len(jobs), todo=len(todo), executor=executor.name, results=str(path))
        try:
            if todo:
                with JsonlLog(path) as sink:
                    for finished in executor.run(settings, todo):
                        rec = finished.value if finished.value is not None else _crash_record(finished)
                        sink.write(rec)
                        store.add(rec)
                        ran.append(rec)
                        if progress is not None:
                            progress.record(rec)
                        if on_record is not None:
                            on_record(rec)
        except KeyboardInterrupt:
            raise BatchInterrupted(EvalSummary.of(store, jobs, ran, executor=executor,
                                                  wall_seconds=time.perf_counter() - started)) from None
    return EvalSummary.of(store, jobs, ran, executor=executor, wall_seconds=time.perf_counter() - started)
