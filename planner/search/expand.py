"""What beam search and MCTS share: node creation, expansion through the model, budgets, results."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from planner.errors import ConfigError
from planner.search.policies import softmax_priors
from planner.search.problem import Budget, SearchProblem
from planner.search.result import SearchResult, SearchStats
from planner.search.tree import Edge, Node, SearchTree
from planner.types import Plan, State


class Expander:
    """The tree of one search: creates nodes (one per state) and expands them by asking the model
    about every candidate action at once (``predict_many``, so siblings are predicted together).

    Args:
        problem: the problem searched.
        state: the start state.
        tree: a tree from an earlier search of the same problem; its part reachable from
            ``state`` is copied and searched on (the earlier tree is not changed).
    """

    def __init__(self, problem: SearchProblem, state: State, *, tree: SearchTree | None = None) -> None:
        if not isinstance(state, State):
            raise ConfigError(f"the start state must be a State, got {state!r:.80}")
        self.problem = problem
        self.expansions = 0
        self.started = time.perf_counter()
        self.stats_before = problem.model.stats.snapshot()
        reused = tree.reroot(state) if tree is not None else None
        self.tree = reused if reused is not None else SearchTree(self._new_node(state, done=False))

    @property
    def root(self) -> Node:
        return self.tree.root

    def _new_node(self, state: State, *, done: bool) -> Node:
        # A symbolic state is judged by the goal itself; the model's ``done`` decides only for
        # states the goal cannot test (free text).
        goal = self.problem.goal
        terminal = goal.satisfied(state) if state.is_symbolic else (done or goal.satisfied(state))
        if terminal:
            return Node(state, terminal=True, estimate=0.0)
        estimate = float(self.problem.value(state, goal))
        if not math.isfinite(estimate):
            raise ConfigError(f"the value policy returned {estimate!r} for state {state.canonical()!r}")
        return Node(state, terminal=False, estimate=estimate)

    def _node_for(self, state: State, *, done: bool) -> Node:
        node = self.tree.get(state)
        return node if node is not None else self.tree.add(self._new_node(state, done=done))

    def expand(self, node: Node) -> list[Edge]:
        """Ask the model about every candidate action at ``node`` (once per node); the edges are
        the actions predicted applicable that change the state, with priors set."""
        if node.expanded:
            return node.edges
        candidates = self.problem.actions(node.state)
        predictions = self.problem.model.predict_many(node.state, candidates)
        self.expansions += 1
        for action, pred in zip(candidates, predictions):
            if pred.applicable and pred.next_state != node.state:
                child = self._node_for(pred.next_state, done=pred.done)
                reward = float(self.problem.reward(node.state, pred, self.problem.goal))
                if not math.isfinite(reward):
                    raise ConfigError(
                        f"the reward policy returned {reward!r} for {action} at {node.state.canonical()!r}")
                estimate = reward + self.problem.discount * child.estimate
                node.edges.append(Edge(action, pred, child, reward=reward, estimate=estimate))
        softmax_priors(node.edges)
        node.expanded = True
        return node.edges

    def elapsed(self) -> float:
        """Wall-clock seconds since the search started."""
        return time.perf_counter() - self.started

    def out_of(self, budget: Budget) -> str | None:
        """The budget limit already reached (``"expansions"`` or ``"time"``), if any."""
        if self.expansions >= budget.max_expansions:
            return "expansions"
        if budget.time_limit_s is not None and self.elapsed() >= budget.time_limit_s:
            return "time"
        return None

    def result(self, path: Sequence[Edge], *, simulations: int, stopped_by: str) -> SearchResult:
        """Package ``path`` (edges from the root) as a frozen :class:`SearchResult`.

        The plan's value is its return: the discounted rewards along ``path`` plus the
        discounted estimate of the state it ends in (0 at the goal).
        """
        wall = self.elapsed()
        used = self.problem.model.stats.since(self.stats_before)
        last = path[-1].child if path else self.root
        plan = Plan(
            actions=tuple(e.action for e in path),
            states=(self.root.state, *(e.child.state for e in path)),
            value=path_return(path, self.problem.discount, tail=last.estimate),
            reaches_goal=last.terminal,
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


def path_return(path: Sequence[Edge], discount: float, *, tail: float = 0.0) -> float:
    """``r0 + d*r1 + ... + d**(k-1)*r(k-1) + d**k * tail`` for the rewards ``r`` of ``path``."""
    total = tail
    for edge in reversed(path):
        total = edge.reward + discount * total
    return total
