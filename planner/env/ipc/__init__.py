"""Domain families of the International Planning Competition, with problem generators.

Each domain file here was written from the family's published definition; each family module
generates problems of a chosen size, picked by a seed (Gymnasium style), and builds them as a
:class:`~planner.env.pddl.PDDLEnvironment`:

- :mod:`~planner.env.ipc.gripper` (``gripper-v0``): IPC-1998 Gripper, untyped STRIPS; a robot
  with two grippers carries ``balls`` balls between two rooms. Seed 0 is the competition's
  problem of that size; the optimal plan length has a closed form.
- :mod:`~planner.env.ipc.logistics` (``logistics-v0``): IPC-2000 Logistics, typed STRIPS;
  trucks within cities, airplanes between airports.
- :mod:`~planner.env.ipc.briefcase` (``briefcase-v0``): the briefcase world of the ADL
  benchmarks; moving the briefcase moves what is in it (a conditional effect under
  ``forall``), so it needs the rich grounder (the ``pddl`` extra).

:func:`optimal_plan_length` gives the length of an optimal plan of any of their problems, to
compare a planner's plans with.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from planner.errors import ConfigError, DomainError

if TYPE_CHECKING:
    from planner.env.pddl import PDDLEnvironment

__all__ = ["FAMILIES", "build_env", "check_size", "domain_file", "domain_text", "optimal_plan_length"]

FAMILIES = ("briefcase", "gripper", "logistics")
"""The families whose domain files ship here (``NAME.pddl``)."""


def domain_file(family: str) -> Path:
    """Where the shipped domain file of ``family`` lies (:class:`ConfigError` for an unknown
    family)."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown IPC family {family!r}; choose one of {', '.join(FAMILIES)}")
    return Path(str(resources.files(__name__).joinpath(f"{family}.pddl")))


def domain_text(family: str) -> str:
    """The PDDL text of ``family``'s domain."""
    return domain_file(family).read_text(encoding="utf-8")


def check_size(name: str, value: object, low: int, high: int) -> int:
    """``value`` when it is a whole number in ``low..high``; :class:`ConfigError` naming
    ``name`` and the value otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number in {low}..{high}, got {value!r}")
    return value


def build_env(family: str, problem_text: str, *, max_steps: int | None = None) -> PDDLEnvironment:
    """A :class:`~planner.env.pddl.PDDLEnvironment` of ``family``'s domain and the problem
    ``problem_text`` (see :func:`~planner.env.pddl.environment_from_text`). ``max_steps``:
    truncate after this many real steps."""
    from planner.env.pddl import environment_from_text

    return environment_from_text(domain_text(family), problem_text, name=family, max_steps=max_steps)


def optimal_plan_length(env: PDDLEnvironment) -> int:
    """The number of actions of an optimal plan of ``env``'s problem, from its initial state.

    Gripper problems of :mod:`~planner.env.ipc.gripper` get the closed form
    (:func:`planner.env.ipc.gripper.optimal_plan_length`, instant at any size); every other
    problem is solved by A* (:meth:`~planner.env.pddl.PDDLEnvironment.optimal_plan`: LM-cut for
    STRIPS, hmax beyond), meant for the small default sizes. Raises :class:`DomainError` when
    the problem has no plan.
    """
    from planner.env.ipc import gripper

    task = env.task
    if task.domain_name == gripper.DOMAIN_NAME:
        length = gripper.closed_form_length(task.init.facts, task.goal.facts)
        if length is not None:
            return length
    plan = env.optimal_plan()
    if plan is None:
        raise DomainError(f"problem {task.name} has no plan")
    return len(plan)
