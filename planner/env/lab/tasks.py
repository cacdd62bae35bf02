"""The ScienceWorld tasks the laboratory environment supports, and their goals.

Supported are tasks whose state stays small and discrete and whose goal is a statement about
facts (:data:`TASKS`):

- ``find-living-thing``, ``find-non-living-thing``, ``find-plant``, ``find-animal``: find an
  object of a kind, focus on it, move it into a named box (a :class:`FocusGoal`); the kind is
  a fixed property of objects (``(living X)``, ``(plant X)``), so the world model can learn
  which focus is right;
- ``chemistry-mix-paint-secondary-color``: pour two primary paints into one container, mix
  them, focus on the paint made (``(focused green_paint)``, a plain fact goal).

Left out: tasks whose goal is a temperature or a measurement over time (boiling, melting,
freezing, thermometers, growing plants: long waits, continuous quantities), electrical
circuits (``power-component``, ``test-conductivity``: dozens of terminals, so hundreds of
connect actions, and a light that turns on only some ticks later), inclined planes, life
stages, life spans and genetics (the answer is read from text, not a state of the world).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from planner.env.lab.goals import FocusGoal
from planner.env.lab.world import Namer, slug
from planner.errors import ConfigError, EnvironmentStepError
from planner.types import FactGoal

__all__ = ["SPLITS", "TASKS", "LabTask", "supported_task"]

SPLITS: Mapping[str, str] = {"train": "train", "val": "dev", "test": "test"}
"""Our split → ScienceWorld's (its own variations of each task: ``get_variations_train`` …)."""

FIND_OPERATORS = ("go", "open", "close", "take", "drop", "move", "focus")
MIX_OPERATORS = ("go", "open", "close", "take", "drop", "move", "pour", "mix", "focus")


@dataclass(frozen=True, slots=True)
class LabTask:
    """A supported ScienceWorld task.

    Attributes:
        name: ScienceWorld's task name (``"find-plant"``).
        operators: the action operators its candidates use (:mod:`planner.env.lab.actions`).
        kinds: whether states carry ``(living X)`` and ``(plant X)``.
        goal: ``goal(description, namer)`` → the goal of a loaded variation and the names of the
            objects it refers to (described in every state).
    """

    name: str
    operators: tuple[str, ...]
    kinds: bool
    goal: Callable[[str, Namer], tuple[Any, tuple[str, ...]]]


def _object_named(namer: Namer, text: str, description: str) -> str:
    found = sorted(n for n, t in namer.text_of.items() if t == text)
    if not found:
        raise EnvironmentStepError(f"the task names {text!r}, which is no object of its world ({description!r})")
    return found[0]


def _find_goal(kind: str) -> Callable[[str, Namer], tuple[Any, tuple[str, ...]]]:
    def goal(description: str, namer: Namer) -> tuple[Any, tuple[str, ...]]:
        match = re.search(r"move it to the (.+?) in the ", description)
        if match is None:
            raise EnvironmentStepError(f"cannot read the box of the task description {description!r}")
        box = _object_named(namer, match.group(1), description)
        return FocusGoal(kind=kind, box=box), (box,)

    return goal


def _mix_goal(description: str, namer: Namer) -> tuple[Any, tuple[str, ...]]:
    match = re.search(r"create (.+?)\. When you are done, focus on the", description)
    if match is None:
        raise EnvironmentStepError(f"cannot read the product of the task description {description!r}")
    return FactGoal(frozenset({f"(focused {slug(match.group(1))})"})), ()


TASKS: Mapping[str, LabTask] = {t.name: t for t in (
    LabTask("find-living-thing", FIND_OPERATORS, True, _find_goal("living")),
    LabTask("find-non-living-thing", FIND_OPERATORS, True, _find_goal("nonliving")),
    LabTask("find-plant", FIND_OPERATORS, True, _find_goal("plant")),
    LabTask("find-animal", FIND_OPERATORS, True, _find_goal("animal")),
    LabTask("chemistry-mix-paint-secondary-color", MIX_OPERATORS, False, _mix_goal),
)}
"""The supported tasks by ScienceWorld name (see the module's description)."""


def supported_task(name: str) -> LabTask:
    """The supported task ``name``; :class:`ConfigError` listing the supported ones."""
    if name not in TASKS:
        raise ConfigError(f"unknown or unsupported laboratory task {name!r}; supported: {', '.join(TASKS)}")
    return TASKS[name]
