"""Beam search over imagined states.

Layer by layer from the start state: every node of the beam is expanded (all candidate
actions judged by the world model at once), children already seen in this search are
dropped, and the ``budget.beam_width`` children with the best value-policy estimate form the
next layer. The first layer that contains a goal state ends the search, so with a wide enough
beam the plan is a shortest one.
"""

from __future__ import annotations

import random

from planner.search.expand import Expander
from planner.search.problem import Budget, SearchProblem
from planner.search.result import SearchResult
from planner.search.tree import Links, Node, SearchTree, route_to
from planner.types import State


def beam_search(
    problem: SearchProblem,
    state: State,
    budget: Budget = Budget(),
    *,
    tree: SearchTree | None = None,
    seed: int = 0,
) -> SearchResult:
    """Search for a shortest imagined plan from ``state`` to ``problem.goal``.

    Args:
        problem: the model, goal, candidate actions, value policy and discount.
        state: the start state.
        budget: ``beam_width``, ``max_depth``, ``max_expansions`` and ``time_limit_s`` apply.
        tree: a tree from an earlier search of the same problem to reuse (its part reachable
            from ``state`` is copied; the earlier tree is not changed).
        seed: breaks ties between equally valued children; equal seeds give equal searches.

    Returns:
        A :class:`SearchResult`; ``plan.reaches_goal`` is False when the budget ran out first,
        and then the plan leads to the best-valued state seen.
    """
    rng = random.Random(seed)
    ex = Expander(problem, state, tree=tree)
    root = ex.root
    if root.terminal:
        return ex.result([], simulations=0, stopped_by="goal")

    came_from: Links = {}  # child state -> (parent, edge) of its first reach
    layer = [root]
    best = root
    stopped_by = "depth"
    for _ in range(budget.max_depth):
        children: list[Node] = []
        hit = None
        for node in layer:
            hit = ex.out_of(budget)
            if hit is not None:
                break
            for edge in ex.expand(node):
                child = edge.child
                if child is root or child.state in came_from:
                    continue
                came_from[child.state] = (node, edge)
                if child.terminal:
                    return ex.result(route_to(child.state, came_from), simulations=0, stopped_by="goal")
                children.append(child)
        if hit is not None:
            stopped_by = hit
            break
        if not children:
            stopped_by = "exhausted"
            break
        # Best estimate first; a seeded shuffle before the stable sort breaks ties.
        rng.shuffle(children)
        children.sort(key=lambda n: n.estimate, reverse=True)
        layer = _keep(children, budget.beam_width)
        if layer[0].estimate > best.estimate:
            best = layer[0]
    return ex.result(route_to(best.state, came_from), simulations=0, stopped_by=stopped_by)


TIE_WIDTH = 4
"""A layer keeps children tied with the last one kept, up to this many times the beam width:
where the value cannot tell them apart (a flat value such as the goal fraction before any goal
fact holds), cutting between them would be arbitrary and loses the short routes."""


def _keep(children: list[Node], width: int) -> list[Node]:
    """The best ``width`` of ``children`` (sorted best first), and those tied with the last of
    them, at most ``TIE_WIDTH * width`` in all."""
    if len(children) <= width:
        return children
    cut = children[width - 1].estimate
    end = width
    while end < min(len(children), TIE_WIDTH * width) and children[end].estimate == cut:
        end += 1
    return children[:end]
