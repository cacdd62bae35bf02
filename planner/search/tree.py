"""Search-tree nodes and edges, the transposition table, and export to networkx.

Nodes are keyed by state: one node (and one set of statistics) per distinct imagined state,
however many action sequences reach it. Edges carry their own visit counts and returns, so
the structure is a graph that may contain cycles; searches keep their own paths acyclic.
Nodes and edges mutate while their search runs (plain classes with ``__slots__``); a later
search never changes them: it works on a re-rooted copy (:meth:`SearchTree.reroot`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import networkx as nx

from planner.io import atomic_write_text
from planner.types import Action, Prediction, State


class Edge:
    """An action taken at a node, with the model's prediction and its search statistics.

    Attributes:
        action: the action.
        prediction: what the world model predicted for it (always applicable here).
        child: the node of the predicted next state.
        reward: the step's reward, as the model predicted it (``prediction.reward``).
        estimate: the return expected before any visit: ``reward + discount * child.estimate``.
        prior: prior probability of choosing this edge, used by PUCT (sums to 1 per node).
        visits: simulations that went through this edge.
        value_sum: sum of discounted returns backed up through this edge.
    """

    __slots__ = ("action", "child", "estimate", "prediction", "prior", "reward", "value_sum", "visits")

    def __init__(self, action: Action, prediction: Prediction, child: Node, *, reward: float, estimate: float) -> None:
        self.action = action
        self.prediction = prediction
        self.child = child
        self.reward = reward
        self.estimate = estimate
        self.prior = 0.0
        self.visits = 0
        self.value_sum = 0.0

    @property
    def mean_value(self) -> float:
        """Mean backed-up return; before the first visit, :attr:`estimate`."""
        return self.value_sum / self.visits if self.visits else self.estimate


class Node:
    """One distinct imagined state.

    Attributes:
        state: the state.
        terminal: the state reaches the goal.
        estimate: the value policy's estimate of the state (0 when terminal: no reward follows).
        edges: applicable actions and their outcomes, in candidate order; empty until expanded.
        expanded: the world model has been asked about every candidate action here.
        visits, value_sum: MCTS statistics of the state.
    """

    __slots__ = ("edges", "estimate", "expanded", "state", "terminal", "value_sum", "visits")

    def __init__(self, state: State, *, terminal: bool, estimate: float) -> None:
        self.state = state
        self.terminal = terminal
        self.estimate = estimate
        self.edges: list[Edge] = []
        self.expanded = False
        self.visits = 0
        self.value_sum = 0.0

    @property
    def mean_value(self) -> float:
        """Mean backed-up return; before the first visit, :attr:`estimate`."""
        return self.value_sum / self.visits if self.visits else self.estimate


class SearchTree:
    """The transposition table of one search: every node by state, and the root."""

    def __init__(self, root: Node, nodes: dict[State, Node] | None = None) -> None:
        self.root = root
        self.nodes: dict[State, Node] = {root.state: root} if nodes is None else nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def get(self, state: State) -> Node | None:
        return self.nodes.get(state)

    def add(self, node: Node) -> Node:
        self.nodes[node.state] = node
        return node

    def reroot(self, state: State) -> SearchTree | None:
        """A copy of the part of this tree reachable from ``state``, rooted there.

        Returns ``None`` when ``state`` is not in the tree. This tree is left as it is; the copy
        keeps every statistic, which stays valid for the same model, goal and discount.
        """
        if state not in self.nodes:
            return None
        reachable = self._reachable(self.nodes[state])
        copies = {s: _copy_node(self.nodes[s]) for s in self.nodes if s in reachable}
        for s, copy in copies.items():
            copy.edges = [_copy_edge(e, copies[e.child.state]) for e in self.nodes[s].edges]
        return SearchTree(copies[state], copies)

    @staticmethod
    def _reachable(start: Node) -> set[State]:
        seen = {start.state}
        stack = [start]
        while stack:
            for edge in stack.pop().edges:
                if edge.child.state not in seen:
                    seen.add(edge.child.state)
                    stack.append(edge.child)
        return seen

    def depths(self) -> dict[State, int]:
        """Fewest actions from the root to each node it reaches (breadth-first)."""
        depth = {self.root.state: 0}
        queue = deque([self.root])
        while queue:
            node = queue.popleft()
            for edge in node.edges:
                if edge.child.state not in depth:
                    depth[edge.child.state] = depth[node.state] + 1
                    queue.append(edge.child)
        return depth

    # -- export ------------------------------------------------------------------------------
    def to_networkx(self) -> nx.DiGraph:
        """A directed graph: node ids are state indices, with string/number attributes only
        (so GraphML can hold them): ``state``, ``terminal``, ``visits``, ``value``, ``estimate``,
        ``depth`` (actions from the root; -1 when unreachable), ``root``; edges carry
        ``action``, ``visits``, ``value``, ``reward``, ``prior``, ``confidence``."""
        graph = nx.DiGraph()
        ids = {state: i for i, state in enumerate(self.nodes)}
        depths = self.depths()
        for state, node in self.nodes.items():
            graph.add_node(
                ids[state],
                state=state.canonical(),
                terminal=node.terminal,
                visits=node.visits,
                value=float(node.mean_value),
                estimate=float(node.estimate),
                depth=depths.get(state, -1),
                root=node is self.root,
            )
        for state, node in self.nodes.items():
            for edge in node.edges:
                if edge.child.state not in ids:
                    continue
                graph.add_edge(
                    ids[state],
                    ids[edge.child.state],
                    action=edge.action.name,
                    visits=edge.visits,
                    value=float(edge.mean_value),
                    reward=float(edge.reward),
                    prior=float(edge.prior),
                    confidence=float(edge.prediction.confidence),
                )
        return graph

    def write_graphml(self, path: str | Path) -> None:
        """Write the tree as GraphML (atomically)."""
        text = "\n".join(nx.generate_graphml(self.to_networkx()))
        atomic_write_text(path, text + "\n")

    def write_dot(self, path: str | Path) -> None:
        """Write the tree in Graphviz DOT (atomically); labels are actions and visit counts."""
        graph = self.to_networkx()
        lines = ["digraph search {", "  node [shape=box, fontsize=9];"]
        for n, data in graph.nodes(data=True):
            label = f"{data['state']}\\nN={data['visits']} V={data['value']:.3f}"
            style = ", style=bold" if data["terminal"] else ""
            lines.append(f'  {n} [label="{_dot_escape(label)}"{style}];')
        for u, v, data in graph.edges(data=True):
            label = f"{data['action']} N={data['visits']}"
            lines.append(f'  {u} -> {v} [label="{_dot_escape(label)}"];')
        lines.append("}")
        atomic_write_text(path, "\n".join(lines) + "\n")


Links = dict[State, "tuple[Node, Edge]"]
"""How a search first reached each state: state → (parent node, edge from it); the root has
no entry."""


def route_to(state: State, came_from: Links) -> list[Edge]:
    """The edges by which a search first reached ``state`` (along ``came_from``), from the root."""
    path: list[Edge] = []
    while state in came_from:
        parent, edge = came_from[state]
        path.append(edge)
        state = parent.state
    return path[::-1]


def _copy_node(node: Node) -> Node:
    copy = Node(node.state, terminal=node.terminal, estimate=node.estimate)
    copy.expanded = node.expanded
    copy.visits = node.visits
    copy.value_sum = node.value_sum
    return copy


def _copy_edge(edge: Edge, child: Node) -> Edge:
    copy = Edge(edge.action, edge.prediction, child, reward=edge.reward, estimate=edge.estimate)
    copy.prior = edge.prior
    copy.visits = edge.visits
    copy.value_sum = edge.value_sum
    return copy


def _dot_escape(text: str) -> str:
    return text.replace('"', '\\"')
