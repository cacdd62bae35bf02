"""Monte Carlo tree search over imagined states, with transpositions.

Each simulation descends from the root by the selection policy through expanded nodes,
never entering a state already on its own path (so cycles such as pick-up/put-down are
skipped), expands the leaf with one ``predict_many`` call, evaluates it (rollout policy, or the
value policy's estimate), and backs the discounted return up the path:
``G = reward + discount * G``. With the built-in environments' rewards (1.0 for the step that
reaches the goal), reaching the goal after ``k`` steps is worth ``discount ** (k - 1)``.

The returned plan is the best goal-reaching path any simulation found; once one is found,
later simulations stop one step short of its length, so they spend the budget on looking for a
shorter one. When no simulation reached the goal, the plan follows the most visited edges.
"""

from __future__ import annotations

import random

from planner.protocols import RolloutPolicy, SelectionPolicy
from planner.search.expand import Expander, path_return
from planner.search.policies import uct
from planner.search.problem import Budget, SearchProblem
from planner.search.result import SearchResult
from planner.search.tree import Edge, Node, SearchTree
from planner.types import State


def mcts(
    problem: SearchProblem,
    state: State,
    budget: Budget = Budget(),
    *,
    selection: SelectionPolicy | None = None,
    rollout: RolloutPolicy | None = None,
    tree: SearchTree | None = None,
    seed: int = 0,
) -> SearchResult:
    """Search for a plan from ``state`` to ``problem.goal`` with MCTS.

    Args:
        problem: the model, goal, candidate actions, value policy and discount.
        state: the start state.
        budget: ``simulations``, ``max_depth``, ``max_expansions`` and ``time_limit_s`` apply.
        selection: selection policy (default :func:`~planner.search.policies.uct`).
        rollout: rollout policy valuing new leaves (default: the value policy's estimate).
        tree: a tree from an earlier search of the same problem to reuse (its part reachable
            from ``state`` is copied; the earlier tree is not changed).
        seed: seeds tie-breaking and rollouts; equal seeds give equal searches.
    """
    select = selection or uct()
    rng = random.Random(seed)
    ex = Expander(problem, state, tree=tree)
    root = ex.root
    if root.terminal:
        return ex.result([], simulations=0, stopped_by="goal")

    best: list[Edge] | None = None
    best_return = 0.0
    done = 0
    stopped_by = "simulations"
    while done < budget.simulations:
        hit = ex.out_of(budget)
        if hit is not None:
            stopped_by = hit
            break
        # A path as long as the best plan found cannot beat it: search below that depth only.
        depth_limit = budget.max_depth if best is None else len(best) - 1
        path = _descend(root, depth_limit, select, rng)
        leaf = path[-1].child if path else root
        value = _evaluate(ex, leaf, path, depth_limit, rollout, rng)
        _backup(root, path, value, problem.discount)
        done += 1
        if leaf.terminal and path:
            ret = path_return(path, problem.discount)
            if best is None or ret > best_return:
                best, best_return = path, ret

    plan = best if best is not None else _most_visited_path(root, budget.max_depth)
    return ex.result(plan, simulations=done, stopped_by=stopped_by)


def _descend(root: Node, depth_limit: int, select: SelectionPolicy, rng: random.Random) -> list[Edge]:
    """Follow ``select`` from the root through expanded nodes, never revisiting a state."""
    node = root
    path: list[Edge] = []
    on_path = {root.state}
    while node.expanded and not node.terminal and len(path) < depth_limit:
        options = [e for e in node.edges if e.child.state not in on_path]
        if not options:
            break
        edge = select(node, options, rng)
        path.append(edge)
        on_path.add(edge.child.state)
        node = edge.child
    return path


def _evaluate(
    ex: Expander, leaf: Node, path: list[Edge], depth_limit: int, rollout: RolloutPolicy | None, rng: random.Random
) -> float:
    """The value of the simulation's leaf: expanded here if new, then rolled out or estimated."""
    if leaf.terminal:
        return 0.0
    if len(path) >= depth_limit:
        return leaf.estimate
    on_path = {ex.root.state, *(e.child.state for e in path)}
    if not any(e.child.state not in on_path for e in ex.expand(leaf)):
        return 0.0  # dead end: nothing applicable that leaves the path
    return rollout(ex.problem, leaf.state, rng) if rollout is not None else leaf.estimate


def _backup(root: Node, path: list[Edge], leaf_value: float, discount: float) -> None:
    """Add one simulation's discounted returns to the leaf, every edge and every node above."""
    g = leaf_value
    leaf = path[-1].child if path else root
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
    """From the root, the most visited edge (then the best mean) at each node, without cycles."""
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
