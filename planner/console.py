"""The ``planner`` console command's entry point.

It imports the command itself only after turning SIGTERM into an interrupt, so Ctrl-C or a
SIGTERM during start-up ends with exit code 130 and one line, never a traceback.
"""

from __future__ import annotations

import signal
import sys

EXIT_INTERRUPTED = 130


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    """Run the ``planner`` command with the process's arguments; return its exit code."""
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        from planner.cli import main as run_command
    except KeyboardInterrupt:
        print("planner: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run_command()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
