"""Commands of the laboratory environment: Lisp-form actions, their ScienceWorld text, and the
candidate actions of a state.

An action is a Lisp form over the state's names (:mod:`planner.env.lab.world`); each operator
is one of ScienceWorld's command templates:

============================  ======================================
action                        ScienceWorld command
============================  ======================================
``(go R)``                    ``go to R``
``(open X)``, ``(close X)``   ``open X``, ``close X``
``(open R)``, ``(close R)``   ``open door to R`` (a room ``R`` the agent's room has a door to)
``(take X)``                  ``pick up X``
``(drop X)``                  ``put down X``
``(move X Y)``                ``move X to Y``
``(pour X Y)``                ``pour X in Y``
``(mix X)``                   ``mix X``
``(focus X)``                 ``focus on X``
============================  ======================================

where each object is written with a referent ScienceWorld resolves to exactly that object
(the simulator's table of referents of what the agent can see).

:func:`candidate_actions` builds the candidates of a state from its facts alone (never from
the simulator, since the planner asks about imagined states too), with the operators of the
task (:class:`~planner.env.lab.tasks.LabTask`), over the objects the agent can see (in its
room or inventory, not inside a closed container): going through every door of the room,
opening and closing doors and closable containers, picking up what can be moved, moving what
the agent holds or has focused on into a container of the room, putting down what it holds,
pouring a container's contents into another container, mixing a container's contents, and
focusing on any of them. That is tens of actions where ScienceWorld's own list of valid
action–object combinations has hundreds to thousands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from planner.env.lab.world import INVENTORY
from planner.types import Action, State, parse_atom

__all__ = ["OPERATORS", "TEMPLATE_OPERATORS", "Facts", "candidate_actions", "command_text"]

OPERATORS: Mapping[str, str] = {
    "go": "go to {0}",
    "open": "open {0}",
    "close": "close {0}",
    "take": "pick up {0}",
    "drop": "put down {0}",
    "move": "move {0} to {1}",
    "pour": "pour {0} in {1}",
    "mix": "mix {0}",
    "focus": "focus on {0}",
}
"""Operator → ScienceWorld's command, with a slot per argument (its referent)."""

TEMPLATE_OPERATORS: Mapping[str, str] = {
    "go OBJ": "go", "open OBJ": "open", "close OBJ": "close", "pick up OBJ": "take", "put down OBJ": "drop",
    "move OBJ to OBJ": "move", "pour OBJ in OBJ": "pour", "mix OBJ": "mix", "focus on OBJ": "focus",
}
"""ScienceWorld's command templates (``get_possible_actions_with_IDs``) → operator."""


@dataclass(frozen=True, slots=True)
class Facts:
    """A state's facts, indexed for building candidates.

    Attributes:
        room: the agent's room (``None`` when the state names none).
        doors: door → the room it leads to, of the agent's room (a door is named by that room).
        parent: object → what holds it directly (``(in X Y)``).
        flags: predicate → the objects it holds for, of the one-argument facts.
    """

    room: str | None
    doors: Mapping[str, str]
    parent: Mapping[str, str]
    flags: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, state: State) -> Facts:
        room = None
        doors: dict[str, str] = {}
        parent: dict[str, str] = {}
        flags: dict[str, set[str]] = {}
        for fact in state.facts:
            try:
                pred, args = parse_atom(fact)
            except ValueError:
                continue
            if pred == "at" and len(args) == 1:
                room = args[0]
            elif pred == "door" and len(args) == 1:
                doors[args[0]] = args[0]
            elif pred == "in" and len(args) == 2:
                parent[args[0]] = args[1]
            elif len(args) == 1:
                flags.setdefault(pred, set()).add(args[0])
        return cls(room=room, doors=doors, parent=parent,
                   flags={k: frozenset(v) for k, v in flags.items()})

    def has(self, pred: str, obj: str) -> bool:
        return obj in self.flags.get(pred, ())

    def inside(self, obj: str, holder: str) -> bool:
        """Whether ``obj`` is (directly or not) inside ``holder``."""
        seen = set()
        while obj in self.parent and obj not in seen:
            seen.add(obj)
            obj = self.parent[obj]
            if obj == holder:
                return True
        return False

    def hidden(self, obj: str) -> bool:
        """Whether ``obj`` lies inside a closed container (out of the agent's sight)."""
        seen = set()
        while obj in self.parent and obj not in seen:
            seen.add(obj)
            obj = self.parent[obj]
            if self.has("closable", obj) and not self.has("opened", obj):
                return True
        return False

    def local(self) -> list[str]:
        """The objects the agent can see: in its room or inventory, not inside a closed
        container; sorted."""
        return sorted(o for o in self.parent
                      if self.room is not None and (self.inside(o, self.room) or self.inside(o, INVENTORY))
                      and not self.hidden(o))


def candidate_actions(state: State, operators: Iterable[str]) -> tuple[Action, ...]:
    """The candidate actions of ``state`` among ``operators`` (see the module's description),
    sorted by name; a function of the facts alone."""
    ops = set(operators)
    f = Facts.of(state)
    found: set[str] = set()
    local = f.local()
    held = [o for o in local if f.parent.get(o) == INVENTORY]
    containers = [o for o in local if f.has("container", o)]
    if "go" in ops:
        found.update(f"(go {room})" for room in f.doors.values())
    for door in f.doors:
        if "open" in ops:
            found.add(f"(open {door})")
        if "close" in ops:
            found.add(f"(close {door})")
    for obj in local:
        if f.has("closable", obj):
            if "open" in ops:
                found.add(f"(open {obj})")
            if "close" in ops:
                found.add(f"(close {obj})")
        if "focus" in ops:
            found.add(f"(focus {obj})")
        if "take" in ops and not f.has("fixed", obj) and f.parent.get(obj) != INVENTORY:
            found.add(f"(take {obj})")
        contents = [o for o in local if f.parent.get(o) == obj]
        if "mix" in ops and f.has("container", obj) and contents:
            found.add(f"(mix {obj})")
        if "pour" in ops and f.has("container", obj) and contents and not f.has("fixed", obj):
            found.update(f"(pour {obj} {other})" for other in containers
                         if other != obj and not f.inside(other, obj))
    for obj in held:
        if "drop" in ops:
            found.add(f"(drop {obj})")
    for obj in sorted({*held, *(o for o in f.flags.get("focused", ()) if o in local and not f.has("fixed", o))}):
        if "move" in ops:
            found.update(f"(move {obj} {other})" for other in containers
                         if other != obj and not f.inside(other, obj) and not f.inside(other, INVENTORY))
    return tuple(Action(a) for a in sorted(found))


def command_text(operator: str, referents: Iterable[str]) -> str:
    """ScienceWorld's command for ``operator`` applied to objects written as ``referents``."""
    return OPERATORS[operator].format(*referents)
