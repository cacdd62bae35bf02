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
from collections import deque

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

    layers = _Layers(ex.tree)
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
        path = _descend(root, depth_limit, select, rng, layers)
        leaf = path[-1].child if path else root
        value = _evaluate(ex, leaf, path, depth_limit, rollout, rng, layers)
        _backup(root, path, value, problem.discount)
        done += 1
        layers.close(root, path, depth_limit)
        if leaf.terminal and path:
            ret = path_return(path, problem.discount)
            if best is None or ret > best_return:
                best, best_return = path, ret
        if root.state in layers.closed:
            stopped_by = "exhausted"  # every forward path is explored to the goal, a dead end or the limit
            break

    plan = best if best is not None else _most_visited_path(root, budget.max_depth, layers)
    return ex.result(plan, simulations=done, stopped_by=stopped_by)


class _Layers:
    """The fewest actions from the root to every node of the tree, kept exact as nodes are expanded.

    An edge is *forward* when it leads one layer deeper (``depth(child) == depth(node) + 1``):
    it lies on a shortest known path from the root. Simulations follow forward edges only. In a
    graph of states (transpositions) any other edge reaches its state by a longer route than one
    already known, so a path through it is dominated by the shorter one; following such edges
    is what lets a simulation run around the explored graph and come back with long, detouring
    plans. Forward edges form an acyclic graph, so no path repeats a state.
    """

    def __init__(self, tree: SearchTree) -> None:
        self.depth: dict[State, int] = tree.depths()
        self.closed: set[State] = set()

    def of(self, node: Node) -> int:
        """Fewest actions from the root to ``node`` (a node the root reaches)."""
        return self.depth[node.state]

    def forward(self, node: Node) -> list[Edge]:
        """The edges of ``node`` that lead one layer deeper."""
        below = self.depth[node.state] + 1
        return [e for e in node.edges if self.depth.get(e.child.state) == below]

    def open_forward(self, node: Node) -> list[Edge]:
        """The forward edges of ``node`` into nodes not closed: those a simulation may follow."""
        return [e for e in self.forward(node) if e.child.state not in self.closed]

    def close(self, root: Node, path: list[Edge], depth_limit: int) -> None:
        """Close what one simulation finished exploring, from its leaf upwards.

        A node is *closed* when no simulation through it can find anything new: it is a goal,
        it lies at the depth limit (so no shorter plan passes through it), or it is expanded and
        all its forward edges lead into closed nodes (none at a dead end). Simulations skip
        closed nodes; with a flat value (the goal fraction before any goal fact holds) they
        would otherwise keep spreading visits evenly over finished subtrees instead of pushing
        the frontier of the explored graph deeper.
        """
        nodes = [root, *(e.child for e in path)]
        leaf = nodes[-1]
        if not (leaf.terminal or len(path) >= depth_limit or (leaf.expanded and not self.open_forward(leaf))):
            return
        self.closed.add(leaf.state)
        for node in reversed(nodes[:-1]):
            if self.open_forward(node):
                return
            self.closed.add(node.state)

    def expanded(self, node: Node) -> None:
        """Take the new edges of ``node`` into account: children get depths, and a shorter
        route found to a known node shortens the depths below it (breadth-first relaxation)."""
        queue = deque([node])
        while queue:
            parent = queue.popleft()
            below = self.depth[parent.state] + 1
            for edge in parent.edges:
                child = edge.child.state
                if below < self.depth.get(child, below + 1):
                    # A shorter route to a known node changes its layer (and those below it),
                    # so what closed it may no longer hold: reopen it. The route runs through
                    # ``node``, which the simulation reached through open nodes, so the reopened
                    # nodes are reachable again along forward edges.
                    self.closed.discard(child)
                    self.depth[child] = below
                    queue.append(edge.child)


def _descend(root: Node, depth_limit: int, select: SelectionPolicy, rng: random.Random, layers: _Layers) -> list[Edge]:
    """Follow ``select`` from the root through expanded nodes along forward edges."""
    node = root
    path: list[Edge] = []
    while node.expanded and not node.terminal and len(path) < depth_limit:
        options = layers.open_forward(node)
        if not options:
            break
        edge = select(node, options, rng)
        path.append(edge)
        node = edge.child
    return path


def _evaluate(
    ex: Expander, leaf: Node, path: list[Edge], depth_limit: int, rollout: RolloutPolicy | None,
    rng: random.Random, layers: _Layers,
) -> float:
    """The value of the simulation's leaf: expanded here if new, then rolled out or estimated."""
    if leaf.terminal:
        return 0.0
    if len(path) >= depth_limit:
        return leaf.estimate
    if not leaf.expanded:
        ex.expand(leaf)
        layers.expanded(leaf)
    if not layers.forward(leaf):
        return 0.0  # dead end: every successor is reached by a shorter route (or none applies)
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


def _most_visited_path(root: Node, max_depth: int, layers: _Layers) -> list[Edge]:
    """From the root, the most visited forward edge (then the best mean) at each node."""
    path: list[Edge] = []
    node = root
    while node.edges and len(path) < max_depth:
        options = [e for e in layers.forward(node) if e.visits > 0]
        if not options:
            break
        edge = max(options, key=lambda e: (e.visits, e.mean_value))
        path.append(edge)
        node = edge.child
    return path
