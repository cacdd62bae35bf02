"""The protocols every part of the planner meets, and the search policies' signatures.

Environments, world models and goals are structural: any object with these methods works, no
base class needed. Policies are plain functions; their type aliases here say what they take
and return:

- value policy ``(state, goal) -> float``: how good a state is, on the reward's scale
  (built-in environments give 1.0 for the step that reaches the goal, so values lie in [0, 1]);
- selection policy ``(node, edges, rng) -> edge``: which edge an MCTS simulation follows, among
  the edges of an expanded node that do not close a cycle (``edges`` is never empty);
- rollout policy ``(problem, state, rng) -> float``: the value of a leaf, estimated by
  simulating further inside the world model;
- actions function ``(state) -> actions``: the candidate actions worth asking the model about.

This module sits below every other one: at run time it imports nothing from ``planner``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from planner.env.base import StepResult
    from planner.search.problem import SearchProblem
    from planner.search.tree import Edge, Node
    from planner.types import Action, Prediction, State
    from planner.world.base import ModelStats

__all__ = [
    "ActionsFn",
    "Environment",
    "Goal",
    "RewardPolicy",
    "RolloutPolicy",
    "SelectionPolicy",
    "Simulator",
    "ValuePolicy",
    "WorldModel",
]


@runtime_checkable
class Goal(Protocol):
    """What the planner tests imagined states against."""

    def satisfied(self, state: State) -> bool:
        """True when ``state`` reaches the goal."""
        ...

    def progress(self, state: State) -> float:
        """How close ``state`` is to the goal, in [0, 1]; 1.0 exactly when satisfied."""
        ...


@runtime_checkable
class WorldModel(Protocol):
    """Predicts precondition, effect and reward/done of actions at (imagined) states."""

    @property
    def stats(self) -> ModelStats:
        """The model's running counters."""
        ...

    def predict(self, state: State, action: Action) -> Prediction:
        """The predicted outcome of ``action`` at ``state``."""
        ...

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        """Predictions for several actions at one state, in the order of ``actions``."""
        ...


@runtime_checkable
class Simulator(Protocol):
    """An environment that can also answer "what if" exactly, without changing itself."""

    def simulate(self, state: State, action: Action) -> Prediction:
        """The exact outcome of ``action`` at ``state``."""
        ...


@runtime_checkable
class Environment(Protocol):
    """What the agent needs from a real environment (in the spirit of Gymnasium).

    The planner asks it for three things only: the start state (``reset``), the result of a
    real action (``step``) and, for planning, the candidate actions at a state
    (``candidate_actions``), a list the world model then judges; the planner never asks the
    real environment which actions apply at imagined states.
    """

    @property
    def goal(self) -> Goal:
        """The goal of the current task."""
        ...

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        """Start an episode; return the start state and an info dict."""
        ...

    def step(self, action: Action) -> StepResult:
        """Apply ``action`` for real."""
        ...

    def candidate_actions(self, state: State) -> Sequence[Action]:
        """Actions worth considering at ``state`` (may include inapplicable ones).

        Must depend on ``state`` alone, never on the environment's hidden current state,
        because the planner calls it on imagined states.
        """
        ...


ActionsFn: TypeAlias = Callable[["State"], Sequence["Action"]]
"""Candidate actions at a state, e.g. ``env.candidate_actions``."""

ValuePolicy: TypeAlias = Callable[["State", Goal], float]
"""``(state, goal) -> value``: the expected discounted reward still to come from ``state``."""

SelectionPolicy: TypeAlias = Callable[["Node", Sequence["Edge"], random.Random], "Edge"]
"""``(node, edges, rng) -> edge``: the edge an MCTS simulation follows from ``node``."""

RolloutPolicy: TypeAlias = Callable[["SearchProblem", "State", random.Random], float]
"""``(problem, state, rng) -> value``: a leaf's value, from simulating on inside the model."""

RewardPolicy: TypeAlias = Callable[["State", "Prediction", Goal], float]
"""``(state, prediction, goal) -> reward``: the reward search credits to an imagined step."""
