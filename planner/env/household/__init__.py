"""Household worlds: ALFWorld-style games generated offline, played by TextWorld's PDDL engine.

``planner.make("household-v0", seed=S, split="train")`` builds the game of seed ``S``: the
split's scenes (:data:`SPLITS`: held-out scenes are never trained on), the scene the seed
picks, a task type the scene can set, and a small solvable game of it
(:mod:`~planner.env.household.generate`), played by TextWorld's engine
(:mod:`~planner.env.household.env`). Needs the ``household`` extra
(``pip install -e '.[household]'``: the ``alfworld`` package, with TextWorld and its PDDL
engine).
"""

from __future__ import annotations

import random

from planner.env.household.alfred import ROOMS, require_alfworld, scene
from planner.env.household.env import ENGINES, HouseholdEnvironment, game_json
from planner.env.household.generate import TASK_TYPES, Game, feasible_tasks, generate_game
from planner.errors import ConfigError

__all__ = ["ENGINES", "SPLITS", "TASK_TYPES", "Game", "HouseholdEnvironment", "feasible_tasks", "game_json",
           "generate_game", "make_household", "split_scenes"]

SPLITS = ("train", "val", "test")
"""Scene splits: of each room type's 30 scenes (in number order, counted from 1), every fifth
(5, 10, … 30) is a test scene, the 3rd, 13th and 23rd are validation scenes, the other 21
train: 84 training, 12 validation and 24 test scenes, every room type in each."""


def split_scenes(split: str) -> list[int]:
    """The scene numbers (``FloorPlanN``) of ``split`` (:data:`SPLITS`)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown household split {split!r}; known: {', '.join(SPLITS)}")
    found = []
    for numbers in ROOMS.values():
        for k, n in enumerate(numbers, start=1):
            kind = "test" if k % 5 == 0 else "val" if k % 10 == 3 else "train"
            if kind == split:
                found.append(n)
    return found


def make_household(*, seed: int = 0, split: str = "train", task: str | None = None, engine: str = "textworld",
                   max_steps: int | None = None) -> HouseholdEnvironment:
    """The household game of ``seed`` in ``split``: the seed picks a scene of the split and a
    task type it can set (``task`` names one instead), then the game (the same seed, the same
    game). ``engine``: ``"textworld"`` or ``"planner"``; ``max_steps`` truncates episodes."""
    require_alfworld()
    if task is not None and task not in TASK_TYPES:
        raise ConfigError(f"unknown household task type {task!r}; known: {', '.join(TASK_TYPES)}")
    if engine not in ENGINES:
        raise ConfigError(f"unknown household engine {engine!r}; known: {', '.join(ENGINES)}")
    numbers = split_scenes(split)
    rng = random.Random(f"household-v0/{split}/{seed}")
    order = list(numbers)
    rng.shuffle(order)
    for number in order:
        room = scene(number)
        tasks = feasible_tasks(room)
        if task is not None:
            if task not in tasks:
                continue
            tasks = [task]
        if not tasks:
            continue
        game = generate_game(room, rng.choice(tasks), seed)
        return HouseholdEnvironment(game, engine=engine, max_steps=max_steps)
    raise ConfigError(f"no scene of the {split} split can set a {task} task")
