"""Selection, value and rollout policies: plain functions a user can replace.

Signatures:

- value policy: ``(state, goal) -> float`` in [0, 1], higher is closer to the goal;
- selection policy: ``(node, edges, rng) -> Edge``, choosing among the edges of an
  expanded node that do not close a cycle (``edges`` is never empty);
- rollout policy: ``(state, goal, model, actions, rng) -> float`` in [0, 1], the value of a
  leaf estimated by simulating further inside the world model.

Factories such as :func:`uct` and :func:`puct` return selection policies with their
constants bound.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from planner.search.tree import Edge, Node
from planner.types import Action, Goal, State
from planner.world.base import WorldModel

ValuePolicy = Callable[[State, Goal], float]
SelectionPolicy = Callable[[Node, Sequence[Edge], random.Random], Edge]
ActionsFn = Callable[[State], Sequence[Action]]
RolloutPolicy = Callable[[State, Goal, WorldModel, ActionsFn, random.Random], float]


# -- value policies -------------------------------------------------------------------------
def goal_fraction_value(state: State, goal: Goal) -> float:
    """The fraction of the goal reached (``goal.progress``), in [0, 1]."""
    return goal.progress(state)


def distance_value(distance: Callable[[State], float], *, discount: float = 0.95) -> ValuePolicy:
    """Turn a distance estimate (steps to the goal) into a value: ``discount ** distance``.

    With the search's own discount this approximates the discounted return of reaching the
    goal in ``distance`` steps; an infinite distance (dead end) gives 0.
    """
    if not 0.0 < discount <= 1.0:
        raise ValueError(f"discount must lie in (0, 1], got {discount!r}")

    def value(state: State, goal: Goal) -> float:
        d = distance(state)
        if math.isinf(d) or d < 0:
            return 0.0
        return float(discount**d)

    return value


# -- selection policies ---------------------------------------------------------------------
def _edge_q(edge: Edge, discount: float) -> float:
    """Mean return of an edge; before its first visit, its one-step estimate."""
    if edge.visits:
        return edge.mean_value
    if edge.child.terminal:
        return edge.reward
    return edge.reward + discount * edge.child.estimate


def _argmax(edges: Sequence[Edge], score: Callable[[Edge], float], rng: random.Random) -> Edge:
    best: list[Edge] = []
    best_score = -math.inf
    for edge in edges:
        s = score(edge)
        if s > best_score + 1e-12:
            best, best_score = [edge], s
        elif abs(s - best_score) <= 1e-12:
            best.append(edge)
    return best[0] if len(best) == 1 else rng.choice(best)


def uct(*, c: float = 0.05, discount: float = 0.95) -> SelectionPolicy:
    """UCB1 applied to trees: ``Q + c * sqrt(ln N / (1 + n))``.

    Unvisited edges use their one-step estimate as ``Q`` (first-play value from the value
    policy) instead of infinity, so the value policy orders the first visits.
    """

    def select(node: Node, edges: Sequence[Edge], rng: random.Random) -> Edge:
        log_n = math.log(max(node.visits, 1))
        return _argmax(
            edges, lambda e: _edge_q(e, discount) + c * math.sqrt(log_n / (1 + e.visits)), rng
        )

    return select


def puct(*, c: float = 1.25, discount: float = 0.95) -> SelectionPolicy:
    """AlphaZero's PUCT: ``Q + c * P * sqrt(N) / (1 + n)`` with the edge priors ``P``."""

    def select(node: Node, edges: Sequence[Edge], rng: random.Random) -> Edge:
        sqrt_n = math.sqrt(max(node.visits, 1))
        return _argmax(
            edges, lambda e: _edge_q(e, discount) + c * e.prior * sqrt_n / (1 + e.visits), rng
        )

    return select


def greedy(*, discount: float = 0.95) -> SelectionPolicy:
    """Always the edge with the best mean (or estimated) return; no exploration."""

    def select(node: Node, edges: Sequence[Edge], rng: random.Random) -> Edge:
        return _argmax(edges, lambda e: _edge_q(e, discount), rng)

    return select


# -- priors ---------------------------------------------------------------------------------
def softmax_priors(edges: Sequence[Edge], *, temperature: float = 0.1) -> None:
    """Set edge priors to a softmax of the children's estimates times model confidence."""
    if not edges:
        return
    logits = [e.child.estimate / temperature for e in edges]
    top = max(logits)
    weights = [math.exp(x - top) * max(e.prediction.confidence, 1e-6)
               for x, e in zip(logits, edges)]
    total = sum(weights)
    for edge, w in zip(edges, weights):
        edge.prior = w / total


# -- rollout policies -----------------------------------------------------------------------
def no_rollout(
    state: State, goal: Goal, model: WorldModel, actions: ActionsFn, rng: random.Random
) -> float:
    """Use the value policy's estimate at the leaf (returns NaN: "no rollout value")."""
    return math.nan


def random_rollout(
    *, depth: int = 10, discount: float = 0.95
) -> RolloutPolicy:
    """Simulate up to ``depth`` random applicable actions inside the model.

    Returns ``discount ** (k - 1)`` when the goal is reached after ``k`` steps, else 0.
    Each step asks the model about every candidate action, so rollouts are expensive with a
    language model; prefer value policies there.
    """

    def rollout(
        state: State, goal: Goal, model: WorldModel, actions: ActionsFn, rng: random.Random
    ) -> float:
        current = state
        for k in range(1, depth + 1):
            cands = list(actions(current))
            preds = [p for p in model.predict_many(current, cands)
                     if p.applicable and p.next_state != current]
            if not preds:
                return 0.0
            pred = rng.choice(preds)
            if pred.done or goal.satisfied(pred.next_state):
                return float(discount ** (k - 1))
            current = pred.next_state
        return 0.0

    return rollout
