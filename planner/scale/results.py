"""The results file of ``planner eval``: a header, then one episode record a line.

The file is an append-only JSONL log (:class:`~planner.io.JsonlLog`): every record is written
with one system call, flushed and fsynced as its episode finishes, so a crash or a kill loses
at most the record being written — and readers skip such a torn last line
(:func:`~planner.io.iter_jsonl`), which the next append cuts off.

The first record is an :class:`EvalHeader`: what produced the results (environment and its
arguments or PDDL domain, the model file and its SHA-256, the search, agent and model
configuration, whether reference lengths are computed). Running the same batch again
*resumes* it: :func:`open_results` refuses a header that differs (naming every difference),
then the jobs that already have a record are skipped. A job recorded with an error is run
again, and its newer record is the one that counts (:attr:`Results.latest`). While a batch
runs, the file is locked (``flock``) so a second batch cannot write into it at the same time.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from planner.errors import ConfigError
from planner.io import CorruptLogError, JsonlLog, iter_jsonl_numbered

__all__ = ["FORMAT", "EpisodeRecord", "EvalHeader", "Results", "locked", "open_results"]

FORMAT = "planner-eval"
"""The header's ``format`` value."""
VERSION = 1

JobId = int | str
"""A job's id: the environment seed, or the PDDL problem file's absolute path."""


class EvalHeader(BaseModel):
    """The first record of a results file: what the results are of.

    Attributes:
        source: ``"env"`` (environment seeds) or ``"pddl"`` (PDDL problem files).
        env, env_args: the environment (``--env``) and its factory's keyword arguments.
        domain: the PDDL domain file (absolute path), for ``source == "pddl"``.
        model: ``"oracle"``, or the GGUF file (absolute path; the shipped default resolved).
        model_sha256: the GGUF file's SHA-256 (hex), ``None`` for the oracle.
        config: the ``search`` and ``agent`` sections and the ``model`` section's settings
            that change predictions (``kind``, ``path``, ``cache_size``, ``n_ctx``, ``votes``; not the
            thread count or GPU layers).
        reference: whether reference plan lengths are computed.
        created: when the file was started (Unix time, seconds; not compared).
        command: the command line that started it (not compared).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    record: Literal["header"] = "header"
    format: Literal["planner-eval"] = "planner-eval"
    version: int = VERSION
    source: Literal["env", "pddl"]
    env: str | None = None
    env_args: dict[str, Any] = {}
    domain: str | None = None
    model: str
    model_sha256: str | None = None
    config: dict[str, Any]
    reference: bool = True
    created: float = 0.0
    command: str | None = None

    COMPARED: ClassVar[tuple[str, ...]] = ("version", "source", "env", "env_args", "domain", "model", "model_sha256",
                                 "config", "reference")

    def differences(self, other: EvalHeader) -> list[str]:
        """``"field: this vs other"`` for each compared field that differs (the configuration
        key by key)."""
        out: list[str] = []
        for name in self.COMPARED:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine == theirs:
                continue
            if name == "config" and isinstance(mine, dict) and isinstance(theirs, dict):
                out.extend(_dict_differences("config", mine, theirs))
            else:
                out.append(f"{name}: {_show(mine)} vs {_show(theirs)}")
        return out


def _dict_differences(prefix: str, mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in sorted(set(mine) | set(theirs)):
        a, b = mine.get(key), theirs.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_dict_differences(f"{prefix}.{key}", a, b))
        else:
            out.append(f"{prefix}.{key}: {_show(a)} vs {_show(b)}")
    return out


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:119] + "…"


class EpisodeRecord(BaseModel):
    """One job's result (one line of the results file).

    Attributes:
        job: the environment seed, or the PDDL problem file (absolute path).
        success: the real environment reached the goal.
        plan_length: real steps taken (the executed plan; probes included).
        reference_length: length of a reference plan for the problem (``None``: none known):
            an optimal plan for PDDL problems (A*), the environment's gold or optimal path
            otherwise, when it offers one.
        reference: ``"optimal"`` or ``"gold"`` (what ``reference_length`` is), or ``None``.
        ratio: ``plan_length / reference_length`` for a solved episode with a reference, else
            ``None``.
        replans, searches, divergences, probes: as in :class:`~planner.agent.EpisodeResult`.
        model_calls: world-model predictions asked for (cache hits included).
        seconds: the episode's wall time in its worker, from building the environment to the
            end (model binding included; the reference search not).
        stopped_by: why the episode ended (``"goal"``, ``"max_steps"``, …, ``"error"``).
        error: ``"job ID: TypeName: message"`` when the job raised (then it counts as an
            error, not as an unsolved episode), else ``None``.
        plan: the actions executed, in order.
        worker: ``host:pid`` of the worker that ran it.
        finished: when it finished (Unix time, seconds).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    record: Literal["episode"] = "episode"
    job: JobId
    success: bool
    plan_length: int
    reference_length: int | None = None
    reference: Literal["optimal", "gold"] | None = None
    ratio: float | None = None
    replans: int = 0
    searches: int = 0
    divergences: int = 0
    probes: int = 0
    model_calls: int = 0
    seconds: float = 0.0
    stopped_by: str = ""
    error: str | None = None
    plan: list[str] = []
    worker: str = ""
    finished: float = 0.0


