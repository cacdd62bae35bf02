"""What the episode page shows: frozen records read from the log and the tree, then rendered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.errors import ConfigError

CHILDREN_SHOWN = 50
"""Children of a tree node rendered at a time (the most visited first); a button shows more."""


class ViewError(ConfigError):
    """An episode log or a search tree the viewer cannot show: a missing file, a record that is
    not what the agent writes (the message names the file and line), no episode, a tree file
    that is not GraphML or not a search tree."""


# -- what the page shows (read from the files first, then rendered) -----------------------------
@dataclass(frozen=True, slots=True)
class Verification:
    """A ``verify`` record: the model asked again about a planned action before executing it.

    Attributes:
        index: the step number the action would have had.
        action: the planned action.
        confidence: the model's confidence in its prediction (0..1).
        threshold: the least confidence required (``None`` when not recorded).
        as_imagined: the prediction matched the imagined next state (``None``: not recorded).
        allowed: the action was executed (``False``: refused and planned around).
    """

    index: int
    action: str
    confidence: float | None
    threshold: float | None
    as_imagined: bool | None
    allowed: bool


@dataclass(frozen=True, slots=True)
class RealStep:
    """A ``step`` record: one real step and the state the model imagined for it.

    States are kept as the log writes them (:meth:`planner.types.State.canonical`).
    ``reason`` is the environment's explanation of a step that did not apply, as text; ``doubted``:
    the step was planned although the model refused it (``agent.doubt``).
    """

    index: int
    action: str
    before: str
    imagined: str
    real: str
    applicable: bool
    reward: float
    terminated: bool
    truncated: bool
    diverged: bool
    probe: bool
    observation: str | None
    reason: str | None
    doubted: bool = False


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One line of a plan: a planned action (``position`` in the plan, from 0) or a probe
    (``position is None``), with what became of it: the real ``step`` (``None``: not executed),
    its ``verification`` when it had one, and ``unfinished`` for a step that was started but
    has no result in the log."""

    position: int | None
    action: str
    step: RealStep | None
    verification: Verification | None
    imagined: str | None
    unfinished: bool = False


@dataclass(frozen=True, slots=True)
class PlanSegment:
    """One search and what was executed of its plan until the next search.

    Attributes:
        number: 1 for the first search; 0 for steps logged before any ``plan`` record.
        actions: the planned actions.
        replan: the search was caused by a divergence or a refused action.
        reaches_goal: the imagined plan ends at a goal state (``None``: not recorded).
        value: the plan's imagined return.
        stats: the search's figures as recorded (nodes, simulations, model calls, …).
        rows: the plan's actions and probes, in order, with their real steps.
        resumed: steps replayed when an interrupted episode was continued just before this
            search (``None``: not a resumption).
        doubting: a search through the refusals the model doubts (``agent.doubt``).
        followed: its plan became the episode's (``False``: a search through doubts that found
            no plan reaching the goal).
    """

    number: int
    actions: tuple[str, ...]
    replan: bool
    reaches_goal: bool | None
    value: float | None
    stats: tuple[tuple[str, Any], ...]
    rows: tuple[PlanRow, ...]
    resumed: int | None = None
    doubting: bool = False
    followed: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    """The ``end`` record: ``solved``, ``stopped_by`` and the episode's counts (name → value,
    in the log's order), and the error that ended it if any."""

    solved: bool
    stopped_by: str
    counts: tuple[tuple[str, Any], ...]
    error: str | None


@dataclass(frozen=True, slots=True)
class Episode:
    """One episode of a log, as the page shows it.

    Attributes:
        id: the episode id.
        goal: the goal, as text.
        start: the start state.
        seed: the reset seed (``None``: not recorded).
        problem: what the environment said about the problem at reset (name → text), without
            its observation.
        observation: the environment's first text observation, if any.
        settings: a few configuration values worth showing (name → text).
        segments: the searches, in order, with their steps.
        errors: errors the environment raised (``error`` records).
        outcome: the ``end`` record (``None``: the episode has none, it was cut off).
        source: the log file's name.
    """

    id: str
    goal: str
    start: str
    seed: int | None
    problem: tuple[tuple[str, str], ...]
    observation: str | None
    settings: tuple[tuple[str, str], ...]
    segments: tuple[PlanSegment, ...]
    errors: tuple[str, ...]
    outcome: Outcome | None
    source: str

    @property
    def steps(self) -> tuple[RealStep, ...]:
        """Every real step, in order."""
        return tuple(r.step for s in self.segments for r in s.rows if r.step is not None)

    def states(self) -> set[str]:
        """Every real state of the episode (the start included)."""
        return {self.start} | {s.real for s in self.steps} | {s.before for s in self.steps}


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A node of a search tree as ``planner solve --tree`` writes it (see
    :meth:`planner.search.tree.SearchTree.to_networkx`)."""

    key: str
    state: str
    visits: int
    value: float
    estimate: float
    depth: int
    terminal: bool


@dataclass(frozen=True, slots=True)
class TreeEdge:
    """An edge (action) of a search tree, with its statistics and the prediction's confidence."""

    source: str
    target: str
    action: str
    visits: int
    value: float
    reward: float
    prior: float
    confidence: float


@dataclass(frozen=True, slots=True)
class SearchTreeView:
    """A search tree read from GraphML: nodes, edges and the root's key."""

    nodes: tuple[TreeNode, ...]
    edges: tuple[TreeEdge, ...]
    root: str
    source: str


@dataclass(frozen=True, slots=True)
class ViewReport:
    """What :func:`write_episode_html` wrote."""

    path: Path
    bytes: int
    episode: str
    steps: int
    plans: int
    tree_nodes: int | None

    def line(self) -> str:
        tree = "" if self.tree_nodes is None else f", a tree of {self.tree_nodes} nodes"
        counts = f"{count_words(self.steps, 'step')}, {count_words(self.plans, 'plan')}{tree}"
        return f"episode {self.episode}: {counts} -> {self.path} ({self.bytes / 1024:.0f} KiB)"



def count_words(n: int, word: str) -> str:
    """``"1 search"``, ``"2 searches"``."""
    if n == 1:
        return f"1 {word}"
    return f"{n} {word}es" if word.endswith(("s", "h")) else f"{n} {word}s"
