"""Jobs on Ray actors: ``--ray ADDRESS`` (a running cluster) or ``--ray local`` (started here).

Each actor is one worker: it starts the task once (loads its world model) and runs the jobs
it is handed one at a time, so the driver keeps every actor busy and yields results as they
complete. An actor that dies (its process crashed or was killed) fails the job it ran, with
an error naming that, and is replaced. Ray is the optional ``ray`` extra
(``pip install 'planner[ray]'``); without it :class:`RayExecutor` raises a one-line
:class:`~planner.errors.ConfigError` naming the extra.

Workers on a remote cluster import ``planner`` and read the files the jobs name (models,
PDDL files, environment factories) from their own machine: install the package and put the
files at the same paths on every node. On the driver's own machine the workers start in the
driver's working folder, so relative paths mean the same there.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from planner.errors import ConfigError
from planner.logs import get_logger
from planner.scale.executor import Finished, WorkerTask, call_job, check_workers

__all__ = ["RAY_EXTRA", "RayExecutor", "import_ray"]

log = get_logger(__name__)

J = TypeVar("J")
R = TypeVar("R")

RAY_EXTRA = "pip install 'planner[ray]'"
"""How to install the optional Ray support."""

LOCAL = "local"
"""``--ray local``: start a Ray instance on this machine (and stop it at the end)."""


def import_ray() -> Any:
    """The ``ray`` module, or :class:`ConfigError` (one line) saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--ray needs the ray package, which is not installed ({exc}); install the extra: "
                          f"{RAY_EXTRA}") from None
    return ray


class _Worker:
    """One Ray actor: the task's job function, started once in the actor's process."""

    def __init__(self, task: WorkerTask[Any, Any], cwd: str) -> None:
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self._fn: Callable[[Any], Any] = task.start()

    def run(self, job: Any) -> Finished[Any, Any]:
        return call_job(self._fn, job)


class RayExecutor:
    """``workers`` Ray actors of one CPU each.

    Args:
        address: a Ray cluster's address (``"ray://host:10001"``, ``"host:6379"``,
            ``"auto"``), or ``"local"`` to start a Ray instance here with as many CPUs as
            workers (at least the machine's cores).
        workers: actors (1..1024); default: the CPUs the cluster reports. More actors than
            the cluster's CPUs are bounded to them (each actor asks for one CPU).

    Ray is connected when :meth:`run` starts and, when this object started or connected it,
    shut down when it ends (an interrupt included).
    """

    name = "ray"

    def __init__(self, *, address: str, workers: int | None = None) -> None:
        if not isinstance(address, str) or not address.strip():
            raise ConfigError(f"--ray needs an address (host:port, ray://host:port, auto) or 'local', got {address!r}")
        self.ray = import_ray()
        self.address = address.strip()
        self.workers = check_workers(workers) if workers is not None else 0  # 0: known once connected

    def _connect(self) -> bool:
        """Connect to (or start) Ray unless it already runs in this process; whether this
        call did it (so :meth:`run` shuts it down)."""
        ray = self.ray
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                   "log_to_driver": False}
        try:
            if self.address == LOCAL:
                from planner.world.engine import available_cores

                ray.init(num_cpus=max(self.workers, available_cores()), **options)
            else:
                _check_reachable(self.address)
                ray.init(address=self.address, **options)
        except Exception as exc:  # connection refused, bad address: Ray's own exception types
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"--ray {self.address}: cannot start or reach Ray: {text}") from None
        return True

    def run(self, task: WorkerTask[J, R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]:
        ray = self.ray
        started = self._connect()
        actors: list[Any] = []
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            count = self.workers or max(1, cpus)
            if count > cpus:
                log.warning("ray_workers_bounded", asked=count, cpus=cpus)
                count = max(1, cpus)
            self.workers = count
            actor_class = ray.remote(num_cpus=1)(_Worker)
            cwd = os.getcwd()

            def new_actor() -> Any:
                return actor_class.remote(task, cwd)

            actors = [new_actor() for _ in range(count)]
            pending = iter(jobs)
            inflight: dict[Any, tuple[Any, J]] = {}

            def hand(actor: Any) -> bool:
                job = next(pending, _END)
                if job is _END:
                    return False
                inflight[actor.run.remote(job)] = (actor, job)  # type: ignore[assignment]
                return True

            for actor in actors:
                if not hand(actor):
                    break
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    actor, job = inflight.pop(ref)
                    try:
                        finished: Finished[J, R] = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        finished = Finished(job, None, "WorkerDied: its Ray worker died while running it "
                                                       f"({_first_line(exc)})")
                        with contextlib.suppress(Exception):
                            ray.kill(actor)
                        actors = [a for a in actors if a is not actor]
                        actor = new_actor()
                        actors.append(actor)
                    except ray.exceptions.RayError as exc:
                        finished = Finished(job, None, f"RayError: {_first_line(exc)}")
                    yield finished
                    hand(actor)
        finally:
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor)
            if started:
                with contextlib.suppress(Exception):
                    ray.shutdown()


_END = object()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


REACH_TIMEOUT_S = 5.0
"""Seconds to wait for a TCP connection to a Ray address before giving up (Ray's own client
retries for minutes)."""


def _check_reachable(address: str) -> None:
    """:class:`ConfigError` when ``host:port`` (or ``ray://host:port``) takes no TCP connection
    within :data:`REACH_TIMEOUT_S`; other forms (``auto``) are left to Ray."""
    import socket
    from urllib.parse import urlsplit

    target = address if "://" in address else f"tcp://{address}"
    try:
        parts = urlsplit(target)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ConfigError(f"--ray {address}: not an address (host:port, ray://host:port, auto or local)") from None
    if not host or port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ConfigError(f"--ray {address}: cannot reach Ray there ({exc.strerror or exc})") from None
