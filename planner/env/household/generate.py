"""Small household games generated offline from a scene layout, a task type and a seed.

A game is what TextWorld's PDDL engine loads — the package's domain, its grammar with the
task sentence, and a PDDL problem — plus what the planner needs beside it. The problem is
written here from a scene of the ``alfworld`` package (:mod:`planner.env.household.alfred`):

- **receptacles** (3–7): what the task needs (a receptacle type that can hold the target, the
  microwave, fridge or sink basin, the desk, side table or dresser under a desk lamp) and
  distractors of the scene's other fixed receptacles, each at its own location; openable
  ones start closed;
- **items** (7–14 entities in all with the receptacles): one target (two for
  ``pick_two_obj_and_place``), distractors of the scene's other item types, each placed in a
  receptacle whose type can hold it (never the goal already met: no target starts in a
  receptacle of the goal's type; a target to cool never starts in the fridge, which would
  cool it);
- **facts**: the package's tables give every item its properties (pickupable, heatable,
  coolable, cleanable, sliceable, toggleable) and every receptacle type what it can contain;
- **goal**: the package's own goal of the task type (``alfworld.gen.goal_library``), its
  sentence from the task type's first template.

Every game is checked before it is returned: the goal is false at the start and an optimal
plan exists within :data:`MAX_PLAN` steps (by the planner's own grounding of the planning copy
of the domain). The same (scene, task type, seed) gives the same game, byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from planner.env.household.alfred import DOMAIN_CONSTANTS, Scene, Tables, tables
from planner.errors import ConfigError

__all__ = ["MAX_PLAN", "TASK_TYPES", "Game", "feasible_tasks", "generate_game", "planning_environment"]

TASK_TYPES = (
    "pick_and_place_simple",
    "pick_two_obj_and_place",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "look_at_obj_in_light",
)
"""The task types generated (ALFWorld's six; ``look_at_obj_in_light`` with a desk lamp only:
the domain cannot switch on a floor lamp, which stands in no receptacle)."""

APPLIANCE = {"pick_clean_then_place_in_recep": "SinkBasin", "pick_heat_then_place_in_recep": "Microwave",
             "pick_cool_then_place_in_recep": "Fridge"}
"""The receptacle type a task type's transformation needs."""
PROPERTY = {"pick_clean_then_place_in_recep": "Cleanable", "pick_heat_then_place_in_recep": "Heatable",
            "pick_cool_then_place_in_recep": "Coolable"}
"""The table an object must be in for the transformation."""
LAMP_STANDS = ("Desk", "SideTable", "Dresser")
"""Receptacles a desk lamp stands on."""
MAX_PLAN = 20
"""Longest optimal plan a generated game may need (steps)."""
MAX_TRIES = 64
"""Draws of one game before the generator gives up on a (scene, task type)."""


@dataclass(frozen=True)
class Game:
    """One generated household game.

    Attributes:
        scene: the scene's number (``FloorPlanN``).
        task_type: one of :data:`TASK_TYPES`.
        task: the task sentence (``"put a hot mug in cabinet"``).
        params: the task's parameters (``obj``, ``recep``, ``toggle``: ALFRED type names).
        problem: the PDDL problem for the planning copy of the domain.
        engine_problem: the same problem for the package's own domain (which does not declare
            :data:`~planner.env.household.alfred.DOMAIN_CONSTANTS`).
        receptacles, items: the entities, by name (``cabinet_1``, ``mug_1``).
        optimal: the length of an optimal plan (steps).
    """

    scene: int
    task_type: str
    task: str
    params: Mapping[str, str]
    problem: str
    engine_problem: str
    receptacles: tuple[str, ...]
    items: tuple[str, ...]
    optimal: int = field(default=0)


def _t(kind: str) -> str:
    return f"{kind}Type"


def _can_hold(t: Tables, receptacle: str, item: str) -> bool:
    return item in t.receptacle_objects.get(receptacle, frozenset())


def feasible_tasks(scene: Scene) -> list[str]:
    """The task types :func:`generate_game` can set in ``scene`` (room type, appliances, items)."""
    t = tables()
    found = []
    for task in TASK_TYPES:
        if scene.room not in t.task_rooms.get(task, frozenset()):
            continue
        if _targets(t, scene, task):
            found.append(task)
    return found


