"""One ScienceWorld simulator playing one task variation, stepped by Lisp-form actions.

:class:`LabSession` owns a simulator (a JVM), loads a variation, resets it, runs actions as
ScienceWorld commands and reads the facts after each (:mod:`planner.env.lab.world`). It knows
nothing of the planner's protocols: :class:`~planner.env.lab.env.LabEnvironment` builds the
environment on one session (and replays on a second one for ``simulate``).

A step costs one ScienceWorld command (about 6 ms in the simulator) plus reading the object
tree, the objects' referents and the room's description (free actions: no time passes), about
20 ms in all; the package's own ``step`` also lists every valid action each time (about 50 ms),
so the simulator's server is called directly. ScienceWorld advances its clock on every command it parses, even one that
fails; an action is *applied* when the facts changed. Actions that cannot be written as a
command here (an object the agent cannot see, a door of another room) are not sent at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from planner.env.lab.actions import OPERATORS, TEMPLATE_OPERATORS, Facts, command_text
from planner.env.lab.runtime import simulator_call, start_simulator, stop_simulator
from planner.env.lab.tasks import SPLITS, LabTask
from planner.env.lab.world import INVENTORY, Namer, World, facts_of, read_doors, read_tree
from planner.errors import ConfigError, UnknownActionError
from planner.types import Action, State

__all__ = ["FOCUS_REPLY", "LabSession", "Outcome"]

FOCUS_REPLY = "You focus on"
"""How ScienceWorld's reply to a successful ``focus on`` begins."""
AMBIGUOUS_REPLY = "Ambiguous request"
"""How ScienceWorld's reply begins when a referent fits several objects (it then waits for a
choice by number)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one action did in the simulator.

    Attributes:
        state: the facts after it (equal to before when it did not apply).
        applied: whether the facts changed.
        sent: the command sent to ScienceWorld (``None``: not sent, it could not be written).
        observation: ScienceWorld's reply ("" when nothing was sent).
        score: the task's score, 0–100 (negative when the task failed).
        completed: the task is completed (won, or failed: ``score < 0``).
    """

    state: State
    applied: bool
    sent: str | None
    observation: str
    score: int
    completed: bool

    @property
    def won(self) -> bool:
        return self.completed and self.score >= 100

    @property
    def failed(self) -> bool:
        return self.score < 0


