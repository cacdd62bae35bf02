"""The ``planner`` console command's entry point.

It imports the command itself only after turning SIGTERM into an interrupt, so Ctrl-C or a
SIGTERM during start-up ends with exit code 130 and one line, never a traceback. A SIGTERM is
also remembered: an interrupt raised inside code that swallows it (a library's ``except
BaseException`` while it imports, a finaliser) still ends the command before it starts.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

EXIT_INTERRUPTED = 130

_terminated = False


def _interrupt(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def _import_command() -> Callable[[], int]:
    from planner.cli import main as run_command

    return run_command


def _interrupted() -> int:
    print("planner: error: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def main() -> int:
    """Run the ``planner`` command with the process's arguments; return its exit code."""
    global _terminated
    _terminated = False
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        run_command = _import_command()
        if _terminated:  # the interrupt was raised, and swallowed on the way
            return _interrupted()
        return run_command()
    except KeyboardInterrupt:
        return _interrupted()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
