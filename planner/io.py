"""The lowest floor: whole-file writes that are atomic, and append-only JSONL logs.

Every layer (environments, search, data, training, the command) writes files through here,
so the rules hold everywhere.

Whole-file writes (:func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_output`)
look at what the path names first:

* a regular file, or nothing yet: replaced atomically — a temporary file with an unpredictable
  name, created exclusively in the same folder, is written, fsynced and renamed over the
  target (then the folder is fsynced, where the system allows). Readers see the old file or
  the new one, never half of one. A new file gets ``0o666 & ~umask``, as ``open`` would give
  it; a replaced file keeps its permission bits (and, where allowed, its owner);
* a symbolic link: followed — what it points to is written by these same rules, and the link
  stays a link (a dangling link gets the file it points to);
* a FIFO or a character or block device: written through (opened for writing and streamed),
  never replaced, so ``/dev/null`` stays a device;
* a directory, a socket or anything else: refused with :class:`FileWriteError`.

Any failure (permission denied, no space, read-only folder, a parent that is a file) raises
:class:`FileWriteError` naming the path and the reason, and leaves no temporary file behind —
also when the write is interrupted (``KeyboardInterrupt``).

Append-only logs (:class:`JsonlLog`) hold one JSON object a line and write each record with
one system call, flushed (and by default fsynced) record by record, so a crash loses at most
the record being written. Every reader (:func:`iter_jsonl`, :func:`read_jsonl`) treats the
result the same way: a *torn last line* — an unterminated last line that is not a JSON
object — is skipped; any other line that is not a JSON object (a line nested too deeply to
decode included) raises :class:`CorruptLogError` naming the file and line.

A log never destroys bytes of a file that is not a log: :class:`JsonlLog` refuses a non-empty
regular file whose first non-blank line is not a JSON object (a PDDL file, a model, any binary
file), and only in a genuine log does it cut a torn last line before appending.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel

from planner.errors import PlannerError

__all__ = [
    "CorruptLogError",
    "FileWriteError",
    "JsonlLog",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "current_umask",
    "iter_jsonl",
    "iter_jsonl_numbered",
    "read_jsonl",
    "writable_folder",
]

_NEW_FILE_MODE = 0o666
"""Permission bits a created file asks for; the umask takes its bits away."""

_CHUNK = 1 << 16
"""Bytes read at a time when looking for the start of a log's last line."""

MAX_FIRST_LINE = 16 << 20
"""Longest first line (bytes, 16 MiB) read when checking that a file is a log before appending;
a file whose first line is longer is not taken for one."""

_Kind = Literal["replace", "stream"]


