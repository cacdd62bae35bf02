"""Reading a transition log into encoded examples, in several processes when it is large.

Decoding a record's JSON, validating it and encoding it for the fact-delta codec costs about
0.1 ms per record on one core, so a log of 1.7 million transitions took minutes before the
first training step. :func:`encode_log` cuts a large log into byte ranges that end at line ends,
and processes take the ranges in turn, reading and encoding each; the examples come back as
:class:`PackedExamples` — a few flat arrays, which cross a process boundary in milliseconds
where a list of small arrays takes seconds — and are unpacked into views of those arrays, in the
log's order. The result is the one a single process gets, example for example: the same order,
the same goal predicates, the same shared arrays per problem size.

Errors are the single process's too: when a range fails (a line that is not JSON, a record that
cannot be encoded), the ranges not yet begun are dropped and the log is read again in one
process, whose error names the file's line or the record's position from the start; so is a log
replaced or written to while its ranges are read (it is read again as it is then). A reading
process that dies (killed, out of memory) is a :class:`LogReadingError`, not a wait without
end; one whose parent dies ends too (Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import itertools
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from planner.data.collect import TransitionRecord, read_records
from planner.errors import ConfigError
from planner.training.data import Encoded, encode_records, goal_predicates_of, load_records
from planner.training.errors import LogReadingError, TrainingDataError
from planner.world.vocab import Vocabulary

__all__ = ["PackedExamples", "encode_log", "pack_examples"]

CHUNK_BYTES = 32 * 1024 * 1024
"""Bytes of log each process reads and encodes at a time (about 13,000 household records)."""

_FIELDS = ("goal", "state", "answer", "next_state", "goal_next", "goal_now")
"""The token arrays of :class:`~planner.training.data.Encoded`, in the order they are packed."""


@dataclass(frozen=True, eq=False)
class PackedExamples:
    """Encoded examples as flat arrays (see :func:`pack_examples`).

    ``tokens`` holds every example's token arrays one after another, in :data:`_FIELDS` order;
    ``lengths[i, j]`` is the length of example ``i``'s field ``j``. ``pools``/``ranks`` are the
    distinct ``fact_pool``/``rank`` arrays, and ``pool_index``/``rank_index`` say which one
    each example shares.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    action: np.ndarray
    applicable: np.ndarray
    objects: np.ndarray
    pool_index: np.ndarray
    pools: tuple[np.ndarray, ...]
    rank_index: np.ndarray
    ranks: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.action)

    def unpack(self) -> list[Encoded]:
        """The examples, their token arrays views of :attr:`tokens` (no copies); the shared
        ``fact_pool`` and ``rank`` arrays stay shared."""
        ends = np.cumsum(self.lengths.reshape(-1)).tolist()
        starts = [0, *ends[:-1]]
        tokens, pools, ranks = self.tokens, self.pools, self.ranks
        out: list[Encoded] = []
        width = len(_FIELDS)
        for i, (action, applicable, objects, pool, rank) in enumerate(zip(
                self.action.tolist(), self.applicable.tolist(), self.objects.tolist(), self.pool_index.tolist(),
                self.rank_index.tolist())):
            k = i * width
            goal, state, answer, next_state, goal_next, goal_now = (
                tokens[starts[k + j]:ends[k + j]] for j in range(width))
            out.append(Encoded(goal=goal, state=state, action=action, answer=answer, applicable=applicable,
                               next_state=next_state, goal_next=goal_next, goal_now=goal_now,
                               fact_pool=pools[pool], rank=ranks[rank], objects=objects))
        return out


def pack_examples(examples: Sequence[Encoded]) -> PackedExamples:
    """``examples`` as :class:`PackedExamples`; ``pack_examples(xs).unpack()`` equals ``xs``
    field for field (token arrays of one integer type keep it)."""
    pools: dict[int, int] = {}
    ranks: dict[int, int] = {}
    pool_arrays: list[np.ndarray] = []
    rank_arrays: list[np.ndarray] = []

    def index(array: np.ndarray, seen: dict[int, int], arrays: list[np.ndarray]) -> int:
        place = seen.get(id(array))
        if place is None:
            place = seen[id(array)] = len(arrays)
            arrays.append(array)
        return place

    pieces = [getattr(e, name) for e in examples for name in _FIELDS]
    return PackedExamples(
        tokens=np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32),
        lengths=np.array([len(p) for p in pieces], dtype=np.int64).reshape(len(examples), len(_FIELDS)),
        action=np.array([e.action for e in examples], dtype=np.int64),
        applicable=np.array([e.applicable for e in examples], dtype=bool),
        objects=np.array([e.objects for e in examples], dtype=np.int64),
        pool_index=np.array([index(e.fact_pool, pools, pool_arrays) for e in examples], dtype=np.int32),
        pools=tuple(pool_arrays),
        rank_index=np.array([index(e.rank, ranks, rank_arrays) for e in examples], dtype=np.int32),
        ranks=tuple(rank_arrays),
    )


