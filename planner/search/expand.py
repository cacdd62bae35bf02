"""What beam search and MCTS share: node creation, expansion through the model, timing."""

from __future__ import annotations

import time
from collections.abc import Sequence

from planner.search.policies import ActionsFn, ValuePolicy
from planner.search.result import SearchResult, SearchStats
from planner.search.tree import Edge, Node, SearchTree
from planner.types import Action, Goal, Plan, Prediction, State
from planner.world.base import WorldModel

GOAL_REWARD = 1.0
"""Search rewards are normalised: 1.0 for the step that reaches the goal, 0.0 otherwise."""


class Expander:
    """Creates nodes (one per state) and expands them by asking the model about every
    candidate action at once (``predict_many``, so siblings are predicted together)."""

    def __init__(
        self,
        *,
        model: WorldModel,
        goal: Goal,
        actions: ActionsFn,
        value: ValuePolicy,
        tree: SearchTree | None,
        root_state: State,
    ) -> None:
        self.model = model
        self.goal = goal
        self.actions = actions
        self.value = value
        self.expansions = 0
        self.started = time.perf_counter()
        self.stats_before = model.stats.snapshot()
        if tree is not None and tree.reroot(root_state):
            self.tree = tree
        else:
            self.tree = SearchTree(self._new_node(root_state, depth=0, done=False))
        self.tree.root.depth = 0

    @property
    def root(self) -> Node:
        return self.tree.root

    def _new_node(self, state: State, *, depth: int, done: bool) -> Node:
        # A symbolic state is judged by the goal itself; the model's ``done`` decides only for
        # states the goal cannot test (free text).
        terminal = self.goal.satisfied(state) if state.is_symbolic else (done or self.goal.satisfied(state))
        estimate = 0.0 if terminal else min(1.0, max(0.0, float(self.value(state, self.goal))))
        return Node(state, terminal=terminal, estimate=estimate, depth=depth)

    def node_for(self, state: State, *, depth: int, done: bool = False) -> Node:
        node = self.tree.get(state)
        if node is None:
            node = self.tree.add(self._new_node(state, depth=depth, done=done))
        else:
            node.depth = min(node.depth, depth)
        return node

    def expand(self, node: Node) -> list[Edge]:
        """Ask the model about every candidate action at ``node`` (once per node)."""
        if node.expanded:
            return node.edges
        candidates: Sequence[Action] = self.actions(node.state)
        predictions: list[Prediction] = self.model.predict_many(node.state, candidates)
        self.expansions += 1
        for action, pred in zip(candidates, predictions):
            if not pred.applicable or pred.next_state == node.state:
                node.rejected += 1
                continue
            child = self.node_for(pred.next_state, depth=node.depth + 1, done=pred.done)
            reward = GOAL_REWARD if child.terminal else 0.0
            node.edges.append(Edge(action, pred, child, reward))
        node.expanded = True
        return node.edges

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def result(
        self, path: Sequence[Edge], *, value: float, simulations: int, stopped_by: str
    ) -> SearchResult:
        """Package ``path`` (edges from the root) as a frozen :class:`SearchResult`."""
        wall = self.elapsed()
        used = self.model.stats.since(self.stats_before)
        states = [self.root.state] + [e.child.state for e in path]
        plan = Plan(
            actions=tuple(e.action for e in path),
            states=tuple(states),
            value=value,
            reaches_goal=(bool(path) and path[-1].child.terminal) or self.root.terminal,
        )
        stats = SearchStats(
            nodes=len(self.tree),
            expansions=self.expansions,
            simulations=simulations,
            model_calls=used.predictions,
            cache_hits=used.cache_hits,
            prompt_tokens=used.prompt_tokens,
            generated_tokens=used.generated_tokens,
            model_seconds=used.seconds,
            search_seconds=max(0.0, wall - used.seconds),
            wall_seconds=wall,
            stopped_by=stopped_by,
        )
        return SearchResult(plan=plan, stats=stats, tree=self.tree)
