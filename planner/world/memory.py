"""Real experience overriding a world model.

When a real step differs from what the model imagined, the agent records the real outcome
here; afterwards that (state, action) is answered from experience, so a consistently wrong
model cannot lead the agent into the same mistake twice.
"""

from __future__ import annotations

from planner.types import Action, Prediction, State, Transition
from planner.world.cache import MemoWorldModel


class ExperienceOverlay(MemoWorldModel):
    """Answers from recorded real transitions first, from ``inner`` otherwise (whose answers
    it does not keep)."""

    def knows(self, state: State, action: Action) -> bool:
        """Whether the real outcome of ``action`` at ``state`` was recorded."""
        return (state, action) in self._memo

    def record(self, transition: Transition) -> None:
        """Remember the real outcome of ``transition``."""
        self._memo[(transition.state, transition.action)] = Prediction(
            applicable=transition.applicable,
            next_state=transition.next_state,
            reward=transition.reward,
            done=transition.done,
        )
