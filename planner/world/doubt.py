"""Searching past a model's doubted refusals.

A trained world model's typical error in a structured world is refusing an action that applies
(a ``take`` it judges impossible): a search then finds no plan, or a detour around the refused
step. The model's own verdict probability says where such errors are likely — a refusal given
with a probability of applying (:attr:`~planner.types.Prediction.p_apply`; ``1 - confidence``
for a model that does not say) well above zero is doubted.

:class:`DoubtingWorldModel` answers like the model it wraps, except that a doubted refusal
(``p_apply >= threshold``) is answered with the outcome the model writes when its verdict is
held to ``ok`` and its answer to a change
(:meth:`~planner.world.llama.LlamaWorldModel.predict_applied`). A search over it
finds plans through the doubted steps; executing such a plan for real settles each doubt: a step
that applies teaches the agent it does, one that does not is a divergence it learns from. What
is known from real experience is never doubted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from planner.errors import ConfigError
from planner.types import Action, Prediction, State
from planner.world.base import ModelStats, WorldModel
from planner.world.cache import MemoWorldModel

Key = tuple[State, Action]

PLAUSIBLE_EFFECT = 0.3
"""Least probability, given that the action applies, of the outcome the model writes for a doubted
refusal. Below it the outcome is one the model does not believe either (measured on household
scenes: the outcomes written for actions that really apply are nearly all above 0.9; about half
of those written for actions that do not are near 0)."""

AGENT_MODES: dict[str, dict[str, float | int]] = {
    "off": {"doubt": 0.0},
    "stuck": {"doubt_shortcut": 0},
    "on": {},
}
"""Agent settings (``PlannerConfig.agent``) of the three ways to treat doubted refusals, as the
benchmarks compare them: ``off`` (none: probes only), ``stuck`` (planned through only when no
plan is found), ``on`` (the defaults: also for shortcuts)."""


@runtime_checkable
class AppliedOutcomes(Protocol):
    """A world model that can say what an action would do if it applied, even one it refuses."""

    def predict_applied(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        """Each action's likeliest outcome at ``state`` in which it applies and changes the state."""
        ...


def applied_outcomes(model: object) -> AppliedOutcomes | None:
    """``model`` if it implements :class:`AppliedOutcomes`, else the first model behind the
    memos in front of it (transition caches, experience overlays: they answer as the model
    behind them does) that does; ``None``: that model cannot be doubted. Other wrappers (a model
    that changes its inner model's answers) are not looked through."""
    while True:
        if isinstance(model, AppliedOutcomes):
            return model
        if not isinstance(model, MemoWorldModel):
            return None
        model = model.inner


def apply_probability(pred: Prediction) -> float:
    """The probability the model gave ``pred``'s action of applying: ``pred.p_apply`` when it
    says, else ``confidence`` or ``1 - confidence`` by its verdict."""
    if pred.p_apply is not None:
        return pred.p_apply
    return pred.confidence if pred.applicable else 1.0 - pred.confidence


def doubtable(state: State, pred: Prediction, threshold: float) -> bool:
    """Whether ``pred`` (of an action at ``state``) is an answer a doubt could overturn: a refusal
    (not rejected as invalid) giving the action a probability of applying of at least
    ``threshold``, or an "applies, changes nothing" leaving at least ``threshold`` to other
    answers (``1 - confidence``)."""
    if pred.applicable:
        return pred.next_state == state and 1.0 - pred.confidence >= threshold
    return pred.confidence > 0.0 and apply_probability(pred) >= threshold


class _Front:
    """A world model in front of ``inner``: its counters, and one prediction as a batch of one."""

    def __init__(self, inner: WorldModel) -> None:
        self.inner = inner

    @property
    def stats(self) -> ModelStats:
        return self.inner.stats

    def predict(self, state: State, action: Action) -> Prediction:
        return self.predict_many(state, [action])[0]

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        raise NotImplementedError


class DoubtWatch(_Front):
    """``model``'s answers, unchanged; ``seen`` turns true once one of them was doubtable at
    ``threshold`` (:func:`doubtable`). A search that saw none cannot be shortened through doubts."""

    def __init__(self, model: WorldModel, *, threshold: float) -> None:
        super().__init__(model)
        self.threshold = threshold
        self.seen = False

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        preds = self.inner.predict_many(state, actions)
        if not self.seen:
            self.seen = any(doubtable(state, p, self.threshold) for p in preds)
        return preds


class DoubtingWorldModel(_Front):
    """``model``'s answers, with its doubted refusals answered as if the actions applied.

    Args:
        model: the world model searched (e.g. the agent's experience in front of its model).
        applied: what each action would do if it applied (:func:`applied_outcomes` of the
            model behind ``model``).
        threshold: the least probability of applying, ``0 < threshold <= 1``, that makes a
            refusal doubted.
        known: whether a (state, action) is known from real experience (never doubted).
        exclude: actions never doubted (e.g. irreversible ones the agent verifies first).
        plausible: least probability of the written outcome given that the action applies
            (its confidence over its probability of applying), ``0 <= plausible <= 1``.
        outcomes: a cache of ``applied``'s answers to share between wrappers of one problem
            (e.g. an episode's searches); by default the wrapper's own.

    Doubted are refusals and, alike, answers that the action applies but changes nothing — a
    model that learned that switching on a lamp is often a no-op may miss the one time it is
    not. A refusal of confidence 0 (an answer rejected as invalid) says nothing about applying
    and is never doubted.

    Attributes:
        doubted: every (state, action) answered against the model's own answer, with the
            model's probability that it applies (a refusal) or that it makes the change written
            (an answer that changed nothing).
    """

    def __init__(self, model: WorldModel, applied: AppliedOutcomes, *, threshold: float,
                 known: Callable[[State, Action], bool] = lambda s, a: False,
                 exclude: Callable[[Action], bool] = lambda a: False,
                 plausible: float = PLAUSIBLE_EFFECT, outcomes: dict[Key, Prediction] | None = None) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 < threshold <= 1.0:
            raise ConfigError(f"the doubt threshold must lie in (0, 1], got {threshold!r}")
        if isinstance(plausible, bool) or not isinstance(plausible, int | float) or not 0.0 <= plausible <= 1.0:
            raise ConfigError(f"the plausible-outcome threshold must lie in [0, 1], got {plausible!r}")
        self.plausible = float(plausible)
        super().__init__(model)
        self.applied = applied
        self.threshold = float(threshold)
        self.known = known
        self.exclude = exclude
        self.doubted: dict[Key, float] = {}
        self._outcomes: dict[Key, Prediction] = {} if outcomes is None else outcomes

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        preds = list(self.inner.predict_many(state, actions))
        doubted = [i for i, (a, p) in enumerate(zip(actions, preds))
                   if doubtable(state, p, self.threshold) and not self.exclude(a) and not self.known(state, a)]
        ask = [actions[i] for i in doubted if (state, actions[i]) not in self._outcomes]
        if ask:
            for action, outcome in zip(ask, self.applied.predict_applied(state, ask)):
                self._outcomes[(state, action)] = outcome
        for i in doubted:
            key = (state, actions[i])
            outcome = self._outcomes[key]
            p_apply = apply_probability(preds[i])
            # The outcome's confidence is that of the whole answer, verdict included.
            verdict = outcome.p_apply if outcome.p_apply is not None else p_apply
            if (outcome.applicable and outcome.next_state != state
                    and outcome.confidence >= self.plausible * verdict):
                self.doubted[key] = outcome.confidence if preds[i].applicable else p_apply
                preds[i] = outcome
        return preds
