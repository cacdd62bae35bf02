"""Laboratory tasks: ScienceWorld's discrete tasks as environments over ground facts.

``planner.make("lab-v0", seed=S, split="train")`` builds a variation of a supported
ScienceWorld task (:data:`TASKS`): the seed picks the task (``task=`` names one instead) and a
variation of the split, both deterministically. The splits are ScienceWorld's own: ``train``,
``val`` (its ``dev`` variations) and ``test``. See :mod:`planner.env.lab.env` for the state,
actions, goal and ``simulate``, :mod:`planner.env.lab.tasks` for why these tasks.

Needs the ``lab`` extra (``pip install -e '.[lab]'``: the ``scienceworld`` package) and
``java`` 17 or newer on ``PATH`` (Debian/Ubuntu: ``openjdk-17-jre-headless``); without
either, :func:`make_lab` raises a :class:`~planner.errors.ConfigError` that says so. Each
environment runs the simulator in its own JVM: :meth:`LabEnvironment.close` stops it.
"""

from __future__ import annotations

import random
from typing import Any

from planner.env.lab.env import GOAL_REWARD, LabEnvironment
from planner.env.lab.goals import KINDS, FocusGoal
from planner.env.lab.runtime import require_java, require_scienceworld, simulator_call, start_simulator, stop_simulator
from planner.env.lab.session import split_variations
from planner.env.lab.tasks import SPLITS, TASKS, LabTask, supported_task
from planner.errors import ConfigError

__all__ = ["GOAL_REWARD", "KINDS", "SPLITS", "TASKS", "FocusGoal", "LabEnvironment", "LabTask", "make_lab",
           "seed_task", "variations"]

_VARIATIONS: dict[tuple[str, str], tuple[int, ...]] = {}


def variations(name: str, split: str, *, simulator: Any = None) -> tuple[int, ...]:
    """ScienceWorld's variations of the supported task ``name`` in ``split`` (``train``,
    ``val``, ``test``), sorted; read once per process (from ``simulator``, which is left with
    the task loaded, or a simulator started and stopped for it)."""
    lab_task = supported_task(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown laboratory split {split!r}; known: {', '.join(SPLITS)}")
    key = (name, split)
    if key not in _VARIATIONS:
        sim = simulator if simulator is not None else start_simulator()
        try:
            with simulator_call(f"ScienceWorld could not load {lab_task.name}"):
                sim.load(lab_task.name, 0, "", generateGoldPath=False)
            _VARIATIONS[key] = tuple(split_variations(sim, split))
        finally:
            if simulator is None:
                stop_simulator(sim)
    return _VARIATIONS[key]


def seed_task(seed: int, split: str = "train") -> str:
    """The task :func:`make_lab` plays for ``seed`` in ``split`` when no ``task`` is named
    (no simulator needed: the seed's first draw)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown laboratory split {split!r}; known: {', '.join(SPLITS)}")
    return str(random.Random(f"lab-v0/{split}/{seed}").choice(sorted(TASKS)))


def make_lab(*, seed: int = 0, split: str = "train", task: str | None = None,
             max_steps: int | None = None) -> LabEnvironment:
    """The laboratory environment of ``seed`` in ``split``: the seed picks a supported task
    (``task`` names one instead) and a variation of the split. ``max_steps`` truncates
    episodes. Raises :class:`ConfigError` for an unknown split or task, a missing
    ``scienceworld`` package or ``java``."""
    require_scienceworld()
    require_java()
    if split not in SPLITS:
        raise ConfigError(f"unknown laboratory split {split!r}; known: {', '.join(SPLITS)}")
    lab_task = supported_task(task) if task is not None else None
    rng = random.Random(f"lab-v0/{split}/{seed}")
    if lab_task is None:
        lab_task = TASKS[rng.choice(sorted(TASKS))]
    sim = start_simulator()
    try:
        variation = rng.choice(variations(lab_task.name, split, simulator=sim))
        return LabEnvironment(lab_task, variation, max_steps=max_steps, simulator=sim)
    except BaseException:
        stop_simulator(sim)
        raise

