"""Per-module structured loggers that go through the standard ``logging`` module.

The library never configures logging: events are rendered as ``key=value`` text and handed to
``logging.getLogger(name)``, so they stay silent below WARNING unless the application (or the
``planner`` command with ``-v``) turns them on.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog


def get_logger(name: str) -> Any:
    """A structlog logger bound to the standard logger ``name``."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        wrapper_class=structlog.stdlib.BoundLogger,
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
        ],
    )
