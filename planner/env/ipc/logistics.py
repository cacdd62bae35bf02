"""IPC-2000 Logistics, typed STRIPS: packages travel by truck between the places of a city and
by airplane between the cities' airports. Played through pyperplan (``:typing`` is STRIPS
there).

A generated problem has ``cities`` cities ``city1``…; city ``i`` has the airport ``apt{i}``
and ``locations - 1`` other places ``loc{i}-{j}``, and one truck ``truck{i}`` at a random place
of it; ``airplanes`` airplanes ``plane{k}`` wait at random airports; ``packages`` packages
``pkg{k}`` start at random places and must reach random places (at least one has to move).
The seed picks all of that. Optimal plan lengths come from A* with LM-cut
(:func:`planner.env.ipc.optimal_plan_length`), quick at the default sizes.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from planner.env.ipc import build_env, check_size

if TYPE_CHECKING:
    from planner.env.pddl import PDDLEnvironment

DOMAIN_NAME = "logistics"
"""The domain's name in ``logistics.pddl``."""
DEFAULT_CITIES = 2
"""Cities of ``logistics-v0`` unless told otherwise."""
DEFAULT_LOCATIONS = 2
"""Places per city (the airport included) unless told otherwise."""
DEFAULT_PACKAGES = 2
"""Packages unless told otherwise."""
DEFAULT_AIRPLANES = 1
"""Airplanes unless told otherwise."""


def generate_problem(*, seed: int = 0, cities: int = DEFAULT_CITIES, locations: int = DEFAULT_LOCATIONS,
                     packages: int = DEFAULT_PACKAGES, airplanes: int = DEFAULT_AIRPLANES) -> str:
    """The PDDL text of a Logistics problem (see the module's description) of ``cities``
    (1..10) cities of ``locations`` (1..10) places each, ``packages`` (1..30) packages and
    ``airplanes`` (1..5) airplanes, picked by ``seed``."""
    check_size("cities", cities, 1, 10)
    check_size("locations", locations, 1, 10)
    check_size("packages", packages, 1, 30)
    check_size("airplanes", airplanes, 1, 5)
    rng = random.Random(seed)
    city_names = [f"city{i}" for i in range(1, cities + 1)]
    airports = [f"apt{i}" for i in range(1, cities + 1)]
    places = {i: [airports[i - 1]] + [f"loc{i}-{j}" for j in range(1, locations)] for i in range(1, cities + 1)}
    every_place = [p for i in places for p in places[i]]
    trucks = [f"truck{i}" for i in range(1, cities + 1)]
    planes = [f"plane{k}" for k in range(1, airplanes + 1)]
    pkgs = [f"pkg{k}" for k in range(1, packages + 1)]
    init = [f"(in-city {p} city{i})" for i in places for p in places[i]]
    init += [f"(at {truck} {rng.choice(places[i])})" for i, truck in enumerate(trucks, start=1)]
    init += [f"(at {plane} {rng.choice(airports)})" for plane in planes]
    while True:
        start = [rng.choice(every_place) for _ in pkgs]
        goal = [rng.choice(every_place) for _ in pkgs]
        if start != goal:
            break
    init += [f"(at {pkg} {p})" for pkg, p in zip(pkgs, start)]
    goals = [f"(at {pkg} {p})" for pkg, p in zip(pkgs, goal)]
    others = [p for p in every_place if p not in airports]
    objects = [f"{' '.join(city_names)} - city", f"{' '.join(airports)} - airport"]
    objects += [f"{' '.join(others)} - location"] if others else []
    objects += [f"{' '.join(trucks)} - truck", f"{' '.join(planes)} - airplane", f"{' '.join(pkgs)} - package"]
    return (f"(define (problem logistics-{cities}-{locations}-{packages}-{airplanes}-{seed})\n"
            f"  (:domain {DOMAIN_NAME})\n  (:objects {' '.join(objects)})\n"
            f"  (:init {' '.join(init)})\n  (:goal (and {' '.join(goals)})))\n")


def make_logistics(*, seed: int = 0, cities: int = DEFAULT_CITIES, locations: int = DEFAULT_LOCATIONS,
                   packages: int = DEFAULT_PACKAGES, airplanes: int = DEFAULT_AIRPLANES,
                   max_steps: int | None = None) -> PDDLEnvironment:
    """``logistics-v0``: the problem of :func:`generate_problem` as an environment.
    ``max_steps``: truncate the episode after this many real steps."""
    text = generate_problem(seed=seed, cities=cities, locations=locations, packages=packages, airplanes=airplanes)
    return build_env("logistics", text, max_steps=max_steps)
