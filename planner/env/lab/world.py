"""ScienceWorld's object tree as ground facts over stable object names.

ScienceWorld describes its world as a JSON object tree (``getObjectTree()``): the universe
holds the rooms, a room its objects, a container its contents, each node with its name, a
numeric ``uuid`` and property records (container, material, device, life …). The tree's key
order differs from call to call, and its uuids are counters that differ from load to load, so
neither can name an object. :func:`read_tree` reads the tree into :class:`LabObject` records
and :class:`Namer` gives each object a name that is the same in every load of the same task
variation: its ScienceWorld name in lower case with ``_`` for spaces (``red_box``,
``art_studio``), numbered from 1 in creation order (uuid order) when several objects share it
(``wood_cup_1`` … ``wood_cup_6``). Living things carry their kind (``apple_plant``, the
``plant`` of an apple tree). Objects that appear later (paint made by mixing) take the next
free name.

Facts (:func:`facts_of`) describe the agent's room, the agent's inventory and the objects the
goal names (wherever they are), all discrete (no temperatures, no time, no score):

- ``(at R)``: the agent is in room ``R``;
- ``(door R)``: a door leads from the agent's room to room ``R``; ``(dooropen R)`` when it is
  open (a door is named by the room it leads to, as ScienceWorld's "door to the kitchen": the
  rooms are the world's objects already, so no door adds a name a model would have to know
  before the agent sees it);
- ``(in X Y)``: ``X`` is directly inside ``Y`` (a room, a container, or ``inventory``);
- ``(container X)``: ``X`` can hold things; ``(closable X)``: it opens and closes, and
  ``(opened X)`` when it is open;
- ``(fixed X)``: ``X`` cannot be picked up or moved;
- ``(living X)``, ``(plant X)``: ``X`` is a living thing, a plant (only for tasks about them);
- ``(focused X)``: the agent has focused on ``X`` (ScienceWorld's way of naming an answer).

Electrical terminals (parts of every object), the air of every room, the agent itself and the
flowers and pollen plants grow at random moments are left out (:data:`SKIPPED`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from planner.errors import EnvironmentStepError

__all__ = ["INVENTORY", "LabObject", "Namer", "World", "facts_of", "read_doors", "read_tree",
           "slug"]

INVENTORY = "inventory"
"""The name of the agent's inventory (a container)."""

SKIPPED = re.compile(r"^(terminal \d+|anode|cathode|air|agent|universe|flower|pollen)$")
"""ScienceWorld names of nodes that never become objects of a state: the electrical terminals
of every object, the air of every room, the agent, and the flowers (with their pollen) that
plants grow over time at moments that differ from one play to the next."""

DOOR_LINE = re.compile(r"A door to the (.+?) \(that is (open|closed)\)")
"""How a room's description (``look around``) lists its doors."""


def slug(text: str) -> str:
    """``"Art Studio"`` → ``"art_studio"``: lower case, runs of other characters → ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "thing"


@dataclass(frozen=True, slots=True)
class LabObject:
    """One node of ScienceWorld's object tree.

    Attributes:
        uuid: ScienceWorld's id of the node (valid for the current load only).
        text: ScienceWorld's name of the node (``"red box"``; ``"plant"`` for any plant).
        base: the name before numbering (:func:`slug` of the kind and the text: ``apple_plant``).
        parent: the uuid of the node holding it (``None`` for the rooms, held by the universe).
        room: whether the node is a room.
        container: whether it can hold things.
        closable: whether it opens and closes; ``is_open``: whether it is open.
        movable: whether it can be picked up and moved.
        living: whether it is alive (a life record that is not dead); ``plant``: a plant.
    """

    uuid: str
    text: str
    base: str
    parent: str | None
    room: bool = False
    container: bool = False
    closable: bool = False
    is_open: bool = False
    movable: bool = False
    living: bool = False
    plant: bool = False


@dataclass(frozen=True, slots=True)
class World:
    """The objects of one object tree, by uuid, with the agent's room and inventory."""

    objects: Mapping[str, LabObject]
    agent_room: str
    inventory: str

    def children(self) -> dict[str, list[str]]:
        """Parent uuid → the uuids it holds directly."""
        found: dict[str, list[str]] = {}
        for obj in self.objects.values():
            if obj.parent is not None:
                found.setdefault(obj.parent, []).append(obj.uuid)
        return found