class LabSession:
    """A simulator playing variation ``variation`` of ``task``.

    Raises :class:`ConfigError` when the ``scienceworld`` package or ``java`` is missing.
    """

    def __init__(self, task: LabTask, variation: int, *, simulator: Any = None) -> None:
        self.task = task
        self.variation = variation
        self.sim = simulator if simulator is not None else start_simulator()
        self._load(gold=False)
        self.namer = Namer()
        self.goal: Any = None
        self.tracked: tuple[str, ...] = ()
        self.focused: list[str] = []
        self.world: World | None = None
        self.state = State()
        self.description = ""

    def _load(self, *, gold: bool) -> None:
        with simulator_call(f"ScienceWorld could not load {self.task.name} variation {self.variation}"):
            self.sim.load(self.task.name, self.variation, "", generateGoldPath=gold)

    def close(self) -> None:
        """Shut the simulator's JVM down."""
        stop_simulator(self.sim)

    def reset(self) -> State:
        """Start the variation again; the start state."""
        with simulator_call("ScienceWorld's reset failed"):
            self.sim.reset()
            self.description = str(self.sim.get_task_description())
        self.namer = Namer()
        self.focused = []
        self.world = self._read()
        self.goal, self.tracked = self.task.goal(self.description, self.namer)
        self.state = self._facts()
        return self.state

    def gold_commands(self) -> list[str]:
        """ScienceWorld's own solution of the variation (its gold path), as command texts. Loads
        the variation again, twice: a load that generates the gold path grew plants differently
        afterwards (flowers appeared at other times) than the plain load replays use, so the
        plain load comes last. Call :meth:`reset` afterwards."""
        self._load(gold=True)
        with simulator_call("ScienceWorld gave no gold path"):
            commands = [str(c) for c in self.sim.get_gold_action_sequence()]
        self._load(gold=False)
        return commands

    def step(self, action: Action) -> Outcome:
        """Run ``action``; :class:`UnknownActionError` for an operator the task does not use
        or a wrong number of arguments."""
        op, args = self._parse(action)
        before = self.state
        text = self._command(op, args)
        if text is None:
            return Outcome(before, False, None, "", *self._progress())
        observation = self._send(text)
        if op == "focus" and observation.startswith(FOCUS_REPLY):
            self.focused.append(self.namer.uuid_of[args[0]])
        self.world = self._read()
        self.state = self._facts()
        return Outcome(self.state, self.state != before, text, observation, *self._progress())

    def translate(self, command: str) -> Action | None:
        """The action of a ScienceWorld command text valid here (as its gold path writes them),
        or ``None`` when it is no command of our operators (``look around``, ``wait1``) or its
        objects cannot be told apart."""
        facts = Facts.of(self.state)
        rooms = {self.namer.text_of.get(room): room for room in facts.doors.values()}
        door = re.fullmatch(r"(open|close) door to (.+)", command)
        if door is not None and door.group(2) in rooms:
            found = [d for d, room in facts.doors.items() if room == rooms[door.group(2)]]
            return Action(f"({door.group(1)} {found[0]})")
        go = re.fullmatch(r"go to (.+)", command)
        if go is not None and go.group(1) in rooms:
            return Action(f"(go {rooms[go.group(1)]})")
        with simulator_call("ScienceWorld could not list its commands"):
            templates = {int(t["template_id"]): str(t["action_example"])
                         for t in self.sim.get_possible_actions_with_IDs()}
            combos = list(self.sim.get_valid_action_object_combinations_with_templates())
        for combo in combos:
            if str(combo["action"]) == command:
                op = TEMPLATE_OPERATORS.get(templates.get(int(combo["template_id"]), ""))
                return None if op is None else self._action(op, [str(u) for u in combo["obj_ids"]])
        referents = self._referents()
        visible = self._scope()
        for template, op in TEMPLATE_OPERATORS.items():
            for parts in _splits(command, template):
                uuids = [self._resolve(part, referents, visible) for part in parts]
                if all(u is not None for u in uuids):
                    return self._action(op, [u for u in uuids if u is not None])
        return None

    def _resolve(self, text: str, referents: dict[str, list[str]], visible: set[str]) -> str | None:
        """The visible object written as ``text``: one of its referents, or ``X in Y`` (``X``
        inside the object ``Y``); ``None`` when no object or several fit."""
        found = [u for u in visible if text in referents.get(u, ())]
        if len(found) == 1:
            return found[0]
        if " in " not in text:
            return None
        head, _, where = text.rpartition(" in ")
        holders = {u for u in visible if where in referents.get(u, ())}
        if where == INVENTORY and self.world is not None:
            holders.add(self.world.inventory)
        objects = self.world.objects if self.world is not None else {}
        found = [u for u in visible if head in referents.get(u, ()) and u in objects
                 and objects[u].parent in holders]
        return found[0] if len(found) == 1 else None

    def _action(self, op: str, uuids: list[str]) -> Action | None:
        names = [self._name_of(u, op) for u in uuids]
        if any(n is None for n in names):
            return None
        if op == "move" and names[1] == Facts.of(self.state).room:
            op, names = "drop", names[:1]
        return Action(f"({' '.join([op, *(n for n in names if n is not None)])})")

    # -- helpers ----------------------------------------------------------------------------
    def _parse(self, action: Action) -> tuple[str, tuple[str, ...]]:
        try:
            op, args = action.operator, action.args
        except (ValueError, IndexError):
            op, args = "", ()
        if op not in self.task.operators or OPERATORS[op].count("{") != len(args):
            known = ", ".join(f"({o}{' X' * OPERATORS[o].count('{')})" for o in self.task.operators)
            raise UnknownActionError(f"unknown laboratory action {action.name!r} for {self.task.name}; its "
                                     f"actions: {known}")
        return op, args

    def _command(self, op: str, args: tuple[str, ...]) -> str | None:
        """The command text of an action here, or ``None`` when it cannot be written (a room
        or door not reachable from the agent's room, an object the agent cannot see)."""
        facts = Facts.of(self.state)
        if op == "go":
            if args[0] not in facts.doors.values():
                return None
            return command_text(op, [self.namer.text_of[args[0]]])
        if op in ("open", "close") and args[0] in facts.doors:
            return f"{op} door to {self.namer.text_of[facts.doors[args[0]]]}"
        referents = self._referents()
        scope = self._scope()
        found = []
        for name in args:
            uuid = self.namer.uuid_of.get(name)
            written = None if uuid is None or uuid not in scope else _referent(uuid, referents, scope, self.world)
            if written is None:
                return None
            found.append(written)
        return command_text(op, found)

    def _referents(self) -> dict[str, list[str]]:
        """uuid → every referent ScienceWorld accepts for the object."""
        with simulator_call("ScienceWorld could not list its objects' names"):
            return {str(k): [str(r) for r in v["referents"]]
                    for k, v in self.sim.get_all_object_ids_types_referents_LUTJSON().items()}

    def _scope(self) -> set[str]:
        """The uuids of the agent's room, what it holds (at any depth) and the inventory's."""
        if self.world is None:
            return set()
        children = self.world.children()
        found: set[str] = set()
        todo = [self.world.agent_room, self.world.inventory]
        while todo:
            uuid = todo.pop()
            if uuid not in found:
                found.add(uuid)
                todo.extend(children.get(uuid, ()))
        return found

    def _send(self, text: str) -> str:
        with simulator_call(f"ScienceWorld failed on {text!r}"):
            observation = str(self.sim.server.step(text))
            if observation.startswith(AMBIGUOUS_REPLY):  # pragma: no cover - referents are unique
                observation = str(self.sim.server.step("0"))
        return observation

    def _progress(self) -> tuple[int, bool]:
        """(score in 0..100, whether ScienceWorld counts the task completed)."""
        with simulator_call("ScienceWorld could not report its score"):
            return round(100 * float(self.sim.server.getScore())), bool(self.sim.server.getCompleted())

    def _read(self) -> World:
        with simulator_call("cannot read ScienceWorld's object tree"):
            world = read_tree(self.sim.getObjectTree())
        self.namer.assign(world)
        return world

    def _facts(self) -> State:
        assert self.world is not None
        with simulator_call("ScienceWorld could not describe the room"):
            doors = read_doors(str(self.sim.look()))
        return State(facts_of(self.world, self.namer, doors=doors, focused=self.focused, tracked=self.tracked,
                              kinds=self.task.kinds))

    def _name_of(self, uuid: str, op: str) -> str | None:
        if uuid in self.namer.name_of:
            return self.namer.name_of[uuid]
        with simulator_call("ScienceWorld could not name an object"):
            referent = self.sim.get_possible_object_referent_LUT().get(uuid, "")
        if op in ("open", "close") and referent.startswith("door to "):
            room = referent.removeprefix("door to ")
            facts = Facts.of(self.state)
            for door, target in facts.doors.items():
                if self.namer.text_of.get(target) == room:
                    return door
        return None


