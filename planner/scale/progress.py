"""A progress bar for batches, on standard error: jobs done of all, successes, errors.

Shown only when standard error is a terminal (piped or redirected, nothing is drawn: the
results file and the final summary say everything). Jobs finished by an earlier run of a
resumed batch count as done from the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["JobProgress"]


class JobProgress:
    """A context manager drawing ``description  [bar]  done/total  ✓ successes  ✗ errors  elapsed  left``.

    Use :meth:`begin` (total and jobs already done) and :meth:`record` (one finished job) as a
    :class:`~planner.scale.eval.BatchProgress`, or :meth:`advance` for jobs without a notion
    of success.
    """

    def __init__(self, console: Console, description: str) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[green]✓ {task.fields[solved]}[/] [red]✗ {task.fields[errors]}[/]"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=not console.is_terminal, transient=False)
        self._task = self._bar.add_task(description, total=None, solved=0, errors=0)
        self.solved = 0
        self.errors = 0

    def __enter__(self) -> JobProgress:
        self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.stop()

    def begin(self, *, total: int, done: Sequence[Any] = ()) -> None:
        """``total`` jobs, of which ``done`` (records with ``success`` and ``error``) are
        finished already."""
        self.solved = sum(bool(getattr(r, "success", False)) for r in done)
        self.errors = sum(getattr(r, "error", None) is not None for r in done)
        self._bar.update(self._task, total=total, completed=len(done), solved=self.solved, errors=self.errors)

    def record(self, record: Any) -> None:
        """One more job finished (``record.success``, ``record.error``)."""
        self.advance(success=bool(getattr(record, "success", False)), error=getattr(record, "error", None) is not None)

    def advance(self, *, success: bool = False, error: bool = False) -> None:
        """One more job finished."""
        self.solved += success
        self.errors += error
        self._bar.update(self._task, advance=1, solved=self.solved, errors=self.errors)
