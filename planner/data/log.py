"""Append-only JSONL logs: one JSON object a line, flushed and fsynced as it is written.

A crash — of the environment, the model or the interpreter — loses nothing already written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel


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
            raise ValueError(f"log {self.path} is closed")
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


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL file; a torn last line (a crash mid-write) is skipped.

    Raises ``ValueError`` naming the file and line for a corrupt line anywhere else.
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
            raise ValueError(f"{path}:{i}: not a JSON line: {exc}") from None
    return records