class FileWriteError(PlannerError, OSError):
    """A file could not be written where it was asked to go.

    The message names the path and the reason; ``path`` is the path as given and
    ``os_errno`` the system's error number when a system call failed (else ``None``; the
    message shows it too). ``errno`` itself is always ``None``: command-line parsers take an
    ``OSError`` with ``errno == EPIPE`` for a closed standard output and exit silently, which
    would hide a log that could not be written.
    """

    def __init__(self, message: str, *, path: str | None = None, os_errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.os_errno = os_errno


class CorruptLogError(PlannerError, ValueError):
    """A JSONL file has a line that is not a JSON object (other than a torn last line), or a
    line that is not the record the reader expects. The message names the file and line."""


# -- errors ---------------------------------------------------------------------------------
def _write_error(path: str | Path, reason: str, *, cause: OSError | None = None) -> FileWriteError:
    """A :class:`FileWriteError` for ``path`` saying ``reason``, keeping ``cause``'s error
    number as ``os_errno`` (and in the message), never as ``errno``."""
    code = cause.errno if cause is not None else None
    if code is not None:
        reason += f" [{errno.errorcode.get(code, 'errno')} {code}]"
    return FileWriteError(f"cannot write {path}: {reason}", path=str(path), os_errno=code)


def _reason(exc: OSError, path: str | Path) -> str:
    """The system's words for ``exc``, with the file it concerned when that is not ``path``."""
    text = exc.strerror or str(exc) or type(exc).__name__
    other = exc.filename is not None and os.path.abspath(exc.filename) != os.path.abspath(path)
    return f"{text} ({exc.filename})" if other else text


@contextlib.contextmanager
def _errors_name(path: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` raised inside into a :class:`FileWriteError` naming ``path``."""
    try:
        yield
    except PlannerError:
        raise
    except OSError as exc:
        raise _write_error(path, _reason(exc, path), cause=exc) from exc


# -- output folders -------------------------------------------------------------------------
def writable_folder(path: str | Path, *, create: bool = True) -> Path:
    """Check that the folder ``path`` can be written, so a long job fails before it starts, not
    at its first write: make it (and its parents) and a file in it; with ``create=False`` make
    nothing that stays — the file is tried in the nearest folder that exists (``path`` itself, or
    the one its missing folders would be made in), so a request refused later leaves no folder
    behind.

    Raises :class:`FileWriteError` naming ``path``: when it, or a folder above it, is a file;
    when it cannot be made or looked at (no permission); when no file can be made in it
    (read-only, no permission, no inodes left)."""
    folder = Path(path)
    with _errors_name(path):
        existing = folder
        for above in (folder, *folder.parents):
            if above.exists() or above.is_symlink():
                if not above.is_dir():
                    what = "it is" if above == folder else f"{above} is"
                    raise _write_error(path, f"{what} a file, not a folder")
                existing = above
                break
        if create:
            folder.mkdir(parents=True, exist_ok=True)
            existing = folder
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=existing)
    except OSError as exc:
        where = "in it" if existing == folder else f"in {existing}"
        raise _write_error(path, f"no file can be made {where}: {exc.strerror or exc}", cause=exc) from exc
    os.close(fd)
    os.unlink(probe)
    return folder


# -- permissions ----------------------------------------------------------------------------
def current_umask() -> int:
    """The process's umask (permission bits, e.g. ``0o022``), read without changing it.

    Linux reports it in ``/proc/self/status``; elsewhere it is read by setting and restoring
    it (briefly ``0o077``, the safe value, in case another thread creates a file meanwhile).
    """
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status", errors="replace") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8) & 0o777
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _mode_for(existing: os.stat_result | None) -> int:
    """Permission bits of the new file: the old file's, or what the umask allows."""
    if existing is not None:
        return stat.S_IMODE(existing.st_mode)
    return _NEW_FILE_MODE & ~current_umask()


def _keep_owner(fd: int, existing: os.stat_result) -> None:
    """Give the open file ``existing``'s owner and group where the system allows (best effort)."""
    own = os.fstat(fd)
    if (own.st_uid, own.st_gid) != (existing.st_uid, existing.st_gid):
        with contextlib.suppress(OSError):
            os.fchown(fd, existing.st_uid, existing.st_gid)


# -- what a path names ----------------------------------------------------------------------
def _describe(mode: int) -> str:
    """What a file of ``mode`` is, in words, for a refusal."""
    if stat.S_ISDIR(mode):
        return "it is a directory"
    if stat.S_ISSOCK(mode):
        return "it is a socket"
    if stat.S_ISLNK(mode):
        return "it is a symbolic link that does not resolve (a loop)"
    return "it is not a regular file, a FIFO or a device"


def _target(path: str | Path) -> tuple[Path, os.stat_result | None, _Kind]:
    """Where the bytes for ``path`` go (symbolic links followed), what is there now (``None``:
    nothing) and how to write it: ``"replace"`` atomically or ``"stream"`` through.

    Refuses (:class:`FileWriteError`) a directory, a socket or anything else.
    """
    with _errors_name(path):
        real = Path(os.path.realpath(path))
        try:
            existing: os.stat_result | None = os.lstat(real)
        except FileNotFoundError:
            existing = None
    if existing is None or stat.S_ISREG(existing.st_mode):
        return real, existing, "replace"
    mode = existing.st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return real, existing, "stream"
    where = f" ({real})" if str(real) != os.path.abspath(path) else ""
    raise _write_error(path, _describe(mode) + where)


# -- whole-file writes ----------------------------------------------------------------------
def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable, where the system allows (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _temp_file(target: Path, kind: _Kind) -> Path:
    """A new, empty, private (0600) temporary file with an unpredictable name: beside
    ``target`` when it will be renamed over it, in the system's temporary folder otherwise."""
    if kind == "replace":
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name[:64]}.", suffix=".tmp", dir=target.parent)
    else:
        fd, name = tempfile.mkstemp(prefix=".planner-", suffix=".tmp")
    os.close(fd)
    return Path(name)


def _commit_replace(tmp: Path, target: Path, existing: os.stat_result | None) -> None:
    """Give ``tmp`` its final owner and mode, fsync it and rename it over ``target``."""
    fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        if existing is not None:
            _keep_owner(fd, existing)  # before chmod: a change of owner clears set-id bits
        os.fchmod(fd, _mode_for(existing))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    _fsync_folder(target.parent)


def _stream_into(target: Path, source: IO[bytes]) -> None:
    """Copy ``source`` into the FIFO or device ``target`` (opened for writing, not created,
    not truncated; opening a FIFO waits for a reader)."""
    fd = os.open(target, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
    with open(fd, "wb") as out:
        shutil.copyfileobj(source, out, _CHUNK)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path for ``path``'s new content; on success it takes its place.

    For writers that need a file name (a GGUF writer, llama.cpp's quantizer): write the whole
    file at the yielded path (it exists, empty). Then, by what ``path`` names (see the module
    notes): a regular file or a new path is replaced atomically; a symbolic link's target is
    written by these same rules; for a FIFO or a device the temporary file is streamed into it
    and deleted. A directory, a socket or anything else is refused before the block runs.

    Raises :class:`FileWriteError` naming ``path`` for any ``OSError`` (also one raised inside
    the block); the temporary file is removed on every failure, ``KeyboardInterrupt`` included.
    """
    target, existing, kind = _target(path)
    with _output(path, target, existing, kind) as tmp:
        yield tmp


@contextlib.contextmanager
def _output(path: str | Path, target: Path, existing: os.stat_result | None, kind: _Kind) -> Iterator[Path]:
    """:func:`atomic_output` once ``path`` is resolved to ``target`` (now ``existing``)."""
    with _errors_name(path):
        tmp = _temp_file(target, kind)
    committed = False
    try:
        with _errors_name(path):
            yield tmp
            if kind == "replace":
                _commit_replace(tmp, target, existing)
                committed = True
            else:
                with open(tmp, "rb") as source:
                    _stream_into(target, source)
    finally:
        if not committed:
            with contextlib.suppress(OSError):
                tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` as the whole content of ``path`` (see the module notes for what each kind
    of file gets); raises :class:`FileWriteError` naming ``path`` on failure."""
    target, existing, kind = _target(path)
    if kind == "stream":
        with _errors_name(path):
            _stream_into(target, io.BytesIO(data))
        return
    with _output(path, target, existing, kind) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (encoded as UTF-8) as the whole content of ``path``, as
    :func:`atomic_write_bytes` does."""
    atomic_write_bytes(path, text.encode("utf-8"))


# -- JSONL ----------------------------------------------------------------------------------
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _decode_line(raw: bytes) -> dict[str, Any] | None:
    """The JSON object on one line (``None`` for a blank line); ``ValueError`` saying why not."""
    text = raw.decode("utf-8")
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except RecursionError:
        raise CorruptLogError("it is nested too deeply to decode") from None
    if not isinstance(value, dict):
        raise CorruptLogError(f"it is a JSON {_JSON_KINDS.get(type(value), type(value).__name__)}")
    return value


def _encode_record(record: BaseModel | dict[str, Any]) -> bytes:
    """One log line (UTF-8, ending in a newline) for ``record``.

    Text that UTF-8 cannot carry (a lone surrogate) is written as JSON escapes instead.
    """
    data = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
    try:
        return (json.dumps(data, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(data, sort_keys=True) + "\n").encode("ascii")


def iter_jsonl_numbered(path: str | Path, *, lines: Iterable[bytes] | None = None,
                        ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number from 1, record) for each JSON object in the JSONL file ``path``, streamed.

    Blank lines are skipped, and so is a torn last line (unterminated and not a JSON object:
    what a crash in the middle of a write leaves). Any other line that is not a JSON object
    raises :class:`CorruptLogError` naming the file and the line. Errors opening or reading
    the file propagate as ``OSError``.

    ``lines`` (each ending in its newline but perhaps the last): read these instead of the
    file's, e.g. a byte range of it cut at line ends, numbered from 1 and named ``path`` in errors.
    """
    if lines is not None:
        yield from _numbered(path, lines)
        return
    with open(path, "rb") as fh:
        yield from _numbered(path, fh)


def _numbered(path: str | Path, lines: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(lines, start=1):
        terminated = raw.endswith(b"\n")
        try:
            record = _decode_line(raw)
        except ValueError as exc:
            if not terminated:
                return  # a torn last line
            snippet = raw[:80].decode("utf-8", errors="replace").rstrip("\n")
            raise CorruptLogError(f"{path}:{number}: not a JSON object ({exc}): {snippet!r}") from None
        if record is not None:
            yield number, record


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of the JSONL file ``path``, streamed (as :func:`iter_jsonl_numbered`)."""
    for _, record in iter_jsonl_numbered(path):
        yield record


def read_jsonl(path: str | Path, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The records of the JSONL file ``path`` (the first ``limit`` of them when given).

    A torn last line is skipped; :class:`CorruptLogError` names the file and line of any
    other line that is not a JSON object.
    """
    return list(itertools.islice(iter_jsonl(path), limit))


def _line_start(fd: int, end: int) -> int:
    """Offset just after the last newline before ``end`` in the open file (0 if none)."""
    pos = end
    while pos > 0:
        size = min(_CHUNK, pos)
        pos -= size
        found = os.pread(fd, size, pos).rfind(b"\n")
        if found >= 0:
            return pos + found + 1
    return 0


def _first_line(fd: int) -> tuple[bytes, bool] | None:
    """The first non-blank line of the open file ``fd`` (without its newline) and whether a
    newline ends it; ``None`` when the file holds only blanks. Reads at most
    :data:`MAX_FIRST_LINE` bytes: a longer line comes back cut and unterminated."""
    head = bytearray()
    start = -1
    while len(head) < MAX_FIRST_LINE:
        chunk = os.pread(fd, _CHUNK, len(head))
        if not chunk:
            return (bytes(head[start:]), False) if start >= 0 else None
        scanned = len(head)
        head += chunk
        if start < 0:
            found = re.search(rb"\S", head[scanned:])
            if found is None:
                continue
            start = scanned + found.start()
        end = head.find(b"\n", max(scanned, start))
        if end >= 0:
            return bytes(head[start:end]), True
    return bytes(head[max(start, 0):]), False


def _is_log(fd: int) -> bool:
    """Whether the open regular file ``fd`` may be appended to as a log: it is empty or blank,
    or its first non-blank line is a whole JSON object (no NUL bytes, valid UTF-8)."""
    first = _first_line(fd)
    if first is None:
        return True
    line, terminated = first
    if b"\0" in line:
        return False
    try:
        record = _decode_line(line)
    except ValueError:
        return False
    return record is not None and (terminated or len(line) < MAX_FIRST_LINE)


def _end_last_line(fd: int) -> None:
    """Make the next append start on a fresh line of the open regular file ``fd`` (a log:
    see :func:`_is_log`).

    An unterminated last line that holds a JSON object (or only blanks) gets its newline; one
    that does not is a torn record, which every reader skips: it is cut off, so that it does
    not become a corrupt line in the middle of the log.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = _line_start(fd, size)
    try:
        _decode_line(os.pread(fd, size - start, start))
    except ValueError:
        os.ftruncate(fd, start)
        return
    _write_all(fd, b"\n")


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (one call unless the system takes less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _open_log(path: Path) -> tuple[int, bool]:
    """Open ``path`` for appending (created with its folder when missing): (fd, is it a
    regular file). Refuses a directory or a socket; a FIFO or device is opened write-only."""
    target, existing, kind = _target(path)
    with _errors_name(path):
        if kind == "stream":
            return os.open(target, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOCTTY", 0)), False
        if existing is None:
            target.parent.mkdir(parents=True, exist_ok=True)
        return os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, _NEW_FILE_MODE), True


class JsonlLog:
    """Appends records (pydantic models or dicts, one JSON object a line) to ``path``.

    The file is created with its folder when missing (mode ``0o666 & ~umask``) and never
    rewritten: the only change to what was there is that, before the first new record, an
    unterminated last line is ended — or, when it is a torn record that no reader accepts,
    cut off — so the new record starts on a line of its own. Each record is written with one
    system call and, with ``fsync`` (the default), fsynced before :meth:`write` returns.

    A non-empty regular file whose first non-blank line is not a JSON object (a PDDL file, a
    model, any binary file; also a log holding nothing but a torn first record) is refused
    when the log is opened, and left byte for byte as it was. Errors opening, checking,
    writing, fsyncing or closing raise :class:`FileWriteError` naming the path (its
    ``errno`` is ``None``; ``os_errno`` keeps the system's number).

    Use as a context manager or call :meth:`close`. One writer per log at a time.
    """

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._fd: int | None = None
        self._fd, self._regular = _open_log(self.path)
        self._line_checked = not self._regular
        if self._regular:
            self._refuse_unless_log()
        self.written = 0
        """Records written through this object."""

    def _refuse_unless_log(self) -> None:
        """Close the file and raise :class:`FileWriteError` unless it looks like a log."""
        assert self._fd is not None
        try:
            with _errors_name(self.path):
                looks_like_log = _is_log(self._fd)
        except FileWriteError:
            self._abandon()
            raise
        if not looks_like_log:
            self._abandon()
            raise _write_error(self.path, "it does not look like a JSONL log (its first line is not a JSON object); "
                                          "refusing to append")

    def _abandon(self) -> None:
        """Close the file, ignoring errors (it was not written)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, record: BaseModel | dict[str, Any]) -> None:
        """Append ``record`` as one line."""
        if self._fd is None:
            raise _write_error(self.path, "the log is closed")
        line = _encode_record(record)
        with _errors_name(self.path):
            if not self._line_checked:
                _end_last_line(self._fd)
                self._line_checked = True
            _write_all(self._fd, line)
            if self._fsync and self._regular:
                os.fsync(self._fd)
        self.written += 1

    def close(self) -> None:
        """Close the file (idempotent); a failure the system reports on closing (a delayed
        write error) raises :class:`FileWriteError`."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with _errors_name(self.path):
                os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