def _targets(t: Tables, scene: Scene, task: str) -> list[tuple[str, str]]:
    """(object type, receptacle type) pairs the task can ask for in ``scene``."""
    holders = [r for r in scene.receptacles if r not in ("SinkBasin", "BathtubBasin")]
    if task == "look_at_obj_in_light":
        if "DeskLamp" not in scene.lamps or not any(s in scene.receptacles for s in LAMP_STANDS):
            return []
        return [(o, "") for o in sorted(scene.items) if any(_can_hold(t, r, o) for r in scene.receptacles)]
    appliance = APPLIANCE.get(task)
    if appliance is not None and appliance not in scene.receptacles:
        return []
    need = t.action_objects.get(PROPERTY[task], frozenset()) if task in PROPERTY else None
    pairs = []
    for o in sorted(scene.items):
        if need is not None and o not in need:
            continue
        for r in holders:
            if r == appliance or not _can_hold(t, r, o):
                continue
            # somewhere else to start from
            if any(_can_hold(t, s, o) for s in scene.receptacles if s != r and s != appliance):
                pairs.append((o, r))
    return pairs


@lru_cache(maxsize=32)
def planning_environment(problem: str) -> Any:
    """The planner's grounding of ``problem`` with the planning copy of the domain (a
    :class:`~planner.env.pddl.PDDLEnvironment`; read only: its task, goal, heuristics and
    optimal plan). Cached: the generator's check and the environment share one grounding."""
    from planner.env.household.alfred import planning_domain
    from planner.env.pddl import environment_from_text

    return environment_from_text(planning_domain(), problem, name="household")


def generate_game(scene: Scene, task_type: str, seed: int) -> Game:
    """A small solvable game of ``task_type`` in ``scene``; see the module's description.

    Raises :class:`ConfigError` naming a task type the scene cannot set, and when no game was
    found in :data:`MAX_TRIES` draws."""
    if task_type not in TASK_TYPES:
        raise ConfigError(f"unknown household task type {task_type!r}; known: {', '.join(TASK_TYPES)}")
    t = tables()
    pairs = _targets(t, scene, task_type)
    if not pairs or scene.room not in t.task_rooms.get(task_type, frozenset()):
        raise ConfigError(f"FloorPlan{scene.number} ({scene.room}) cannot set a {task_type} task; it can set: "
                          f"{', '.join(feasible_tasks(scene)) or 'none'}")
    rng = random.Random(f"household/{scene.number}/{task_type}/{seed}")
    for _ in range(MAX_TRIES):
        game = _draw(t, scene, task_type, rng.choice(pairs), rng)
        if game is None:
            continue
        env = planning_environment(game.problem)
        if env.goal.satisfied(env.task.init):
            continue
        plan = env.optimal_plan()
        if plan is None or len(plan) > MAX_PLAN:
            continue
        return Game(**{**game.__dict__, "optimal": len(plan)})
    raise ConfigError(f"no solvable {task_type} game in FloorPlan{scene.number} after {MAX_TRIES} draws (seed {seed})")


