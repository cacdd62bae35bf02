"""Search-tree nodes and edges, the transposition table, and export to networkx.

Nodes are keyed by state: one node (and one set of statistics) per distinct imagined state,
however many action sequences reach it. Edges carry their own visit counts and returns, so
the structure is a graph that may contain cycles; searches keep their own paths acyclic.
Nodes and edges mutate during search (plain classes with ``__slots__``); results handed to
users are frozen (:mod:`planner.search.result`).
"""

from __future__ import annotations

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
        reward: the step's reward (1.0 on reaching the goal).
        prior: prior probability of choosing this edge, used by PUCT (sums to 1 per node).
        visits: simulations that went through this edge.
        value_sum: sum of discounted returns backed up through this edge.
    """

    __slots__ = ("action", "child", "prediction", "prior", "reward", "value_sum", "visits")

    def __init__(self, action: Action, prediction: Prediction, child: Node, reward: float) -> None:
        self.action = action
        self.prediction = prediction
        self.child = child
        self.reward = reward
        self.prior = 0.0
        self.visits = 0
        self.value_sum = 0.0

    @property
    def mean_value(self) -> float:
        """Mean backed-up return in [0, 1]; 0.0 before the first visit."""
        return self.value_sum / self.visits if self.visits else 0.0


class Node:
    """One distinct imagined state.

    Attributes:
        state: the state.
        terminal: the state reaches the goal.
        estimate: the value policy's estimate of the state, in [0, 1] (0 when terminal).
        depth: the smallest depth at which the search reached it (root: 0).
        edges: applicable actions and their outcomes, in candidate order; empty until expanded.
        expanded: the world model has been asked about every candidate action here.
        rejected: candidate actions the model predicted not applicable (or no-ops).
        visits, value_sum: MCTS statistics of the state.
        parent: (node, edge) by which the search first reached it, for path reconstruction.
    """

    __slots__ = (
        "depth", "edges", "estimate", "expanded", "parent", "rejected", "state", "terminal",
        "value_sum", "visits",
    )

    def __init__(self, state: State, *, terminal: bool, estimate: float, depth: int) -> None:
        self.state = state
        self.terminal = terminal
        self.estimate = estimate
        self.depth = depth
        self.edges: list[Edge] = []
        self.expanded = False
        self.rejected = 0
        self.visits = 0
        self.value_sum = 0.0
        self.parent: tuple[Node, Edge] | None = None

    @property
    def mean_value(self) -> float:
        return self.value_sum / self.visits if self.visits else self.estimate


class SearchTree:
    """The transposition table of one search (or several, when reused after real steps)."""

    def __init__(self, root: Node) -> None:
        self.root = root
        self.nodes: dict[State, Node] = {root.state: root}

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def get(self, state: State) -> Node | None:
        return self.nodes.get(state)

    def add(self, node: Node) -> Node:
        self.nodes[node.state] = node
        return node

    def reroot(self, state: State) -> bool:
        """Make the node of ``state`` the root and drop nodes no longer reachable from it.

        Returns ``False`` (tree unchanged) when ``state`` is not in the tree. Statistics of the
        kept nodes stay: they remain valid for the same model and goal.
        """
        node = self.nodes.get(state)
        if node is None:
            return False
        reachable: dict[State, Node] = {}
        stack = [node]
        while stack:
            current = stack.pop()
            if current.state in reachable:
                continue
            reachable[current.state] = current
            stack.extend(e.child for e in current.edges)
        node.parent = None
        self.root = node
        self.nodes = reachable
        return True

    # -- export ------------------------------------------------------------------------------
    def to_networkx(self) -> nx.DiGraph:
        """A directed graph: node ids are state indices, with string/number attributes only
        (so GraphML can hold them): ``state``, ``terminal``, ``visits``, ``value``, ``depth``;
        edges carry ``action``, ``visits``, ``value``, ``reward``, ``prior``, ``confidence``."""
        graph = nx.DiGraph()
        ids = {state: i for i, state in enumerate(self.nodes)}
        for state, node in self.nodes.items():
            graph.add_node(
                ids[state],
                state=state.canonical(),
                terminal=node.terminal,
                visits=node.visits,
                value=float(node.mean_value),
                estimate=float(node.estimate),
                depth=node.depth,
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


def _dot_escape(text: str) -> str:
    return text.replace('"', '\\"')
