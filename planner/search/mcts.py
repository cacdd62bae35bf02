"""Monte Carlo tree search over imagined states, with transpositions.

Each simulation descends from the root by the selection policy through expanded nodes,
never entering a state already on its own path (so cycles such as pick-up/put-down are
skipped), expands the leaf with one ``predict_many`` call, evaluates it (rollout policy, or the
value policy's estimate), and backs the discounted return up the path:
``G = reward + discount * G``. Values lie in [0, 1]: reaching the goal after ``k`` steps is
worth ``discount ** (k - 1)``.

The returned plan is the best goal-reaching path any simulation found (the shortest); once one
is found, later simulations stop one step short of its length, so they spend the budget on
looking for a shorter one. When no simulation reached the goal, the plan follows the most
visited edges.
"""

from __future__ import annotations

import math
import random

from planner.search.expand import Expander
from planner.search.policies import (
    ActionsFn,
    RolloutPolicy,
    SelectionPolicy,
    ValuePolicy,
    goal_fraction_value,
    no_rollout,
    softmax_priors,
    uct,
)
from planner.search.result import SearchResult
from planner.search.tree import Edge, Node, SearchTree
from planner.types import Goal, State
from planner.world.base import WorldModel


def mcts(
    state: State,
    *,
    model: WorldModel,
    goal: Goal,
    actions: ActionsFn,
    simulations: int = 2_000,
    max_depth: int = 60,
    time_limit_s: float | None = None,
    selection: SelectionPolicy | None = None,
    value: ValuePolicy = goal_fraction_value,
    rollout: RolloutPolicy = no_rollout,
    discount: float = 0.95,
    seed: int = 0,
    tree: SearchTree | None = None,
) -> SearchResult:
    """Search for a plan from ``state`` to ``goal`` with MCTS.

    Args:
        state: the start state.
        model: the world model that predicts every transition.
        goal: the goal imagined states are tested against.
        actions: candidate actions at a state (e.g. ``env.candidate_actions``).
        simulations: number of simulations (each expands at most one node).
        max_depth: longest path a simulation follows (actions).
        time_limit_s: wall-clock limit in seconds (``None``: none).
        selection: selection policy (default :func:`~planner.search.policies.uct`).
        value: value policy, estimating leaves and first visits, in [0, 1].
        rollout: rollout policy; its value replaces the estimate unless it returns NaN.
        discount: per-step discount in (0, 1]; below 1 it prefers shorter plans.
        seed: seeds tie-breaking and rollouts; equal seeds give equal searches.
        tree: a tree from an earlier search to reuse (re-rooted at ``state`` if it holds it).
    """
    if simulations < 1:
        raise ValueError(f"simulations must be at least 1, got {simulations}")
    if not 0.0 < discount <= 1.0:
        raise ValueError(f"discount must lie in (0, 1], got {discount!r}")
    select = selection or uct(discount=discount)
    rng = random.Random(seed)
    ex = Expander(model=model, goal=goal, actions=actions, value=value, tree=tree,
                  root_state=state)
    root = ex.root
    if root.terminal:
        return ex.result([], value=1.0, simulations=0, stopped_by="goal")

    best_path: list[Edge] | None = None
    best_return = -1.0
    done = 0
    stopped_by = "simulations"
    while done < simulations:
        if time_limit_s is not None and ex.elapsed() >= time_limit_s:
            stopped_by = "time"
            break
        node = root
        path: list[Edge] = []
        on_path = {root.state}
        # A path as long as the best plan found cannot beat it: search below that depth only.
        depth_limit = max_depth if best_path is None else len(best_path) - 1
        while node.expanded and not node.terminal and len(path) < depth_limit:
            options = [e for e in node.edges if e.child.state not in on_path]
            if not options:
                break
            edge = select(node, options, rng)
            path.append(edge)
            on_path.add(edge.child.state)
            node = edge.child

        if node.terminal:
            leaf_value = 0.0
        elif len(path) >= depth_limit:
            leaf_value = node.estimate
        else:
            if not node.expanded:
                edges = ex.expand(node)
                softmax_priors(edges)
            rolled = rollout(node.state, goal, model, actions, rng)
            leaf_value = node.estimate if math.isnan(rolled) else rolled
            if node.expanded and not [e for e in node.edges if e.child.state not in on_path]:
                leaf_value = 0.0  # dead end: nothing applicable that leaves the path

        _backup(root, node, path, leaf_value, discount)

        if path and path[-1].child.terminal:
            ret = discount ** (len(path) - 1)
            if ret > best_return:
                best_return, best_path = ret, list(path)
        done += 1

    if best_path is not None:
        return ex.result(best_path, value=best_return, simulations=done, stopped_by=stopped_by)
    return ex.result(_most_visited_path(root, max_depth), value=root.mean_value,
                     simulations=done, stopped_by=stopped_by)


def _backup(root: Node, leaf: Node, path: list[Edge], leaf_value: float, discount: float) -> None:
    """Add one simulation's discounted returns to the leaf, every edge and every node above."""
    g = leaf_value
    leaf.visits += 1
    leaf.value_sum += g
    for i in range(len(path) - 1, -1, -1):
        edge = path[i]
        g = edge.reward + discount * g
        edge.visits += 1
        edge.value_sum += g
        parent = path[i - 1].child if i > 0 else root
        parent.visits += 1
        parent.value_sum += g


def _most_visited_path(root: Node, max_depth: int) -> list[Edge]:
    path: list[Edge] = []
    seen = {root.state}
    node = root
    while node.edges and len(path) < max_depth:
        options = [e for e in node.edges if e.child.state not in seen and e.visits > 0]
        if not options:
            break
        edge = max(options, key=lambda e: (e.visits, e.mean_value))
        path.append(edge)
        seen.add(edge.child.state)
        node = edge.child
    return path