def read_tree(tree: Mapping[str, Any]) -> World:
    """The :class:`World` of ScienceWorld's object tree (``getObjectTree()``'s JSON).

    Raises :class:`EnvironmentStepError` when the tree has no agent or inventory.
    """
    objects: dict[str, LabObject] = {}
    agent_room = inventory = ""

    def walk(node: Mapping[str, Any], parent: str | None, depth: int) -> None:
        nonlocal agent_room, inventory
        name = str(node.get("name", ""))
        uuid = str(node.get("uuid", ""))
        contents = (node.get("contents") or {}).values()
        if node.get("isDeleted"):
            return
        if name == "agent":
            agent_room = parent or ""
            for child in contents:
                if child.get("name") == INVENTORY:
                    inventory = str(child.get("uuid"))
                    objects[inventory] = LabObject(uuid=inventory, text=INVENTORY, base=INVENTORY, parent=None,
                                                   container=True)
                    for item in (child.get("contents") or {}).values():
                        walk(item, inventory, depth + 2)
            return
        if SKIPPED.match(name):
            if name == "universe":
                for child in contents:
                    walk(child, None, depth + 1)
            return
        container = node.get("propContainer") or {}
        life = node.get("propLife") or {}
        kind = str(life.get("lifeformType") or "")
        base = slug(name if not kind or kind in name else f"{kind} {name}")
        objects[uuid] = LabObject(
            uuid=uuid, text=name, base=base, parent=parent, room=depth == 1,
            container=str(container.get("isContainer", "")).lower() == "true",
            closable=bool(container.get("isClosable")), is_open=bool(container.get("isOpen")),
            movable=bool((node.get("propMoveable") or {}).get("isMovable")),
            living=bool(life) and not life.get("isDead"), plant=str(node.get("type", "")) == "plant")
        for child in contents:
            walk(child, uuid, depth + 1)

    walk(tree, None, 0)
    if not agent_room or not inventory:
        raise EnvironmentStepError("ScienceWorld's object tree has no agent with an inventory")
    return World(objects=objects, agent_room=agent_room, inventory=inventory)


class Namer:
    """Stable names of ScienceWorld objects in one episode (see the module's description).

    :meth:`assign` names every object of a world not named yet: at the first call (the start
    of an episode), objects sharing a base name are numbered in uuid order, an object alone
    keeps its base name; later objects take the base name if it is free, else the next number.
    """

    def __init__(self) -> None:
        self.name_of: dict[str, str] = {}
        self.uuid_of: dict[str, str] = {}
        self.text_of: dict[str, str] = {}

    def assign(self, world: World) -> None:
        """Name the objects of ``world`` that have no name yet."""
        fresh = sorted((o for o in world.objects.values() if o.uuid not in self.name_of),
                       key=lambda o: (_number(o.uuid), o.uuid))
        groups: dict[str, list[LabObject]] = {}
        for obj in fresh:
            groups.setdefault(obj.base, []).append(obj)
        first = not self.name_of
        for base, members in groups.items():
            if first and len(members) > 1:
                for k, obj in enumerate(members, start=1):
                    self._name(obj, f"{base}_{k}")
                continue
            for obj in members:
                name, k = base, 1
                while name in self.uuid_of:
                    k += 1
                    name = f"{base}_{k}"
                self._name(obj, name)

    def _name(self, obj: LabObject, name: str) -> None:
        self.name_of[obj.uuid] = name
        self.uuid_of[name] = obj.uuid
        self.text_of[name] = obj.text


def _number(uuid: str) -> int:
    return int(uuid) if uuid.isdigit() else -1


def read_doors(look: str) -> list[tuple[str, bool]]:
    """The doors a room's description lists: (ScienceWorld name of the room it leads to, open)."""
    return [(room, state == "open") for room, state in DOOR_LINE.findall(look)]


def facts_of(world: World, namer: Namer, *, doors: Iterable[tuple[str, bool]], focused: Iterable[str] = (),
             tracked: Iterable[str] = (), kinds: bool = False) -> frozenset[str]:
    """The facts of ``world`` (see the module's description).

    Args:
        world: the object tree read by :func:`read_tree` (named by ``namer`` already).
        namer: the episode's names.
        doors: the doors of the agent's room (:func:`read_doors`).
        focused: uuids of the objects the agent has focused on.
        tracked: names of objects the goal refers to: described wherever they are.
        kinds: add ``(living X)`` and ``(plant X)``.
    """
    name = namer.name_of
    children = world.children()
    room = world.objects[world.agent_room]
    facts = {f"(at {name[room.uuid]})"}
    room_by_text = {o.text: o.uuid for o in world.objects.values() if o.room}
    for other, is_open in doors:
        if other not in room_by_text:
            continue
        target = name[room_by_text[other]]
        facts.add(f"(door {target})")
        if is_open:
            facts.add(f"(dooropen {target})")

    described: set[str] = set()

    def describe(uuid: str) -> None:
        if uuid in described:
            return
        described.add(uuid)
        obj = world.objects[uuid]
        me = name[uuid]
        if obj.parent is not None and not obj.room:
            facts.add(f"(in {me} {name[obj.parent]})")
        if not obj.room and uuid != world.inventory:
            if obj.container:
                facts.add(f"(container {me})")
            if obj.closable:
                facts.add(f"(closable {me})")
                if obj.is_open:
                    facts.add(f"(opened {me})")
            if not obj.movable:
                facts.add(f"(fixed {me})")
            if kinds and obj.living:
                facts.add(f"(living {me})")
            if kinds and obj.plant:
                facts.add(f"(plant {me})")
        for child in children.get(uuid, ()):
            describe(child)

    describe(room.uuid)
    describe(world.inventory)
    for uuid in focused:
        if uuid in name:
            facts.add(f"(focused {name[uuid]})")
        if uuid in world.objects:
            describe(uuid)
    for tracked_name in tracked:
        uuid = namer.uuid_of.get(tracked_name, "")
        if uuid in world.objects:
            describe(uuid)
    return frozenset(facts)
