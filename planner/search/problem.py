"""What a search is asked (:class:`SearchProblem`) and how much it may spend (:class:`Budget`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.errors import ConfigError
from planner.protocols import ActionsFn, Environment, Goal, ValuePolicy, WorldModel
from planner.search.policies import goal_fraction_value
from planner.types import State


@dataclass(frozen=True, slots=True)
class SearchProblem:
    """The imagined world a search explores, and how it scores what it finds.

    Attributes:
        model: the world model that predicts every transition.
        goal: the goal imagined states are tested against.
        actions: candidate actions at a state (e.g. ``env.candidate_actions``).
        value: value policy: the expected discounted reward still to come from a state.
        discount: per-step discount in (0, 1]; below 1 it prefers shorter plans.

    A step's reward is the model's ``Prediction.reward`` (built-in environments: 1.0 for the
    step that reaches the goal, 0.0 otherwise), and a path's return is the discounted sum of
    its rewards.
    """

    model: WorldModel
    goal: Goal
    actions: ActionsFn
    value: ValuePolicy = goal_fraction_value
    discount: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.discount <= 1.0:
            raise ConfigError(f"discount must lie in (0, 1], got {self.discount!r}")

    @classmethod
    def from_env(
        cls, env: Environment, model: WorldModel, *, value: ValuePolicy = goal_fraction_value, discount: float = 0.95
    ) -> SearchProblem:
        """The problem of reaching ``env.goal`` among ``env``'s candidate actions with ``model``."""
        return cls(model=model, goal=env.goal, actions=env.candidate_actions, value=value, discount=discount)


@dataclass(frozen=True, slots=True)
class Budget:
    """How much one search may spend; it stops at whichever limit comes first.

    Attributes:
        simulations: MCTS simulations (each expands at most one node).
        max_expansions: nodes whose candidate actions are sent to the model (one
            ``predict_many`` call each); both searches.
        max_depth: longest plan considered, in actions.
        time_limit_s: wall-clock seconds (``None`` or infinity: no limit).
        beam_width: nodes beam search keeps per layer.
    """

    simulations: int = 2_000
    max_expansions: int = 20_000
    max_depth: int = 60
    time_limit_s: float | None = None
    beam_width: int = 16

    def __post_init__(self) -> None:
        for name in ("simulations", "max_expansions", "max_depth", "beam_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer of at least 1, got {value!r}")
        t = self.time_limit_s
        if t is not None and not (isinstance(t, int | float) and t > 0.0):
            raise ConfigError(f"time_limit_s must be a positive number of seconds or None, got {t!r}")


_LEGACY_PROBLEM = ("model", "goal", "actions", "value", "discount")
_LEGACY_BUDGET = ("simulations", "max_expansions", "max_depth", "time_limit_s", "beam_width")


def search_arguments(
    problem: SearchProblem | State, state: State | None, budget: Budget, keywords: dict[str, Any]
) -> tuple[SearchProblem, State, Budget]:
    """``(problem, state, budget)`` of a search call, in either form it accepts.

    ``search(problem, state, budget)`` is the form to use; the earlier keyword form
    ``search(state, model=..., goal=..., actions=..., beam_width=..., ...)`` is accepted while
    callers move over. Unknown keywords raise :class:`ConfigError`.
    """
    if isinstance(problem, State):
        state = problem
        problem = _problem_of(keywords)
        budget = Budget(**{k: v for k, v in keywords.items() if k in _LEGACY_BUDGET})
    elif keywords:
        raise ConfigError(f"unknown search arguments {sorted(keywords)}")
    if not isinstance(state, State):
        raise ConfigError(f"the start state must be a State, got {state!r:.80}")
    return problem, state, budget


def _problem_of(keywords: dict[str, Any]) -> SearchProblem:
    unknown = sorted(set(keywords) - set(_LEGACY_PROBLEM) - set(_LEGACY_BUDGET))
    if unknown:
        raise ConfigError(f"unknown search arguments {unknown}")
    return SearchProblem(**{k: v for k, v in keywords.items() if k in _LEGACY_PROBLEM})
