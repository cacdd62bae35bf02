"""A bounded LRU transition cache in front of any world model."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from planner.errors import ConfigError
from planner.types import Action, Prediction, State
from planner.world.base import ModelStats, WorldModel


class CachedWorldModel:
    """Memoises ``(state, action) → Prediction`` for up to ``maxsize`` entries (LRU).

    Hits are counted in ``stats.cache_hits`` and also in ``stats.predictions``. For
    ``predict_many`` only the missing actions reach the inner model, in one call.
    """

    def __init__(self, inner: WorldModel, *, maxsize: int = 100_000) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigError(f"maxsize must be a whole number of at least 1, got {maxsize!r}")
        self.inner = inner
        self.maxsize = maxsize
        self._memo: OrderedDict[tuple[State, Action], Prediction] = OrderedDict()

    @property
    def stats(self) -> ModelStats:
        return self.inner.stats

    def __len__(self) -> int:
        return len(self._memo)

    def _get(self, key: tuple[State, Action]) -> Prediction | None:
        pred = self._memo.get(key)
        if pred is not None:
            self._memo.move_to_end(key)
            self.inner.stats.cache_hits += 1
            self.inner.stats.predictions += 1
        return pred

    def _put(self, key: tuple[State, Action], pred: Prediction) -> None:
        self._memo[key] = pred
        self._memo.move_to_end(key)
        while len(self._memo) > self.maxsize:
            self._memo.popitem(last=False)

    def predict(self, state: State, action: Action) -> Prediction:
        key = (state, action)
        pred = self._get(key)
        if pred is None:
            pred = self.inner.predict(state, action)
            self._put(key, pred)
        return pred

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        found = {a: self._get((state, a)) for a in actions}
        missing = [a for a, p in found.items() if p is None]
        if missing:
            for action, pred in zip(missing, self.inner.predict_many(state, missing)):
                self._put((state, action), pred)
                found[action] = pred
        return [found[a] for a in actions]  # type: ignore[misc]
