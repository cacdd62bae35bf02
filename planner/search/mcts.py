"""Monte Carlo tree search over imagined states, with transpositions.

Each simulation descends from the root by the selection policy through expanded nodes,
never entering a state already on its own path (so cycles such as pick-up/put-down are
skipped), expands the leaf with one ``predict_many`` call, evaluates it (rollout policy, or the
value policy's estimate), and backs the discounted return up the path:
``G = reward + discount * G``. With the built-in environments' rewards (1.0 for the step that
reaches the goal), reaching the goal after ``k`` steps is worth ``discount ** (k - 1)``.

A descent that meets a dead end (every successor already on its path) steps back and selects
again at the parent, so each simulation expands a new node while one is reachable: where
actions undo each other and the value is flat (the goal fraction before any goal fact holds),
four simulations in five used to end in such dead ends, and the search spent its budget
revisiting what it knew. When no node is left to expand the search stops (``"exhausted"``).

The returned plan is the best goal-reaching route known: the best path a simulation walked to
a goal, or a shorter one through the explored graph (simulations reach states by whatever
route their descent took, and the expanded nodes with their transpositions often hold a
shorter route to the same goal). Once a goal is found, later simulations look only for a
shorter route: they stop one step short of the best route's length, and a node at that depth
is a dead end. When no simulation reached the goal, the plan is the fewest-step route to the
known state rated highest by ``discount ** steps * estimate``; where the value is flat (the
root rated highest), it is the single most visited first action, so the agent moves one step
and searches on from there with the tree it has, instead of walking a long, aimless path.
"""

from __future__ import annotations

import random
from collections import deque

from planner.protocols import RolloutPolicy, SelectionPolicy
from planner.search.expand import Expander, path_return
from planner.search.policies import uct
from planner.search.problem import Budget, SearchProblem
from planner.search.result import SearchResult
from planner.search.tree import Edge, Links, Node, SearchTree, route_to
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
        found = _descend(root, depth_limit, select, rng, shorten=best is not None)
        if found is None:
            stopped_by = "exhausted"  # nothing left to expand within the depth limit
            break
        path = found
        leaf = path[-1].child if path else root
        value = _evaluate(ex, leaf, path, depth_limit, rollout, rng)
        _backup(root, path, value, problem.discount)
        done += 1
        if leaf.terminal and path:
            ret = path_return(path, problem.discount)
            if best is None or ret > best_return:
                best, best_return = path, ret
        if best is not None and (leaf.terminal or done % SHORTCUT_EVERY == 0):
            best, best_return = _shorter(root, best, best_return, problem.discount, budget.max_depth)

    if best is not None:
        best, best_return = _shorter(root, best, best_return, problem.discount, budget.max_depth)
        plan = best
    else:
        plan = _toward_best_estimate(root, budget.max_depth, problem.discount) or _most_visited_path(root, 1)
    return ex.result(plan, simulations=done, stopped_by=stopped_by)


SHORTCUT_EVERY = 16
"""Simulations between searches of the explored graph for a shorter route to a goal (also
run after each simulation that reaches a goal, and once at the end)."""


def _shorter(root: Node, best: list[Edge], best_return: float, discount: float,
             max_depth: int) -> tuple[list[Edge], float]:
    """``best`` and its return, or the explored graph's fewest-step route to a goal when that
    route returns more."""
    came, _ = _breadth_first(root, max_depth)
    goal = next((state for state, (_, edge) in came.items() if edge.child.terminal), None)
    if goal is None:
        return best, best_return
    route = route_to(goal, came)
    ret = path_return(route, discount)
    return (route, ret) if ret > best_return + 1e-12 else (best, best_return)


def _toward_best_estimate(root: Node, max_depth: int, discount: float) -> list[Edge]:
    """The fewest-step route to the known state whose estimate, discounted by the steps to it
    (``discount ** steps * estimate``), is highest (ties: the nearer one); empty when that is
    the root."""
    came, steps = _breadth_first(root, max_depth)
    best, best_score = root.state, root.estimate
    for state, (_, edge) in came.items():  # breadth-first order: a nearer state keeps a tie
        score = discount ** steps[state] * edge.child.estimate
        if score > best_score:
            best, best_score = state, score
    return route_to(best, came)


def _breadth_first(root: Node, max_depth: int) -> tuple[Links, dict[State, int]]:
    """Breadth-first over expanded edges from the root, at most ``max_depth`` steps, not
    beyond a goal: how each state was first reached (in the order reached) and its steps from
    the root."""
    came: Links = {}
    depth = {root.state: 0}
    queue = deque([root])
    while queue:
        node = queue.popleft()
        if depth[node.state] >= max_depth:
            continue
        for edge in node.edges:
            child = edge.child
            if child.state in depth:
                continue
            came[child.state] = (node, edge)
            depth[child.state] = depth[node.state] + 1
            if not child.terminal:
                queue.append(child)
    return came, depth


MAX_BACKTRACKS = 64
"""Most dead ends one descent steps back from before it ends where it stands."""


def _descend(root: Node, depth_limit: int, select: SelectionPolicy, rng: random.Random, *,
             shorten: bool = False) -> list[Edge] | None:
    """Follow ``select`` from the root through expanded nodes, never revisiting a state, to a
    node a simulation can use: one not expanded yet, a goal, or one at ``depth_limit``.

    Where every successor of a node lies on the path (or was found such a dead end already
    in this descent), the descent steps back and selects again at the parent: where actions
    undo each other (walking a line, pick-up and put-down) most descents would otherwise end
    in such a dead end without expanding anything. Returns ``None`` when no such node is left
    (the explored graph within ``depth_limit`` is exhausted)."""
    node = root
    path: list[Edge] = []
    on_path = {root}  # nodes (one per state) compare by identity: cheaper than hashing states
    dead: dict[Node, int] = {}  # node -> fewest steps from the root at which it was a dead end
    backtracks = 0
    while not node.terminal and (node.expanded or (shorten and len(path) >= depth_limit)):
        if len(path) >= depth_limit:
            if not shorten:
                break
            options: list[Edge] = []  # nothing below can give a shorter plan
        else:
            below = len(path) + 1
            options = [e for e in node.edges if e.child not in on_path and dead.get(e.child, below + 1) > below]
        if not options:
            if not path:
                return None
            if backtracks >= MAX_BACKTRACKS:
                return path  # a long search for a frontier: this simulation ends here
            backtracks += 1
            dead[node] = min(len(path), dead.get(node, len(path)))
            on_path.discard(node)
            path.pop()
            node = path[-1].child if path else root
            continue
        edge = select(node, options, rng)
        path.append(edge)
        on_path.add(edge.child)
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
