"""A self-contained HTML page for one episode: ``planner view LOG.jsonl [--tree T.graphml]``.

The page shows the goal and the problem, every plan the agent made with the states it imagined,
the real steps with their divergences from the imagined ones, replans, verified and refused
actions, the environment's text observations, the outcome and, given the GraphML tree that
``planner solve --tree`` writes, the last search tree to browse.

The page needs nothing but itself: inline CSS and JavaScript, no network, no fonts or images.
The log is untrusted input: it is read into frozen dataclasses first (each record checked, a bad
one named by its line), every text taken from it is escaped when it becomes HTML, the tree's
data is embedded as JSON with every ``<`` escaped, and a Content-Security-Policy lets only the
page's own script run. The episode is rendered as HTML on this side (readable without
JavaScript); the script renders the tree lazily — a node's children only when it is opened, at
most :data:`CHILDREN_SHOWN` at a time — so trees of thousands of nodes stay usable.
"""

from __future__ import annotations

from pathlib import Path

from planner.io import atomic_write_text
from planner.view.episode import (
    CHILDREN_SHOWN,
    Episode,
    Outcome,
    PlanRow,
    PlanSegment,
    RealStep,
    SearchTreeView,
    TreeEdge,
    TreeNode,
    Verification,
    ViewError,
    ViewReport,
)
from planner.view.page import render_html
from planner.view.read import fact_changes, read_episode, read_tree, state_facts

__all__ = [
    "CHILDREN_SHOWN",
    "Episode",
    "Outcome",
    "PlanRow",
    "PlanSegment",
    "RealStep",
    "SearchTreeView",
    "TreeEdge",
    "TreeNode",
    "Verification",
    "ViewError",
    "ViewReport",
    "fact_changes",
    "read_episode",
    "read_tree",
    "render_html",
    "state_facts",
    "write_episode_html",
]


def write_episode_html(log: str | Path, out: str | Path, *, tree: str | Path | None = None,
                       episode: str | None = None) -> ViewReport:
    """Read the episode log ``log`` (and the GraphML ``tree``), write the page to ``out``
    atomically, and say what was written. Raises :class:`ViewError` for bad input."""
    ep = read_episode(log, episode=episode)
    view = read_tree(tree) if tree is not None else None
    text = render_html(ep, view)
    atomic_write_text(out, text)
    return ViewReport(path=Path(out), bytes=len(text.encode("utf-8")), episode=ep.id, steps=len(ep.steps),
                      plans=sum(1 for s in ep.segments if s.number),
                      tree_nodes=None if view is None else len(view.nodes))