@dataclass(frozen=True)
class _Range:
    """What one process encodes: bytes ``start`` to ``end`` of the log (whole lines), as the
    file was when it was cut (``version``: :func:`_version` then)."""

    path: str
    start: int
    end: int
    vocab: Vocabulary
    predicates: Mapping[str, int]
    actions: Mapping[str, int]
    max_objects: int
    version: tuple[int, ...]
    goal_predicates: tuple[str, ...] | None = None


def _version(stat: os.stat_result) -> tuple[int, ...]:
    """Which file, of what size, last written when: a log replaced or written to since it was
    cut into ranges has another."""
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True)
class _Encoded:
    """One range's result: its examples, the goal predicates they were encoded with (those of
    the range's own records unless given) and the problems its records name; or ``failed``."""

    examples: PackedExamples | None
    goal_predicates: tuple[str, ...]
    problems: frozenset[str]
    failed: bool = False


def _records_in(part: _Range) -> list[TransitionRecord]:
    """The records on the lines of ``part``, read as :func:`~planner.data.collect.read_records`
    reads a log; ``ValueError`` for a line that is not a record, or a file that changed."""
    with open(part.path, "rb") as fh:
        if _version(os.fstat(fh.fileno())) != part.version:  # one process reads it as it is now
            raise ValueError(f"{part.path} changed while it was read")
        fh.seek(part.start)
        data = fh.read(part.end - part.start)
    return read_records(part.path, lines=io.BytesIO(data))  # lines split at b"\n" alone


def _init_reader() -> None:
    """Set up a reading process: it ends quietly when its pool or its parent ends (a forked
    child has its parent's handlers: the command line's SIGTERM handler would print a
    traceback), leaves Ctrl-C to the process that started it, and then lets signals in."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)


def _end_with_parent() -> None:
    """Have the kernel end this process when the process that started it dies (Linux), so an
    abandoned reader does not read on and then print a broken pipe; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # no prctl: the reader ends at its next write instead
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(0)


_PR_SET_PDEATHSIG = 1


def _encode_range(part: _Range) -> _Encoded:
    """Read and encode ``part`` (run in a reading process)."""
    try:
        records = _records_in(part)
        goal_predicates = part.goal_predicates or goal_predicates_of(records)
        examples = encode_records(records, part.vocab, part.predicates, part.actions, part.max_objects,
                                  goal_predicates)
    except (ValueError, TrainingDataError):  # pydantic's ValidationError is a ValueError
        return _Encoded(None, (), frozenset(), failed=True)
    return _Encoded(pack_examples(examples), goal_predicates, frozenset(r.problem for r in records))


