"""Selection, value and rollout policies: plain functions a user can replace.

Their signatures are the type aliases of :mod:`planner.protocols` (``ValuePolicy``,
``SelectionPolicy``, ``RolloutPolicy``). Factories such as :func:`uct` and :func:`puct` return
policies with their constants bound.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from planner.errors import ConfigError
from planner.protocols import RolloutPolicy, SelectionPolicy, ValuePolicy
from planner.search.tree import Edge, Node
from planner.types import Goal, Prediction, State

if TYPE_CHECKING:
    from planner.search.problem import SearchProblem


# -- reward policies ------------------------------------------------------------------------
def goal_reward(state: State, prediction: Prediction, goal: Goal) -> float:
    """1.0 for an imagined step into a state that satisfies the goal, else 0.0 — judged by the
    goal itself for symbolic states (the model predicts the state; its own ``done`` is its
    weakest output), by the model's ``Prediction.reward`` for free-text states, which the goal
    cannot test. The default: it keeps rewards and terminal states consistent."""
    nxt = prediction.next_state
    if nxt.is_symbolic:
        return 1.0 if goal.satisfied(nxt) else 0.0
    return float(prediction.reward)


def model_reward(state: State, prediction: Prediction, goal: Goal) -> float:
    """The world model's own ``Prediction.reward``, for environments with rewards of their own
    (costs, shaped rewards) that the model has learned."""
    return float(prediction.reward)


# -- value policies -------------------------------------------------------------------------
def goal_fraction_value(state: State, goal: Goal) -> float:
    """The fraction of the goal reached (``goal.progress``), in [0, 1]."""
    return goal.progress(state)


def distance_value(distance: Callable[[State], float], *, discount: float = 0.95) -> ValuePolicy:
    """Turn a distance estimate (steps to the goal) into a value: ``discount ** distance``.

    With the search's own discount this approximates the discounted return of reaching the
    goal (reward 1) in ``distance`` steps; an infinite distance (dead end) gives 0.
    """
    _check_discount(discount)

    def value(state: State, goal: Goal) -> float:
        d = distance(state)
        if math.isinf(d) or d < 0:
            return 0.0
        return float(discount**d)

    return value


def heuristic_value(env: Any, name: str = "auto", *, discount: float = 0.95) -> ValuePolicy:
    """The value policy called ``name`` for the environment ``env``.

    ``"goal"``: :func:`goal_fraction_value`. ``"auto"``: the environment's own domain heuristic
    (``env.distance_heuristic("ff")``, as PDDL environments have) through :func:`distance_value`,
    and the goal fraction for environments without one. Any other name is passed to
    ``env.distance_heuristic(name)`` (PDDL: ``"ff"``, ``"add"``, ``"max"``, ``"lmcut"``).
    """
    if name == "goal":
        return goal_fraction_value
    distance_heuristic = getattr(env, "distance_heuristic", None)
    if name == "auto":
        if distance_heuristic is None:
            return goal_fraction_value
        name = "ff"
    if distance_heuristic is None:
        raise ConfigError(
            f"heuristic {name!r} needs an environment with distance_heuristic(); "
            f"{type(env).__name__} has none: use 'auto' or 'goal'"
        )
    return distance_value(distance_heuristic(name), discount=discount)


# -- selection policies ---------------------------------------------------------------------
def _argmax(edges: Sequence[Edge], score: Callable[[Edge], float], rng: random.Random) -> Edge:
    """The best-scoring edge; ties (within 1e-12) broken by ``rng``."""
    best: list[Edge] = []
    best_score = -math.inf
    for edge in edges:
        s = score(edge)
        if s > best_score + 1e-12:
            best, best_score = [edge], s
        elif abs(s - best_score) <= 1e-12:
            best.append(edge)
    return best[0] if len(best) == 1 else rng.choice(best)


def uct(*, c: float = 0.05) -> SelectionPolicy:
    """UCB1 applied to trees: ``Q + c * sqrt(ln N / (1 + n))``.

    ``Q`` is the edge's mean return; before its first visit, its one-step estimate (first-play
    value from the value policy) instead of infinity, so the value policy orders first visits.
    ``N`` counts the node's visits, ``n`` the edge's. The edge estimates and returns already
    carry the problem's discount.
    """
    _check_exploration(c)

    def select(node: Node, edges: Sequence[Edge], rng: random.Random) -> Edge:
        log_n = math.log(max(node.visits, 1))
        return _argmax(edges, lambda e: e.mean_value + c * math.sqrt(log_n / (1 + e.visits)), rng)

    return select


def puct(*, c: float = 1.25) -> SelectionPolicy:
    """AlphaZero's PUCT: ``Q + c * P * sqrt(N) / (1 + n)`` with the edge priors ``P``.

    ``Q``, ``N`` and ``n`` as in :func:`uct`.
    """
    _check_exploration(c)

    def select(node: Node, edges: Sequence[Edge], rng: random.Random) -> Edge:
        sqrt_n = math.sqrt(max(node.visits, 1))
        return _argmax(edges, lambda e: e.mean_value + c * e.prior * sqrt_n / (1 + e.visits), rng)

    return select


def greedy() -> SelectionPolicy:
    """Always the edge with the best mean (or estimated) return; no exploration."""

    def select(node: Node, edges: Sequence[Edge], rng: random.Random) -> Edge:
        return _argmax(edges, lambda e: e.mean_value, rng)

    return select


# -- priors ---------------------------------------------------------------------------------
def softmax_priors(edges: Sequence[Edge], *, temperature: float = 0.1) -> None:
    """Set edge priors to a softmax of the children's estimates times model confidence."""
    if not edges:
        return
    logits = [e.child.estimate / temperature for e in edges]
    top = max(logits)
    weights = [math.exp(x - top) * max(e.prediction.confidence, 1e-6) for x, e in zip(logits, edges)]
    total = sum(weights)
    for edge, w in zip(edges, weights):
        edge.prior = w / total


# -- rollout policies -----------------------------------------------------------------------
def random_rollout(*, depth: int = 10) -> RolloutPolicy:
    """Simulate up to ``depth`` random applicable actions inside the model.

    Returns the discounted sum of the predicted rewards, stopping at the goal. Each step asks
    the model about every candidate action, so rollouts are expensive with a language model;
    prefer value policies there.
    """
    if depth < 1:
        raise ConfigError(f"rollout depth must be at least 1, got {depth!r}")

    def rollout(problem: SearchProblem, state: State, rng: random.Random) -> float:
        total, weight, current = 0.0, 1.0, state
        for _ in range(depth):
            predictions = problem.model.predict_many(current, problem.actions(current))
            moves = [p for p in predictions if p.applicable and p.next_state != current]
            if not moves:
                break
            pred = rng.choice(moves)
            total += weight * pred.reward
            if pred.done or problem.goal.satisfied(pred.next_state):
                break
            weight *= problem.discount
            current = pred.next_state
        return total

    return rollout


def _check_discount(discount: float) -> None:
    if not 0.0 < discount <= 1.0:
        raise ConfigError(f"discount must lie in (0, 1], got {discount!r}")


def _check_exploration(c: float) -> None:
    if not 0.0 <= c < math.inf:
        raise ConfigError(f"exploration constant c must be a finite number >= 0, got {c!r}")
