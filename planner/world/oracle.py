"""Exact world models taken from a simulator, and an error-injecting wrapper for tests.

:class:`OracleWorldModel` is the upper bound a learned model is compared with, and the model
the runtime is tested with. :class:`NoisyWorldModel` makes a model wrong at a chosen rate, in a
reproducible way, to exercise replanning.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence

from planner.env.base import Simulator
from planner.errors import ConfigError
from planner.types import Action, FactGoal, Prediction, State
from planner.world.base import ModelStats, WorldModel


class OracleWorldModel:
    """A world model that asks a simulator for the exact outcome.

    Args:
        simulator: an object with ``simulate(state, action) -> Prediction`` (for example a
            :class:`~planner.env.pddl.PDDLEnvironment`) or such a function.
    """

    def __init__(self, simulator: Simulator | Callable[[State, Action], Prediction]) -> None:
        self._simulate = simulator.simulate if isinstance(simulator, Simulator) else simulator
        self.stats = ModelStats()

    def predict(self, state: State, action: Action) -> Prediction:
        start = time.perf_counter()
        pred = self._simulate(state, action)
        self.stats.predictions += 1
        self.stats.seconds += time.perf_counter() - start
        return pred

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        return [self.predict(state, a) for a in actions]


class NoisyWorldModel:
    """Wraps a model and corrupts a fraction of its predictions.

    A corrupted prediction flips the applicability verdict (an inapplicable action is then
    predicted to leave the state as it is and still "apply"; an applicable one is predicted to
    fail) or, for applicable actions of symbolic states, gets a wrong next state: with a
    ``goal``, one goal fact that does not really hold is added (an optimistic model, the error
    a search is drawn to); otherwise one predicted fact is dropped. Whether a
    given (state, action) is corrupted depends only on ``seed`` and the pair, so the model is
    consistently wrong — like a real learned model — and runs are reproducible.

    Args:
        inner: the model to corrupt.
        error_rate: probability in [0, 1] that a prediction is corrupted.
        seed: selects which pairs are corrupted.
        goal: facts to hallucinate (see above); ``None`` drops facts instead.
    """

    def __init__(
        self,
        inner: WorldModel,
        *,
        error_rate: float,
        seed: int = 0,
        goal: FactGoal | None = None,
    ) -> None:
        if isinstance(error_rate, bool) or not isinstance(error_rate, (int, float)) or not 0.0 <= error_rate <= 1.0:
            raise ConfigError(f"error_rate must lie in [0, 1], got {error_rate!r}")
        self.inner = inner
        self.error_rate = error_rate
        self.seed = seed
        self.goal = goal
        self.corrupted = 0

    @property
    def stats(self) -> ModelStats:
        return self.inner.stats

    def _rng(self, state: State, action: Action) -> random.Random:
        key = f"{self.seed}|{state.canonical()}|{action.name}".encode()
        return random.Random(hashlib.blake2b(key, digest_size=8).digest())

    def _corrupt(self, state: State, action: Action, pred: Prediction) -> Prediction:
        rng = self._rng(state, action)
        if rng.random() >= self.error_rate:
            return pred
        self.corrupted += 1
        if pred.applicable and pred.next_state.is_symbolic and pred.next_state.facts:
            facts = pred.next_state.facts
            missing = sorted(self.goal.facts - facts) if self.goal is not None else []
            if missing:
                wrong = facts | {missing[rng.randrange(len(missing))]}
            else:
                ordered = sorted(facts)
                wrong = facts - {ordered[rng.randrange(len(ordered))]}
            return Prediction(
                applicable=True, next_state=State(wrong), reward=0.0, done=False,
                confidence=pred.confidence,
            )
        return Prediction(
            applicable=not pred.applicable, next_state=state, reward=0.0, done=False,
            confidence=pred.confidence,
        )

    def predict(self, state: State, action: Action) -> Prediction:
        return self._corrupt(state, action, self.inner.predict(state, action))

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        preds = self.inner.predict_many(state, actions)
        return [self._corrupt(state, a, p) for a, p in zip(actions, preds)]
