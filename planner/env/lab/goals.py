"""Goals of the laboratory tasks over the facts of :mod:`planner.env.lab.world`.

ScienceWorld names an answer by the agent *focusing* on it, so a goal says what the focused
object must be and where it must end up. Which object that is, the task leaves open ("a
living thing"), so :class:`FocusGoal` is existential: some focused object of the right kind,
inside the right container (directly or not: a plant in its flower pot in the box counts).
Where the task names the object, the goal is a plain :class:`~planner.types.FactGoal`.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.env.lab.actions import Facts
from planner.errors import ConfigError
from planner.types import State

__all__ = ["KINDS", "FocusGoal"]

KINDS = ("living", "nonliving", "plant", "animal")
"""What a :class:`FocusGoal` can ask the focused object to be: alive (``(living X)``), not
alive, a plant (``(plant X)``), alive and no plant."""


@dataclass(frozen=True, slots=True)
class FocusGoal:
    """Some object of kind ``kind`` is focused on and lies inside ``box``.

    Attributes:
        kind: one of :data:`KINDS`.
        box: the name of the container it must end up in (``None``: anywhere).

    :meth:`progress` is 0.5 for a focused object of the kind that is not in the box yet,
    1.0 when the goal holds.
    """

    kind: str
    box: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown kind of focused object {self.kind!r}; known: {', '.join(KINDS)}")

    def _is_kind(self, facts: Facts, obj: str) -> bool:
        living, plant = facts.has("living", obj), facts.has("plant", obj)
        return {"living": living, "nonliving": not living, "plant": plant, "animal": living and not plant}[self.kind]

    def progress(self, state: State) -> float:
        facts = Facts.of(state)
        best = 0.0
        for obj in facts.flags.get("focused", ()):
            if not self._is_kind(facts, obj):
                continue
            if self.box is None or facts.inside(obj, self.box):
                return 1.0
            best = 0.5
        return best

    def satisfied(self, state: State) -> bool:
        return self.progress(state) == 1.0

    def __str__(self) -> str:
        where = f" in {self.box}" if self.box else ""
        return f"(focused <{self.kind}>){where}"
