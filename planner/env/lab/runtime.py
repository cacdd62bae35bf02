"""Starting and stopping ScienceWorld's simulator (a Java program driven through py4j).

Two things must be present, and each one's absence is a one-line
:class:`~planner.errors.ConfigError` that says what to install:

- the ``scienceworld`` package (the ``lab`` extra: ``pip install -e '.[lab]'``), which ships
  the simulator's jar;
- a ``java`` executable on ``PATH`` (Java 17 or newer; on Debian or Ubuntu the package
  ``openjdk-17-jre-headless``).

The JVM takes a large share of memory and cores unless told otherwise, so
:func:`start_simulator` launches it with :data:`JVM_OPTIONS` (through ``JAVA_TOOL_OPTIONS``,
which every JVM reads; the variable is restored afterwards, so other Java programs of the
process are not affected). :func:`stop_simulator` shuts the JVM down.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
from collections.abc import Iterator
from typing import Any

from planner.errors import ConfigError, EnvironmentStepError, PlannerError

__all__ = ["EXTRA_HINT", "JAVA_PACKAGE", "JVM_OPTIONS", "require_java", "require_scienceworld", "simulator_call",
           "start_simulator", "stop_simulator"]

EXTRA_HINT = "pip install -e '.[lab]'"
"""How to install the ``lab`` extra (the ``scienceworld`` package)."""

JAVA_PACKAGE = "openjdk-17-jre-headless"
"""The Debian/Ubuntu package that provides ``java`` for ScienceWorld."""

JVM_OPTIONS = "-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1"
"""Options for the simulator's JVM: a heap of at most 512 MiB, one garbage-collector thread,
the quick (C1) compiler only, with one compiler thread (the JVM's defaults size the heap and
the thread pools by the machine's memory and cores)."""

STEP_LIMIT = 1_000_000
"""ScienceWorld's own step limit (it reports an episode completed past it); the environment
keeps its own count (``max_steps``), so this is set out of reach."""


def require_scienceworld() -> None:
    """:class:`ConfigError` naming the ``lab`` extra unless ``scienceworld`` is importable."""
    if importlib.util.find_spec("scienceworld") is None:
        raise ConfigError(f"the laboratory environment needs the scienceworld package: {EXTRA_HINT}")


def require_java() -> str:
    """The path of ``java``; :class:`ConfigError` naming ``java`` and the Debian package that
    provides it when there is none on ``PATH``."""
    found = shutil.which("java")
    if found is None:
        raise ConfigError("the laboratory environment runs ScienceWorld's simulator, which needs `java` (17 or "
                          f"newer) on PATH; on Debian or Ubuntu: apt-get install {JAVA_PACKAGE}")
    return found


@contextlib.contextmanager
def simulator_call(what: str) -> Iterator[None]:
    """Around every call into the simulator: a failure of the Java side or of the bridge to it
    becomes :class:`EnvironmentStepError` saying ``what`` failed and why; the planner's own
    errors pass through. An interrupt (Ctrl-C, a terminating signal) that arrives while a
    command is in flight stays an interrupt: the bridge answers it with an unrelated error of
    its own, whose context is the interrupt."""
    try:
        yield
    except PlannerError:
        raise
    except Exception as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise EnvironmentStepError(f"{what}: {type(exc).__name__}: {exc}") from None


def start_simulator() -> Any:
    """A fresh ``scienceworld.ScienceWorldEnv`` (a new JVM) with no task loaded.

    Raises :class:`ConfigError` when the package or ``java`` is missing, and
    :class:`EnvironmentStepError` when the JVM does not start.
    """
    require_scienceworld()
    require_java()
    from scienceworld import ScienceWorldEnv

    # The bridge logs every failed command with a traceback; this module reports them itself.
    logging.getLogger("py4j").setLevel(logging.CRITICAL)

    before = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = JVM_OPTIONS if before is None else f"{before} {JVM_OPTIONS}"
    try:
        return ScienceWorldEnv("", envStepLimit=STEP_LIMIT)
    except Exception as exc:
        raise EnvironmentStepError(f"ScienceWorld's simulator (a Java program) did not start: "
                                   f"{type(exc).__name__}: {exc}") from None
    finally:
        if before is None:
            os.environ.pop("JAVA_TOOL_OPTIONS", None)
        else:
            os.environ["JAVA_TOOL_OPTIONS"] = before


def stop_simulator(simulator: Any) -> None:
    """Shut ``simulator``'s JVM down (once: later calls, and the package's own clean-up when
    the object is collected, do nothing)."""
    if simulator is None or getattr(simulator, "_planner_stopped", False):
        return
    simulator._planner_stopped = True
    with contextlib.suppress(Exception):  # the JVM may be gone already (killed, or the process is exiting)
        simulator.close()
    simulator.close = _noop


def _noop() -> None:
    return None
