"""The frozen result every search returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from planner.search.tree import SearchTree
from planner.types import Plan


@dataclass(frozen=True, slots=True)
class SearchStats:
    """Figures of one search call.

    Attributes:
        nodes: distinct states in the tree after the search.
        expansions: nodes whose candidate actions were sent to the model in this call.
        simulations: MCTS simulations (0 for beam search).
        model_calls: predictions requested from the model (cache hits included).
        cache_hits: predictions answered by a transition cache.
        prompt_tokens, generated_tokens: language-model tokens (0 for exact models).
        model_seconds: wall-clock seconds inside the model.
        search_seconds: wall-clock seconds of the search outside the model.
        wall_seconds: total wall-clock seconds.
        stopped_by: which budget ended the search: ``"goal"``, ``"expansions"``,
            ``"simulations"``, ``"depth"``, ``"time"`` or ``"exhausted"``.
    """

    nodes: int
    expansions: int
    simulations: int
    model_calls: int
    cache_hits: int
    prompt_tokens: int
    generated_tokens: int
    model_seconds: float
    search_seconds: float
    wall_seconds: float
    stopped_by: str

    @property
    def nodes_per_second(self) -> float:
        return self.nodes / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def outside_model_fraction(self) -> float:
        """Share of wall time spent outside the model (search bookkeeping)."""
        return self.search_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The best plan found, its statistics, and the tree.

    ``plan.reaches_goal`` says whether the imagined plan ends at a goal state; when no goal was
    reached within the budget, ``plan`` leads to the most promising state found. ``plan.value``
    is the plan's return: its discounted rewards plus the discounted estimate of its last state.
    Later searches handed ``tree`` work on a copy of it, so a result never changes.
    """

    plan: Plan
    stats: SearchStats
    tree: SearchTree

    def to_networkx(self) -> nx.DiGraph:
        return self.tree.to_networkx()

    def write_tree(self, path: str | Path) -> None:
        """Write the tree as GraphML (``.graphml``) or DOT (``.dot``/``.gv``)."""
        suffix = Path(path).suffix.lower()
        if suffix in (".dot", ".gv"):
            self.tree.write_dot(path)
        else:
            self.tree.write_graphml(path)
