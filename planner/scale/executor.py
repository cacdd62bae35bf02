"""Executors: run many independent jobs, serially, in a local process pool, or on Ray.

A *task* is a picklable object whose :meth:`WorkerTask.start` runs once in each worker and
returns the function that runs one job there; so a worker loads its world model once and
reuses it for every job it gets. Jobs are picklable frozen specs. Every executor yields one
:class:`Finished` per job, as the jobs complete (unordered), and never raises for one job:

- an exception inside the job function becomes ``Finished.error`` (``"TypeName: message"``);
- a worker process that dies while running a job (a crash inside llama.cpp, the kernel's
  OOM killer) becomes an error of that job (:class:`ProcessExecutor` finds the guilty job by
  running the jobs that were in flight again one at a time; Ray names it directly).

:class:`SerialExecutor` runs the jobs in this process, in order. :class:`ProcessExecutor` runs
``workers`` processes started with ``spawn`` (llama.cpp and threads do not survive ``fork``);
:class:`~planner.scale.ray_executor.RayExecutor` runs ``workers`` Ray actors. On an interrupt
(``KeyboardInterrupt``: Ctrl-C, or SIGTERM turned into one by the command) the pool's workers
are terminated and the interrupt propagates; what was yielded before stays yielded.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from planner.errors import ConfigError
from planner.logs import get_logger

__all__ = [
    "MAX_WORKERS", "Executor", "Finished", "ProcessExecutor", "SerialExecutor", "WorkerTask", "make_executor",
]

log = get_logger(__name__)

J = TypeVar("J")
R = TypeVar("R")
J_contra = TypeVar("J_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)

MAX_WORKERS = 1024
"""Most workers an executor accepts."""

IN_FLIGHT_PER_WORKER = 2
"""Jobs handed to a process pool ahead of time, per worker: enough to keep every worker busy,
few enough that an interrupt or a crash has little to cancel or re-run."""


class WorkerTask(Protocol[J_contra, R_co]):
    """What a worker runs: :meth:`start` is called once per worker (in the worker's own
    process) and returns the function applied to each job there. Must be picklable."""

    def start(self) -> Callable[[J_contra], R_co]: ...


@dataclass(frozen=True)
class Finished(Generic[J, R]):
    """One job's outcome.

    Attributes:
        job: the job spec as submitted.
        value: what the job function returned (``None`` when it raised).
        error: ``"TypeName: message"`` when the job function raised or its worker died,
            else ``None``.
        seconds: wall time of the job inside its worker (seconds; 0 when its worker died).
    """

    job: J
    value: R | None
    error: str | None = None
    seconds: float = 0.0


def call_job(fn: Callable[[J], R], job: J) -> Finished[J, R]:
    """``fn(job)`` as a :class:`Finished`: an ``Exception`` becomes its ``error`` (an
    interrupt propagates)."""
    started = time.perf_counter()
    try:
        value = fn(job)
    except Exception as exc:
        return Finished(job, None, error_text(exc), time.perf_counter() - started)
    return Finished(job, value, None, time.perf_counter() - started)


def error_text(exc: BaseException) -> str:
    """``"TypeName: first line"`` of an exception, for a record (an error listing its
    ``problems`` one a line, as :class:`~planner.errors.EnvironmentCheckError`, gets them all
    on the line)."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        text = "; ".join(map(str, problems))
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Executor(Protocol):
    """Runs jobs with a :class:`WorkerTask`; see the module's description."""

    name: str
    """Short name for reports: ``"serial"``, ``"processes"``, ``"ray"``."""
    workers: int
    """Jobs run at the same time."""

    def run(self, task: WorkerTask[J, R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]:
        """One :class:`Finished` per job, as jobs complete."""
        ...


def check_workers(workers: object) -> int:
    """``workers`` when it is a whole number in 1..:data:`MAX_WORKERS`, else :class:`ConfigError`."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be a whole number in 1..{MAX_WORKERS}, got {workers!r}")
    return workers


class SerialExecutor:
    """Every job in this process, one after another, in the order given."""

    name = "serial"
    workers = 1

    def run(self, task: WorkerTask[J, R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]:
        fn = task.start()
        for job in jobs:
            yield call_job(fn, job)


# -- local process pool -------------------------------------------------------------------------
_worker_fn: Callable[[Any], Any] | None = None
"""The job function of this worker process (set once by :func:`_start_worker`)."""


def _start_worker(task: WorkerTask[Any, Any]) -> None:
    """Initializer of a pool process: Ctrl-C is the parent's to handle (it terminates the
    pool), so the worker ignores SIGINT; then the task starts (loads its model lazily or now)."""
    global _worker_fn
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_fn = task.start()


def _run_in_worker(job: Any) -> Finished[Any, Any]:
    """One job in a pool process."""
    assert _worker_fn is not None, "worker not started"
    return call_job(_worker_fn, job)


class ProcessExecutor:
    """``workers`` local processes (``concurrent.futures.ProcessPoolExecutor``).

    Args:
        workers: processes (1..:data:`MAX_WORKERS`).
        start_method: ``"spawn"`` (default) or ``"forkserver"``; never ``"fork"``, which does
            not carry llama.cpp's threads and locks into the child safely.

    A process that dies breaks the whole pool (every job in flight fails with it), so the
    jobs in flight then are run again in a fresh pool one at a time: the one that kills its
    worker again is reported with an error, the others run normally.
    """

    name = "processes"

    def __init__(self, *, workers: int, start_method: str = "spawn") -> None:
        self.workers = check_workers(workers)
        if start_method not in ("spawn", "forkserver"):
            raise ConfigError(f"start_method must be 'spawn' or 'forkserver', got {start_method!r}")
        self.start_method = start_method

    def _pool(self, task: WorkerTask[Any, Any], workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(self.start_method),
                                   initializer=_start_worker, initargs=(task,))

    def run(self, task: WorkerTask[J, R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]:
        pending = iter(jobs)
        retry: Iterator[J] | None = None  # jobs in flight when a worker died: run again one at a time
        while True:
            alone = retry is not None
            source = retry if retry is not None else pending
            pool = self._pool(task, 1 if alone else self.workers)
            broken = False
            try:
                for item in self._drain(pool, source, window=1 if alone else self.workers * IN_FLIGHT_PER_WORKER):
                    if isinstance(item, _Broken):
                        broken = True
                        if alone:  # it died with nothing else running: this job kills its worker
                            yield Finished(item.jobs[0], None, "WorkerDied: its worker process died while running "
                                                               "it (killed, or crashed inside native code)")
                        else:
                            log.warning("worker_died", jobs_in_flight=len(item.jobs))
                            retry = iter(item.jobs)
                        break
                    yield item
            except BaseException:
                _terminate(pool)
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            if broken:
                continue  # a fresh pool: the rest of the retries, or the retries themselves
            if alone:
                retry = None  # every retry is through: go on with the jobs not yet run
                continue
            return

    def _drain(self, pool: ProcessPoolExecutor, jobs: Iterator[J], *, window: int) -> Iterator[Any]:
        """Finished jobs of ``jobs`` run on ``pool``, at most ``window`` in flight; a
        :class:`_Broken` (then stop) when the pool breaks."""
        inflight: dict[Future[Any], J] = {}

        def fill() -> None:
            while len(inflight) < window:
                job: Any = next(jobs, _END)
                if job is _END:
                    return
                inflight[pool.submit(_run_in_worker, job)] = job

        try:
            fill()
        except BrokenProcessPool:
            yield _Broken(tuple(inflight.values()))
            return
        while inflight:
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            lost: list[J] = []
            for future in done:
                job = inflight.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    lost.append(job)
            if lost:
                yield _Broken(tuple(lost) + tuple(inflight.values()))
                return
            try:
                fill()
            except BrokenProcessPool:
                yield _Broken(tuple(inflight.values()))
                return


_END = object()


@dataclass(frozen=True)
class _Broken:
    """The pool broke; these jobs were in flight."""

    jobs: tuple[Any, ...]


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's processes now (an interrupt): cancel what waits, terminate what runs."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if callable(terminate):
        with contextlib.suppress(Exception):
            terminate()
        return
    processes = dict(getattr(pool, "_processes", None) or {})
    for process in processes.values():
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes.values():
        with contextlib.suppress(Exception):
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def make_executor(*, workers: int | None, ray: str | None) -> Executor:
    """The executor for ``--workers N`` and ``--ray ADDRESS``: Ray when ``ray`` is given
    (``"local"`` starts a local Ray; ``workers`` actors, default one per CPU Ray reports),
    else serial for one worker and a process pool for more (default 1).

    Raises :class:`ConfigError` for a bad worker count, and (one line, naming the extra) when
    Ray is asked for but not installed.
    """
    if workers is not None:
        check_workers(workers)
    if ray is not None:
        from planner.scale.ray_executor import RayExecutor

        return RayExecutor(address=ray, workers=workers)
    if workers is None or workers == 1:
        return SerialExecutor()
    return ProcessExecutor(workers=workers)
