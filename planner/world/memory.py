"""Real experience overriding a world model.

When a real step differs from what the model imagined, the agent records the real outcome
here; afterwards that (state, action) is answered from experience, so a consistently wrong
model cannot lead the agent into the same mistake twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from planner.types import Action, Prediction, State, Transition
from planner.world.base import ModelStats, WorldModel


class ExperienceOverlay:
    """Answers from recorded real transitions first, from ``inner`` otherwise."""

    def __init__(self, inner: WorldModel) -> None:
        self.inner = inner
        self._real: dict[tuple[State, Action], Prediction] = {}

    @property
    def stats(self) -> ModelStats:
        return self.inner.stats

    def __len__(self) -> int:
        return len(self._real)

    def record(self, transition: Transition) -> None:
        """Remember the real outcome of ``transition``."""
        self._real[(transition.state, transition.action)] = Prediction(
            applicable=transition.applicable,
            next_state=transition.next_state,
            reward=transition.reward,
            done=transition.done,
        )

    def predict(self, state: State, action: Action) -> Prediction:
        known = self._real.get((state, action))
        return known if known is not None else self.inner.predict(state, action)

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        known = {a: self._real.get((state, a)) for a in actions}
        missing = [a for a, p in known.items() if p is None]
        if missing:
            known.update(zip(missing, self.inner.predict_many(state, missing)))
        return [known[a] for a in actions]  # type: ignore[misc]