def _ranges(path: Path, size: int, chunk: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``chunk`` bytes covering the file, each ending just after a newline
    (the last at the end of the file)."""
    bounds = [0]
    with open(path, "rb") as fh:
        while bounds[-1] + chunk < size:
            fh.seek(bounds[-1] + chunk)
            fh.readline()  # to the end of the line the cut fell in
            position = fh.tell()
            if position >= size:
                break
            bounds.append(position)
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def encode_log(path: str | Path, vocab: Vocabulary, predicates: Mapping[str, int], actions: Mapping[str, int],
               max_objects: int, *, limit: int | None = None, processes: int = 1,
               chunk_bytes: int = CHUNK_BYTES) -> tuple[int, int, list[Encoded]]:
    """(records, distinct problems, encoded examples) of the transition log ``path`` (its first
    ``limit`` records when given), as :func:`~planner.training.data.encode_records` of
    :func:`~planner.training.data.load_records` gives them.

    With ``processes`` > 1 and a log longer than ``chunk_bytes``, that many processes read and
    encode ranges of about ``chunk_bytes`` each (a ``limit`` reads in one process).

    Raises what the single process raises: :class:`~planner.io.CorruptLogError` naming the
    line that is not a record, :class:`TrainingDataError` naming the record that cannot be
    encoded, ``OSError`` for a file that cannot be read.
    """
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise ConfigError(f"chunk_bytes must be a whole number of bytes >= 1, got {chunk_bytes!r}")
    stat = os.stat(path)
    size = stat.st_size
    if limit is not None or processes <= 1 or size <= chunk_bytes:
        return _encode_in_one(path, vocab, predicates, actions, max_objects, limit=limit)
    parts = [_Range(os.fsdecode(path), start, end, vocab, dict(predicates), dict(actions), max_objects,
                    _version(stat))
             for start, end in _ranges(Path(os.fsdecode(path)), size, chunk_bytes)]
    results = _encode_ranges(parts, processes)
    if results is None:  # a range failed: the single process names the line or record
        return _encode_in_one(path, vocab, predicates, actions, max_objects, limit=None)
    return _joined(results)


def _encode_ranges(parts: list[_Range], processes: int) -> list[_Encoded] | None:
    """Every range encoded, in order, with the goal predicates of them all (a range whose own
    records use fewer is encoded again); ``None`` as soon as one fails (the ranges not yet begun
    are dropped). :class:`LogReadingError` when a reading process dies."""
    # The platform's way of starting processes (fork on Linux before Python 3.14). A reading
    # process uses neither PyTorch, CUDA nor llama.cpp, whatever the process that starts it has
    # running.
    with ProcessPoolExecutor(min(processes, len(parts)), mp_context=multiprocessing.get_context(),
                             initializer=_init_reader) as pool:
        try:
            results = _each(pool, parts)
            if results is None:
                return None
            goal_predicates = tuple(sorted({p for r in results for p in r.goal_predicates}))
            again = [i for i, r in enumerate(results) if r.goal_predicates != goal_predicates]
            encoded_again = _each(pool, [replace(parts[i], goal_predicates=goal_predicates) for i in again])
            if encoded_again is None:
                return None
            for i, result in zip(again, encoded_again, strict=True):
                results[i] = result
        except BrokenProcessPool:
            raise LogReadingError(f"a process reading {parts[0].path} ended without an answer (killed, out of "
                                  "memory, or unable to start); read it in one process with --threads 1") from None
        except BaseException:  # Ctrl-C, an error: the readers stop now, not after their ranges
            _stop(pool)
            raise
    return results


def _each(pool: ProcessPoolExecutor, parts: list[_Range]) -> list[_Encoded] | None:
    """``parts`` encoded by ``pool``'s processes, in order; ``None`` at the first that fails
    (the parts not yet begun are dropped)."""
    with _signals_blocked():  # the processes start here, and unblock once they are set up
        encoded = pool.map(_encode_range, parts)
    out: list[_Encoded] = []
    for result in encoded:
        if result.failed:
            pool.shutdown(wait=True, cancel_futures=True)
            return None
        out.append(result)
    return out


def _stop(pool: ProcessPoolExecutor) -> None:
    """End ``pool``'s processes at once (the executor itself only waits for them)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


_STOPPING = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """SIGINT and SIGTERM held back (not lost) while reading processes start: a process started
    meanwhile inherits the block and sets its own handlers before it lifts it
    (:func:`_init_reader`), so a signal never finds it with its parent's handlers. Off the main
    thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _joined(results: list[_Encoded]) -> tuple[int, int, list[Encoded]]:
    """The ranges' examples in order, sharing arrays as one process shares them: one ``rank``
    array for all, and one read-only ``fact_pool`` per problem size (each range brings its own
    copies; equal ones are made one again here)."""
    ranks: dict[bytes, np.ndarray] = {}
    pools: dict[tuple[int, bytes], np.ndarray] = {}

    def key(array: np.ndarray) -> bytes:
        return array.dtype.str.encode() + array.tobytes()

    def pool_of(packed: PackedExamples, index: int) -> np.ndarray:
        array = packed.pools[index]
        size = int(packed.objects[int(np.argmax(packed.pool_index == index))])
        shared = pools.setdefault((size, key(array)), array)
        shared.flags.writeable = False
        return shared

    examples: list[Encoded] = []
    problems: set[str] = set()
    for result in results:
        assert result.examples is not None
        packed = result.examples
        packed = replace(packed, pools=tuple(pool_of(packed, i) for i in range(len(packed.pools))),
                         ranks=tuple(ranks.setdefault(key(r), r) for r in packed.ranks))
        examples.extend(packed.unpack())
        problems |= result.problems
    return len(examples), len(problems), examples


def _encode_in_one(path: str | Path, vocab: Vocabulary, predicates: Mapping[str, int], actions: Mapping[str, int],
                   max_objects: int, *, limit: int | None) -> tuple[int, int, list[Encoded]]:
    records = load_records(path, limit=limit)
    examples = encode_records(records, vocab, predicates, actions, max_objects)
    return len(records), len({r.problem for r in records}), examples
