"""The household domain as the ``alfworld`` package ships it, read at run time.

Nothing of ALFWorld is copied into this project: the PDDL domain (``alfred.pddl``), the text
grammar (``alfred.twl2``), the 120 scene layouts (``gen/layouts/FloorPlan*``) and the tables of
what goes where and what can be heated, cooled, cleaned, sliced or switched on
(``gen/constants.py``) are read from the installed package (the ``household`` extra:
``pip install -e '.[household]'``). Without it, :func:`require_alfworld` raises a one-line
:class:`~planner.errors.ConfigError` naming the extra.

The domain is written for Fast Downward (TextWorld's engine runs it as it is). The planner's
own grounder (:mod:`planner.env.adl`, through unified-planning) needs a *planning copy*,
derived here by :func:`planning_domain` from the package's text, never stored:

- comments, ``:action-costs``, ``:functions`` and ``(increase (total-cost) …)`` removed;
- ``SinkBasinType``, ``MicrowaveType``, ``FridgeType`` (receptacle types) and ``KnifeType``,
  ``ButterKnifeType`` (object types), which actions name without declaring them, declared as
  ``:constants`` (a problem for this copy must then not declare them again:
  :data:`DOMAIN_CONSTANTS`);
- the actions that only inform (``look``, ``inventory``, ``examineReceptacle``,
  ``examineObject``, ``help``: their one effect is the bookkeeping fact ``checked``) and every
  ``(checked …)`` form dropped (its declaration too): the physical state is the same with or
  without them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from planner.errors import ConfigError

__all__ = [
    "DOMAIN_CONSTANTS", "INFO_ACTIONS", "ROOMS", "Scene", "Tables", "domain_text", "grammar_text",
    "planning_domain", "require_alfworld", "scene", "scenes", "tables",
]

EXTRA_HINT = "pip install -e '.[household]'"

DOMAIN_CONSTANTS: Mapping[str, str] = {
    "SinkBasinType": "rtype", "MicrowaveType": "rtype", "FridgeType": "rtype",
    "KnifeType": "otype", "ButterKnifeType": "otype",
}
"""Type names the domain's actions use without declaring them (name → PDDL type)."""

INFO_ACTIONS = ("look", "inventory", "examineReceptacle", "examineObject", "help")
"""Actions that change nothing but the bookkeeping fact ``checked``."""

ROOMS: Mapping[str, range] = {"kitchen": range(1, 31), "livingroom": range(201, 231),
                              "bedroom": range(301, 331), "bathroom": range(401, 431)}
"""Scene numbers (``FloorPlanN``) by room type, as the package's ``SCENE_TYPE`` lists them."""