def _numbered(kinds: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Names for instances of ``kinds`` (``["Mug", "Cup", "Mug"]`` → ``mug_1``, ``cup_1``,
    ``mug_2``) and each name's kind."""
    names: list[str] = []
    kind_of: dict[str, str] = {}
    for kind in kinds:
        name = f"{kind.lower()}_{sum(1 for v in kind_of.values() if v == kind) + 1}"
        names.append(name)
        kind_of[name] = kind
    return names, kind_of


def _draw(t: Tables, scene: Scene, task: str, pair: tuple[str, str], rng: random.Random) -> Game | None:
    obj, recep = pair
    appliance = APPLIANCE.get(task)
    # -- receptacles: what the task needs, then distractors
    kinds: list[str] = []
    if recep:
        kinds.append(recep)
    if appliance:
        kinds.append(appliance)
    toggle = ""
    if task == "look_at_obj_in_light":
        toggle = "DeskLamp"
        kinds.append(rng.choice([s for s in LAMP_STANDS if s in scene.receptacles]))
    others = [k for k in scene.receptacles if k not in kinds]
    rng.shuffle(others)
    want = rng.randint(3, 6)
    for k in others:
        if len(kinds) >= want:
            break
        kinds.append(k)
    if recep and scene.receptacles.get(recep, 1) > 1 and len(kinds) < 7 and rng.random() < 0.5:
        kinds.append(recep)  # a second receptacle of the goal's type
    names, kind_of = _numbered(kinds)
    # -- items: targets, then distractors
    n_targets = 2 if task == "pick_two_obj_and_place" else 1
    item_kinds = [obj] * n_targets
    spare = [o for o in sorted(scene.items) if o != obj and any(_can_hold(t, kind_of[r], o) for r in names)]
    rng.shuffle(spare)
    total = rng.randint(max(7, len(names) + n_targets + 1), 14)
    for o in spare:
        if len(names) + len(item_kinds) + (1 if toggle else 0) >= total:
            break
        item_kinds.append(o)
    items, item_kind = _numbered(item_kinds)
    # -- placement
    place: dict[str, str] = {}
    for item in items:
        k = item_kind[item]
        options = [r for r in names if _can_hold(t, kind_of[r], k)]
        if k == obj:
            options = [r for r in options if kind_of[r] != recep and kind_of[r] != appliance]
        if not options:
            return None
        place[item] = rng.choice(options)
    lamp = ""
    if toggle:
        lamp = "desklamp_1"
        stands = [r for r in names if kind_of[r] in LAMP_STANDS]
        place[lamp] = stands[0]
        item_kind[lamp] = toggle
    locations = {r: f"loc_{i + 1}" for i, r in enumerate(names)}
    return _game(t, scene, task, obj, recep, toggle, names, kind_of, [*items, *([lamp] if lamp else [])],
                 item_kind, place, locations)


def _goal(task: str, obj: str, recep: str, toggle: str) -> tuple[str, str]:
    from alfworld.gen import goal_library

    entry = goal_library.gdict[task]
    body = entry["pddl"].replace("#", "-").format(obj=obj, recep=recep, toggle=toggle).strip()
    if not body.endswith(")"):
        raise ConfigError(f"the alfworld package's goal of {task} is not PDDL: {body[:80]!r}")
    body = body[:body.rstrip().rfind(")")].rstrip()  # the library's goal closes the problem too
    sentence = entry["templates"][0].format(obj=obj.lower(), recep=recep.lower(), toggle=toggle.lower())
    return body, sentence


def _game(t: Tables, scene: Scene, task: str, obj: str, recep: str, toggle: str, receptacles: Sequence[str],
          kind_of: Mapping[str, str], items: Sequence[str], item_kind: Mapping[str, str], place: Mapping[str, str],
          locations: Mapping[str, str]) -> Game:
    otypes = sorted({item_kind[i] for i in items})
    rtypes = sorted(set(kind_of.values()))
    facts = ["(atLocation agent1 loc_start)"]
    for r in receptacles:
        facts.append(f"(receptacleType {r} {_t(kind_of[r])})")
        facts.append(f"(receptacleAtLocation {r} {locations[r]})")
        if kind_of[r] in t.openable:
            facts.append(f"(openable {r})")
    props = {"Heatable": "heatable", "Coolable": "coolable", "Cleanable": "cleanable", "Sliceable": "sliceable",
             "Toggleable": "toggleable"}
    for i in items:
        k = item_kind[i]
        facts.append(f"(objectType {i} {_t(k)})")
        if k != toggle:
            facts.append(f"(pickupable {i})")
        if k in t.movable_receptacles:
            facts.append(f"(isReceptacleObject {i})")
        for table, pred in props.items():
            if k in t.action_objects.get(table, frozenset()):
                facts.append(f"({pred} {i})")
        facts.append(f"(inReceptacle {i} {place[i]})")
        facts.append(f"(objectAtLocation {i} {locations[place[i]]})")
    for rt in rtypes:
        for ot in otypes:
            if _can_hold(t, rt, ot):
                facts.append(f"(canContain {_t(rt)} {_t(ot)})")
    goal, sentence = _goal(task, obj, recep, toggle)
    declared = [x for x in {*map(_t, otypes), *map(_t, rtypes)} if x not in DOMAIN_CONSTANTS]
    own_otypes = " ".join(sorted(x for x in declared if x[:-4] in otypes))
    own_rtypes = " ".join(sorted(x for x in declared if x[:-4] in rtypes))
    locs = " ".join(["loc_start", *locations.values()])

    def problem(extra_otypes: str, extra_rtypes: str) -> str:
        ot = " ".join(x for x in (own_otypes, extra_otypes) if x)
        rt = " ".join(x for x in (own_rtypes, extra_rtypes) if x)
        return "\n".join([
            f"(define (problem household_{scene.number}_{task})",
            " (:domain alfred)",
            " (:objects",
            "   agent1 - agent",
            f"   {locs} - location",
            f"   {' '.join(receptacles)} - receptacle",
            f"   {' '.join(items)} - object",
            *([f"   {ot} - otype"] if ot else []),
            *([f"   {rt} - rtype"] if rt else []),
            " )",
            " (:init",
            *(f"   {f}" for f in facts),
            " )",
            f" {goal}",
            ")",
            "",
        ])

    special_o = " ".join(k for k, v in DOMAIN_CONSTANTS.items() if v == "otype")
    special_r = " ".join(k for k, v in DOMAIN_CONSTANTS.items() if v == "rtype")
    params = {"obj": obj, "recep": recep, "toggle": toggle}
    return Game(scene=scene.number, task_type=task, task=sentence, params=params, problem=problem("", ""),
                engine_problem=problem(special_o, special_r), receptacles=tuple(receptacles), items=tuple(items))
