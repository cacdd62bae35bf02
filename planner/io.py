"""The lowest floor: whole-file writes that are atomic, and append-only JSONL logs.

Every layer (environments, search, data, training, the command) writes files through here,
so the rules hold everywhere:

* a whole regular file is replaced atomically (a temporary file with an unpredictable name in
  the same folder, fsynced, then renamed over the target): readers see the old file or the
  new one, never half of one;
* created files get the permissions the umask allows (``0o666 & ~umask``), like ``open``;
* an append-only log is flushed (and fsynced) record by record, so a crash loses nothing
  already written, and a torn last line is skipped the same way by every reader.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from planner.errors import PlannerError


class FileWriteError(PlannerError, OSError):
    """A file could not be written where it was asked to go."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it replaces ``path``.

    For writers that need a file name (a GGUF writer, llama.cpp's quantizer). The temporary
    name is unpredictable and created exclusively; it is removed on any failure.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


class JsonlLog:
    """Appends records to ``path`` (created with its folder if missing; never truncated).

    Use as a context manager or call :meth:`close`. Records are pydantic models or dicts.
    """

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._fsync = fsync
        self.written = 0

    def write(self, record: BaseModel | dict[str, Any]) -> None:
        if self._fh is None:
            raise FileWriteError(f"log {self.path} is closed")
        data = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
        self._fh.write(json.dumps(data, sort_keys=True, ensure_ascii=False) + "\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())
        self.written += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CorruptLogError(PlannerError, ValueError):
    """A JSONL file has a line that is not JSON (other than a torn last line)."""


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL file; a torn last line (a crash mid-write) is skipped.

    Raises :class:`CorruptLogError` naming the file and line for a corrupt line anywhere else.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines):
                break
            raise CorruptLogError(f"{path}:{i}: not a JSON line: {exc}") from None
    return records
