"""The briefcase world (Pednault's ADL example, one of the ADL benchmark domains): a briefcase
travels between locations; ``move`` takes along everything in it (a conditional effect under
``forall``), ``put-in`` needs the object outside the briefcase (a negative precondition) and
``move`` needs two different locations (equality). Grounded by :mod:`planner.env.adl`, so it
needs the ``pddl`` extra.

A generated problem has ``locations`` locations ``l1``… and ``portables`` objects ``o1``…;
the briefcase and each object start at random locations, and the goal puts each object and
the briefcase at random locations (at least one object has to move). The seed picks all of
that. Optimal plan lengths come from A* with hmax (:func:`planner.env.ipc.optimal_plan_length`),
quick at the default sizes.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from planner.env.ipc import build_env, check_size

if TYPE_CHECKING:
    from planner.env.pddl import PDDLEnvironment

DOMAIN_NAME = "briefcase"
"""The domain's name in ``briefcase.pddl``."""
DEFAULT_LOCATIONS = 3
"""Locations of ``briefcase-v0`` unless told otherwise."""
DEFAULT_PORTABLES = 2
"""Objects to carry unless told otherwise."""


def generate_problem(*, seed: int = 0, locations: int = DEFAULT_LOCATIONS, portables: int = DEFAULT_PORTABLES) -> str:
    """The PDDL text of a briefcase problem with ``locations`` (2..30) locations and
    ``portables`` (1..30) objects, picked by ``seed`` (see the module's description)."""
    check_size("locations", locations, 2, 30)
    check_size("portables", portables, 1, 30)
    rng = random.Random(seed)
    places = [f"l{i}" for i in range(1, locations + 1)]
    things = [f"o{i}" for i in range(1, portables + 1)]
    case_start, case_goal = rng.choice(places), rng.choice(places)
    while True:
        start = [rng.choice(places) for _ in things]
        goal = [rng.choice(places) for _ in things]
        if start != goal:
            break
    init = [f"(is-at {case_start})"] + [f"(at {o} {p})" for o, p in zip(things, start)]
    goals = [f"(at {o} {p})" for o, p in zip(things, goal)] + [f"(is-at {case_goal})"]
    return (f"(define (problem briefcase-{locations}-{portables}-{seed})\n  (:domain {DOMAIN_NAME})\n"
            f"  (:objects {' '.join(places)} - location {' '.join(things)} - portable)\n"
            f"  (:init {' '.join(init)})\n  (:goal (and {' '.join(goals)})))\n")


def make_briefcase(*, seed: int = 0, locations: int = DEFAULT_LOCATIONS, portables: int = DEFAULT_PORTABLES,
                   max_steps: int | None = None) -> PDDLEnvironment:
    """``briefcase-v0``: the problem of :func:`generate_problem` as an environment.
    ``max_steps``: truncate the episode after this many real steps."""
    return build_env("briefcase", generate_problem(seed=seed, locations=locations, portables=portables),
                     max_steps=max_steps)