class Results:
    """What a results file holds: its header and the latest record of each job."""

    def __init__(self, path: Path, header: EvalHeader, latest: dict[JobId, EpisodeRecord]) -> None:
        self.path = path
        self.header = header
        self.latest = latest
        """Job id → its most recent record (a job re-run after an error: the newer one)."""

    def needs(self, job: JobId) -> bool:
        """Whether ``job`` still has to run: no record yet, or its latest one is an error."""
        rec = self.latest.get(job)
        return rec is None or rec.error is not None

    def add(self, record: EpisodeRecord) -> None:
        self.latest[record.job] = record


def _read(path: Path) -> tuple[EvalHeader | None, dict[JobId, EpisodeRecord]]:
    """The header and the latest record of each job in ``path`` (:class:`CorruptLogError`
    naming the line of a record that is not one; :class:`ConfigError` for a file that is not
    a results file)."""
    header: EvalHeader | None = None
    latest: dict[JobId, EpisodeRecord] = {}
    for number, data in iter_jsonl_numbered(path):
        kind = data.get("record")
        if header is None:
            if kind != "header" or data.get("format") != FORMAT:
                raise ConfigError(f"--out {path} is not a planner eval results file (its first record is not a "
                                  f"{FORMAT!r} header); name a new file or one an earlier planner eval wrote")
            try:
                header = EvalHeader.model_validate(data)
            except ValidationError as exc:
                raise CorruptLogError(f"{path}:{number}: malformed header: {_first_error(exc)}") from None
            continue
        if kind != "episode":
            raise CorruptLogError(f"{path}:{number}: not an episode record (record={kind!r})")
        try:
            rec = EpisodeRecord.model_validate(data)
        except ValidationError as exc:
            raise CorruptLogError(f"{path}:{number}: malformed episode record: {_first_error(exc)}") from None
        latest[rec.job] = rec
    return header, latest


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or 'record'}: {first['msg']}"


def open_results(path: str | Path, header: EvalHeader) -> Results:
    """The results in ``path`` for a batch described by ``header``: a new (or empty) file gets
    ``header`` as its first record; an existing one must carry an equal header (else
    :class:`ConfigError` naming every difference) and its records are read back."""
    p = Path(path)
    existing, latest = _read(p) if p.is_file() else (None, {})
    if existing is None:
        if latest:  # pragma: no cover - _read refuses records before a header
            raise ConfigError(f"--out {p} holds records but no header")
        with JsonlLog(p) as log:
            log.write(header)
        return Results(p, header, {})
    diffs = existing.differences(header)
    if diffs:
        raise ConfigError(f"--out {p} holds results of another batch; refusing to mix them. Differences (file vs "
                          f"now): {'; '.join(diffs)}. Run with the options it was written with, or name another --out")
    return Results(p, existing, latest)


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created when missing) while the block runs:
    :class:`ConfigError` at once when another process holds it (another batch writing the
    same results file). Where the system has no ``flock``, the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"--out {p} is in use by another planner eval (locked); wait for it or name "
                              "another file") from None
        yield
    finally:
        os.close(fd)