def _referent(uuid: str, referents: dict[str, list[str]], scope: set[str], world: World | None) -> str | None:
    """A text ScienceWorld reads as exactly the object ``uuid`` among the objects ``scope``:
    its name or another of its referents that no other object there has (the shortest), else
    ``R in P`` (``P`` written the same way, its container), else ``None``."""
    own = referents.get(uuid)
    if not own or world is None:
        return None
    counts: dict[str, int] = {}
    for other in scope:
        for r in set(referents.get(other, ())):
            counts[r] = counts.get(r, 0) + 1
    obj = world.objects.get(uuid)
    preferred = sorted(own, key=lambda r: (obj is None or r != obj.text, len(r), r))
    for r in preferred:
        if counts.get(r) == 1:
            return r
    if obj is None or obj.parent is None:
        return None
    siblings = [u for u in scope if u != uuid and world.objects.get(u) is not None
                and world.objects[u].parent == obj.parent]
    holder = INVENTORY if obj.parent == world.inventory else _referent(obj.parent, referents, scope, world)
    if holder is None:
        return None
    for r in preferred:
        if not any(r in referents.get(u, ()) for u in siblings):
            return f"{r} in {holder}"
    return None


def _splits(text: str, template: str) -> list[tuple[str, ...]]:
    """Every way ``text`` fills the slots ``OBJ`` of a command template (``"move OBJ to OBJ"``):
    a referent may itself hold the template's words (``cup in art studio``), so each place
    they occur is one way."""
    prefix, *rest = template.split("OBJ")
    if not rest or not text.startswith(prefix):
        return []
    tail = text[len(prefix):]
    if len(rest) == 1:
        return [(tail,)] if tail and tail.endswith(rest[0]) and not rest[0] else []
    separator = rest[0]
    found: list[tuple[str, ...]] = []
    for match in re.finditer(re.escape(separator), tail):
        first, second = tail[:match.start()], tail[match.end():]
        if first and second:
            found.append((first, second))
    return found


def split_variations(sim: Any, split: str) -> list[int]:
    """The variations of the task loaded in ``sim`` in ``split`` (``train``, ``val``, ``test``)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown laboratory split {split!r}; known: {', '.join(SPLITS)}")
    method = {"train": sim.get_variations_train, "dev": sim.get_variations_dev, "test": sim.get_variations_test}
    with simulator_call(f"ScienceWorld could not list the {split} variations"):
        return sorted(int(v) for v in method[SPLITS[split]]())