def require_alfworld() -> Path:
    """The folder of the installed ``alfworld`` package; :class:`ConfigError` naming the
    ``household`` extra when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("alfworld")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the household environment needs the alfworld package: {EXTRA_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def _read(relative: str) -> str:
    path = require_alfworld() / relative
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path} of the alfworld package ({exc.strerror or exc}); reinstall it: "
                          f"{EXTRA_HINT}") from None


@cache
def domain_text() -> str:
    """``alfred.pddl`` as the package ships it (what TextWorld's engine runs)."""
    return _read("data/alfred.pddl")


@cache
def grammar_text() -> str:
    """``alfred.twl2`` as the package ships it (its ``UNKNOWN GOAL`` is the task sentence)."""
    return _read("data/alfred.twl2")


def _strip_comments(text: str) -> str:
    return "\n".join(line.split(";", 1)[0].rstrip() for line in text.splitlines())


def _forms(text: str, start: int) -> int:
    """The index just past the parenthesised form that opens at ``text[start]``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ConfigError("alfred.pddl of the alfworld package is not balanced; reinstall it: " + EXTRA_HINT)


def _drop(text: str, pattern: str) -> str:
    """``text`` without every form whose opening matches ``pattern`` (a regex)."""
    while (found := re.search(pattern, text)) is not None:
        text = text[:found.start()] + text[_forms(text, found.start()):]
    return text


@cache
def planning_domain() -> str:
    """The planning copy of the domain (see the module's description)."""
    text = _strip_comments(domain_text())
    text = text.replace(":action-costs", "")
    text = _drop(text, r"\(\s*:functions\b")
    text = _drop(text, r"\(\s*increase\s*\(\s*total-cost")
    text = _drop(text, r"\(\s*checked\s+\?")
    for name in INFO_ACTIONS:
        text = _drop(text, rf"\(\s*:action\s+{name}\s")
    types = re.search(r"\(\s*:types\b", text)
    if types is None:
        raise ConfigError("alfred.pddl of the alfworld package has no :types section; reinstall it: " + EXTRA_HINT)
    end = _forms(text, types.start())
    constants = " ".join(f"{n} - {t}" for n, t in DOMAIN_CONSTANTS.items())
    text = f"{text[:end]}\n (:constants {constants})\n{text[end:]}"
    return re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text).strip() + "\n"


# -- tables and scenes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Tables:
    """The package's tables (``alfworld.gen.constants``), as plain data.

    Attributes:
        receptacle_objects: receptacle type → the object types it can hold.
        action_objects: ``Heatable``/``Coolable``/``Cleanable``/``Sliceable``/``Toggleable`` →
            object types.
        openable: receptacle types that open and close.
        movable_receptacles: object types that hold things but are carried (Bowl, Mug, …).
        receptacles: every receptacle type.
        objects: every object type.
        task_rooms: task type → the room types it is valid in.
    """

    receptacle_objects: Mapping[str, frozenset[str]]
    action_objects: Mapping[str, frozenset[str]]
    openable: frozenset[str]
    movable_receptacles: frozenset[str]
    receptacles: frozenset[str]
    objects: frozenset[str]
    task_rooms: Mapping[str, frozenset[str]]


@cache
def tables() -> Tables:
    """The package's tables (:class:`ConfigError` naming the extra when it is missing)."""
    require_alfworld()
    from alfworld.gen import constants as c

    return Tables(
        receptacle_objects={k: frozenset(v) for k, v in c.VAL_RECEPTACLE_OBJECTS.items()},
        action_objects={k: frozenset(v) for k, v in c.VAL_ACTION_OBJECTS.items()},
        openable=frozenset(c.OPENABLE_CLASS_LIST), movable_receptacles=frozenset(c.MOVABLE_RECEPTACLES),
        receptacles=frozenset(c.RECEPTACLES), objects=frozenset(c.OBJECTS),
        task_rooms={k: frozenset(r.lower() for r in v) for k, v in c.GOALS_VALID.items()},
    )


@dataclass(frozen=True)
class Scene:
    """One scene layout (``FloorPlanN``).

    Attributes:
        number: the N of ``FloorPlanN``.
        room: ``"kitchen"``, ``"livingroom"``, ``"bedroom"`` or ``"bathroom"``.
        receptacles: receptacle type → how many instances the layout has (fixed receptacles;
            ones the layout lists by type only count once).
        items: object types present that can be picked up (movable receptacles included).
        lamps: switchable lamp types present (``DeskLamp``, ``FloorLamp``).
    """

    number: int
    room: str
    receptacles: Mapping[str, int]
    items: frozenset[str]
    lamps: frozenset[str]


def _room(number: int) -> str:
    for room, numbers in ROOMS.items():
        if number in numbers:
            return room
    spans = ", ".join(f"{r.start}-{r.stop - 1}" for r in ROOMS.values())
    raise ConfigError(f"no scene FloorPlan{number}: scenes are {spans}")


def _instance_type(instance: str) -> str:
    """``"Cabinet|+00.68|…"`` → ``Cabinet``; a sink's ``…|SinkBasin`` → ``SinkBasin``."""
    parts = instance.split("|")
    return parts[-1] if parts[-1] in ("SinkBasin", "BathtubBasin") else parts[0]


@cache
def scene(number: int) -> Scene:
    """The layout of ``FloorPlan<number>`` (:class:`ConfigError` naming a number with none)."""
    room = _room(number)
    folder = require_alfworld() / "gen" / "layouts"
    try:
        present: list[Any] = json.loads((folder / f"FloorPlan{number}-objects.json").read_text(encoding="utf-8"))
        poses: dict[str, Any] = json.loads((folder / f"FloorPlan{number}-openable.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the layout of FloorPlan{number} in {folder}: {exc}") from None
    t = tables()
    counts: dict[str, int] = {}
    for instance in poses:
        kind = _instance_type(instance)
        if kind in t.receptacles and kind not in t.movable_receptacles:
            counts[kind] = counts.get(kind, 0) + 1
    for kind in present:  # fixed receptacles the poses leave out (garbage cans, toasters, …)
        if kind in t.receptacles and kind not in t.movable_receptacles and kind not in counts:
            counts[kind] = 1
    holdable = set().union(*t.receptacle_objects.values())
    items = frozenset(k for k in present if k in t.objects and k in holdable)
    lamps = frozenset(k for k in present if k in t.action_objects.get("Toggleable", frozenset()))
    return Scene(number=number, room=room, receptacles=dict(sorted(counts.items())), items=items, lamps=lamps)


def scenes() -> list[Scene]:
    """Every scene layout the package ships, by number."""
    return [scene(n) for numbers in ROOMS.values() for n in numbers]
