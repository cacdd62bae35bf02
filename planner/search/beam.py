"""Beam search over imagined states.

Layer by layer from the start state: every node of the beam is expanded (all candidate
actions judged by the world model at once), children already seen in this search are
dropped, and the ``beam_width`` children with the best value-policy estimate form the next
layer. The first layer that contains a goal state ends the search, so with a wide enough beam
the plan is a shortest one.
"""

from __future__ import annotations

import random

from planner.search.expand import Expander
from planner.search.policies import ActionsFn, ValuePolicy, goal_fraction_value
from planner.search.result import SearchResult
from planner.search.tree import Edge, Node, SearchTree
from planner.types import Goal, State
from planner.world.base import WorldModel


def beam_search(
    state: State,
    *,
    model: WorldModel,
    goal: Goal,
    actions: ActionsFn,
    beam_width: int = 16,
    max_depth: int = 60,
    max_expansions: int = 20_000,
    time_limit_s: float | None = None,
    value: ValuePolicy = goal_fraction_value,
    discount: float = 0.95,
    seed: int = 0,
    tree: SearchTree | None = None,
) -> SearchResult:
    """Search for a shortest imagined plan from ``state`` to ``goal``.

    Args:
        state: the start state.
        model: the world model that predicts every transition.
        goal: the goal imagined states are tested against.
        actions: candidate actions at a state (e.g. ``env.candidate_actions``).
        beam_width: nodes kept per layer.
        max_depth: longest plan considered (actions).
        max_expansions: most nodes expanded (each costs one ``predict_many``).
        time_limit_s: wall-clock limit in seconds (``None``: none).
        value: value policy ranking the children of a layer.
        discount: per-step discount used for the plan's value.
        seed: breaks ties between equally valued children.
        tree: a tree from an earlier search to reuse (re-rooted at ``state`` if it holds it).

    Returns:
        A :class:`SearchResult`; ``plan.reaches_goal`` is False when the budget ran out first,
        and then the plan leads to the best-valued state seen.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}")
    rng = random.Random(seed)
    ex = Expander(model=model, goal=goal, actions=actions, value=value, tree=tree,
                  root_state=state)
    root = ex.root
    if root.terminal:
        return ex.result([], value=1.0, simulations=0, stopped_by="goal")

    parents: dict[State, tuple[Node, Edge]] = {}
    seen = {root.state}
    layer = [root]
    best: Node = root

    def path_to(node: Node) -> list[Edge]:
        path: list[Edge] = []
        while node.state in parents:
            parent, edge = parents[node.state]
            path.append(edge)
            node = parent
        return path[::-1]

    stopped_by = "depth"
    for _ in range(max_depth):
        children: list[Node] = []
        budget_hit = None
        for node in layer:
            if ex.expansions >= max_expansions:
                budget_hit = "expansions"
                break
            if time_limit_s is not None and ex.elapsed() >= time_limit_s:
                budget_hit = "time"
                break
            for edge in ex.expand(node):
                child = edge.child
                if child.state in seen:
                    continue
                seen.add(child.state)
                parents[child.state] = (node, edge)
                if child.terminal:
                    path = path_to(child)
                    return ex.result(path, value=discount ** (len(path) - 1), simulations=0,
                                     stopped_by="goal")
                children.append(child)
        if budget_hit is not None:
            stopped_by = budget_hit
            break
        if not children:
            stopped_by = "exhausted"
            break
        # Best estimate first; a seeded shuffle before the stable sort breaks ties.
        rng.shuffle(children)
        children.sort(key=lambda n: n.estimate, reverse=True)
        layer = children[:beam_width]
        if layer[0].estimate > best.estimate:
            best = layer[0]
    path = path_to(best)
    return ex.result(path, value=discount ** len(path) * best.estimate, simulations=0,
                     stopped_by=stopped_by)
