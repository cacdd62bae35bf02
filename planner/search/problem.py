"""What a search is asked (:class:`SearchProblem`) and how much it may spend (:class:`Budget`)."""

from __future__ import annotations

from dataclasses import dataclass

from planner.errors import ConfigError
from planner.protocols import ActionsFn, Environment, Goal, RewardPolicy, ValuePolicy, WorldModel
from planner.search.policies import goal_fraction_value, goal_reward


@dataclass(frozen=True, slots=True)
class SearchProblem:
    """The imagined world a search explores, and how it scores what it finds.

    Attributes:
        model: the world model that predicts every transition.
        goal: the goal imagined states are tested against.
        actions: candidate actions at a state (e.g. ``env.candidate_actions``).
        value: value policy: the expected discounted reward still to come from a state.
        discount: per-step discount in (0, 1]; below 1 it prefers shorter plans.
        reward: reward policy ``(state, prediction, goal) -> reward`` credited to each imagined
            step (default :func:`~planner.search.policies.goal_reward`: 1.0 for a step into a
            goal state, as the goal judges it for symbolic states; the model's
            ``Prediction.reward`` for text states; :func:`~planner.search.policies.model_reward`
            uses the model's reward everywhere).

    A path's return is the discounted sum of its rewards.
    """

    model: WorldModel
    goal: Goal
    actions: ActionsFn
    value: ValuePolicy = goal_fraction_value
    discount: float = 0.95
    reward: RewardPolicy = goal_reward

    def __post_init__(self) -> None:
        if not 0.0 < self.discount <= 1.0:
            raise ConfigError(f"discount must lie in (0, 1], got {self.discount!r}")

    @classmethod
    def from_env(
        cls, env: Environment, model: WorldModel, *, value: ValuePolicy = goal_fraction_value,
        discount: float = 0.95, reward: RewardPolicy = goal_reward,
    ) -> SearchProblem:
        """The problem of reaching ``env.goal`` among ``env``'s candidate actions with ``model``."""
        return cls(model=model, goal=env.goal, actions=env.candidate_actions, value=value, discount=discount,
                   reward=reward)


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

