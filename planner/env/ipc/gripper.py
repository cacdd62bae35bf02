"""IPC-1998 Gripper: a robot with two grippers (``left``, ``right``) carries balls between two
rooms (``rooma``, ``roomb``). Untyped STRIPS; played through pyperplan.

Seed 0 is the competition's problem of its size: every ball starts in ``rooma``, the robot
too, and every ball must end in ``roomb``. Any other seed draws the robot's room and each
ball's start and goal room (at least one ball has to move).

An optimal plan's length has a closed form (:func:`closed_form_length`): with ``a`` balls to
carry away from the robot's room and ``b`` to carry into it, ``x = ⌈a/2⌉`` and ``y = ⌈b/2⌉``
trips are needed each way, the trips alternate starting from the robot's room, so the robot
moves ``2x - 1`` times when ``x > y`` and ``2y`` times otherwise (never when ``a = b = 0``),
and each ball to move is picked and dropped once: ``2(a + b)`` more actions. The competition
problem with ``n`` balls takes ``2n + 2⌈n/2⌉ - 1`` (11 for 4 balls).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TYPE_CHECKING

from planner.env.ipc import build_env, check_size
from planner.types import parse_atom

if TYPE_CHECKING:
    from planner.env.pddl import PDDLEnvironment

DOMAIN_NAME = "gripper-strips"
"""The domain's name in ``gripper.pddl``."""
ROOMS = ("rooma", "roomb")
"""The two rooms."""
GRIPPERS = ("left", "right")
"""The robot's two grippers."""
DEFAULT_BALLS = 4
"""Balls of ``gripper-v0`` unless told otherwise."""
MAX_BALLS = 200
"""Most balls a generated problem may have (4 + 8·balls ground actions: 1,604 at the bound)."""


def generate_problem(balls: int = DEFAULT_BALLS, *, seed: int = 0) -> str:
    """The PDDL text of a Gripper problem with ``balls`` balls (1..:data:`MAX_BALLS`), picked by
    ``seed`` (0: the competition's layout; see the module's description)."""
    check_size("balls", balls, 1, MAX_BALLS)
    names = [f"ball{i}" for i in range(1, balls + 1)]
    if seed == 0:
        robot, start, goal = ROOMS[0], [ROOMS[0]] * balls, [ROOMS[1]] * balls
    else:
        rng = random.Random(seed)
        robot = rng.choice(ROOMS)
        while True:
            start = [rng.choice(ROOMS) for _ in names]
            goal = [rng.choice(ROOMS) for _ in names]
            if start != goal:
                break
    init = [f"(room {r})" for r in ROOMS] + [f"(gripper {g})" for g in GRIPPERS]
    init += [f"(free {g})" for g in GRIPPERS] + [f"(at-robby {robot})"]
    init += [f"(ball {b})" for b in names] + [f"(at {b} {r})" for b, r in zip(names, start)]
    goals = [f"(at {b} {r})" for b, r in zip(names, goal)]
    return (f"(define (problem gripper-{balls}-{seed})\n  (:domain {DOMAIN_NAME})\n"
            f"  (:objects {' '.join(ROOMS)} {' '.join(GRIPPERS)} {' '.join(names)})\n"
            f"  (:init {' '.join(init)})\n  (:goal (and {' '.join(goals)})))\n")


def make_gripper(*, seed: int = 0, balls: int = DEFAULT_BALLS, max_steps: int | None = None) -> PDDLEnvironment:
    """``gripper-v0``: the Gripper problem of :func:`generate_problem` as an environment.
    ``max_steps``: truncate the episode after this many real steps."""
    return build_env("gripper", generate_problem(balls, seed=seed), max_steps=max_steps)


def closed_form_length(init: Iterable[str], goal: Iterable[str]) -> int | None:
    """The optimal plan length of a Gripper problem from its initial and goal facts (see the
    module's description), or ``None`` when the problem is not of this generator's shape (two
    rooms, both grippers free, goals on balls only)."""
    facts = set(init)
    rooms = sorted(parse_atom(f)[1][0] for f in facts if f.startswith("(room "))
    robot = [parse_atom(f)[1][0] for f in facts if f.startswith("(at-robby ")]
    balls = {parse_atom(f)[1][0] for f in facts if f.startswith("(ball ")}
    free = {parse_atom(f)[1][0] for f in facts if f.startswith("(free ")}
    grippers = {parse_atom(f)[1][0] for f in facts if f.startswith("(gripper ")}
    where = {args[0]: args[1] for name, args in map(parse_atom, facts) if name == "at" and args[0] in balls}
    if len(rooms) != 2 or len(robot) != 1 or len(grippers) != 2 or free != grippers or set(where) != balls:
        return None
    away = into = 0
    for fact in goal:
        name, args = parse_atom(fact)
        if name != "at" or len(args) != 2 or args[0] not in balls or args[1] not in rooms:
            return None
        start = where[args[0]]
        if start != args[1]:
            away += start == robot[0]
            into += start != robot[0]
    return optimal_plan_length_of(away, into)


def optimal_plan_length_of(away: int, into: int) -> int:
    """The optimal plan length with ``away`` balls to carry out of the robot's room and
    ``into`` balls to carry into it (see the module's description)."""
    x, y = -(-away // 2), -(-into // 2)
    moves = 0 if away == into == 0 else (2 * x - 1 if x > y else 2 * y)
    return 2 * (away + into) + moves

