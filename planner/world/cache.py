"""World models in front of another: a memo that answers what it knows and asks the inner
model about the rest (:class:`MemoWorldModel`), and its bounded LRU transition cache."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from planner.errors import ConfigError
from planner.types import Action, Prediction, State
from planner.world.base import ModelStats, WorldModel

Key = tuple[State, Action]


class MemoWorldModel:
    """Answers ``(state, action)`` from its memo when it can, from ``inner`` otherwise.

    For ``predict_many`` only the actions the memo cannot answer reach the inner model, in one
    call. Subclasses choose what they answer (:meth:`_known`) and what they keep of the inner
    model's answers (:meth:`_learned`; by default nothing). ``stats`` are the inner model's.
    """

    def __init__(self, inner: WorldModel) -> None:
        self.inner = inner
        self._memo: dict[Key, Prediction] = {}

    @property
    def stats(self) -> ModelStats:
        return self.inner.stats

    def __len__(self) -> int:
        return len(self._memo)

    def _known(self, key: Key) -> Prediction | None:
        return self._memo.get(key)

    def _learned(self, key: Key, pred: Prediction) -> None:
        """The inner model answered ``key`` with ``pred``."""

    def predict(self, state: State, action: Action) -> Prediction:
        key = (state, action)
        pred = self._known(key)
        if pred is None:
            pred = self.inner.predict(state, action)
            self._learned(key, pred)
        return pred

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        found = {a: self._known((state, a)) for a in actions}
        missing = [a for a, p in found.items() if p is None]
        if missing:
            for action, pred in zip(missing, self.inner.predict_many(state, missing)):
                self._learned((state, action), pred)
                found[action] = pred
        return [found[a] for a in actions]  # type: ignore[misc]


class CachedWorldModel(MemoWorldModel):
    """Memoises ``(state, action) → Prediction`` for up to ``maxsize`` entries (LRU).

    Hits are counted in ``stats.cache_hits`` and also in ``stats.predictions``.
    """

    def __init__(self, inner: WorldModel, *, maxsize: int = 100_000) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigError(f"maxsize must be a whole number of at least 1, got {maxsize!r}")
        super().__init__(inner)
        self.maxsize = maxsize
        self._memo: OrderedDict[Key, Prediction] = OrderedDict()

    def _known(self, key: Key) -> Prediction | None:
        pred = self._memo.get(key)
        if pred is not None:
            self._memo.move_to_end(key)
            self.inner.stats.cache_hits += 1
            self.inner.stats.predictions += 1
        return pred

    def _learned(self, key: Key, pred: Prediction) -> None:
        self._memo[key] = pred
        self._memo.move_to_end(key)
        while len(self._memo) > self.maxsize:
            self._memo.popitem(last=False)
