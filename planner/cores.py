"""The CPU cores this process may use (a module of its own: training and the scale executors
need it without loading llama.cpp)."""

from __future__ import annotations

import os

__all__ = ["available_cores"]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)
