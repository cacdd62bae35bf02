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

import base64
import hashlib
import html
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from planner.errors import ConfigError
from planner.io import atomic_write_text, iter_jsonl_numbered

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
    ``reason`` is the environment's explanation of a step that did not apply, as text.
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
    """

    number: int
    actions: tuple[str, ...]
    replan: bool
    reaches_goal: bool | None
    value: float | None
    stats: tuple[tuple[str, Any], ...]
    rows: tuple[PlanRow, ...]
    resumed: int | None = None


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
        counts = f"{_count(self.steps, 'step')}, {_count(self.plans, 'plan')}{tree}"
        return f"episode {self.episode}: {counts} -> {self.path} ({self.bytes / 1024:.0f} KiB)"


# -- reading the log ----------------------------------------------------------------------------
class _Data(BaseModel):
    """Fields of one kind of record that the page reads (others are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _Envelope(_Data):
    event: StrictStr
    episode: StrictStr
    data: dict[str, Any]


class _StartData(_Data):
    state: StrictStr = ""
    goal: StrictStr = ""
    seed: StrictInt | None = None
    info: dict[str, Any] = {}
    config: dict[str, Any] = {}


_Number = StrictInt | StrictFloat


class _PlanData(_Data):
    actions: list[StrictStr] = []
    reaches_goal: StrictBool | None = None
    value: _Number | None = None
    replan: StrictBool = False
    nodes: StrictInt | None = None
    expansions: StrictInt | None = None
    simulations: StrictInt | None = None
    model_calls: StrictInt | None = None
    cache_hits: StrictInt | None = None
    wall_seconds: _Number | None = None
    stopped_by: StrictStr | None = None


class _ActData(_Data):
    index: StrictInt
    action: StrictStr
    imagined: StrictStr = ""
    probe: StrictBool = False


class _StepData(_Data):
    index: StrictInt
    action: StrictStr
    state: StrictStr = ""
    imagined: StrictStr = ""
    real: StrictStr
    applicable: StrictBool = True
    reward: _Number = 0.0
    terminated: StrictBool = False
    truncated: StrictBool = False
    diverged: StrictBool = False
    probe: StrictBool = False
    observation: StrictStr | None = None
    reason: Any = None


class _VerifyData(_Data):
    index: StrictInt
    action: StrictStr
    allowed: StrictBool
    confidence: _Number | None = None
    threshold: _Number | None = None
    as_imagined: StrictBool | None = None


class _EndData(_Data):
    solved: StrictBool
    stopped_by: StrictStr = ""
    error: StrictStr | None = None


class _ErrorData(_Data):
    step: StrictInt | None = None
    action: StrictStr | None = None
    error: StrictStr = ""


class _ResumeData(_Data):
    replayed: StrictInt = 0


_END_COUNTS = ("steps", "searches", "replans", "divergences", "probes", "verified", "refused", "model_calls",
               "cache_hits", "invalid_answers", "prompt_tokens", "generated_tokens", "model_seconds",
               "search_seconds", "wall_seconds")
"""Counts of an ``end`` record shown as the outcome, in this order."""


def _validate(model: type[_Data], record: Mapping[str, Any], where: str, what: str) -> Any:
    """``model`` validated from ``record``, or :class:`ViewError` saying at ``where`` what is wrong."""
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors())
        raise ViewError(f"{where}: {what} is malformed: {problem}") from None


@dataclass(frozen=True, slots=True)
class _Event:
    """One episode record of the log: where it is, its kind, its (validated) data."""

    line: int
    kind: str
    episode: str
    data: Any
    raw: Mapping[str, Any]


_EVENT_DATA: dict[str, type[_Data]] = {
    "start": _StartData, "plan": _PlanData, "act": _ActData, "step": _StepData, "verify": _VerifyData,
    "end": _EndData, "error": _ErrorData, "resume": _ResumeData,
}


def _read_events(path: Path) -> tuple[list[_Event], int]:
    """The episode records of the log ``path`` (each checked) and how many other records it has.

    A record is an episode record when it has an ``event`` key; records of kinds the page does
    not know are skipped. :class:`planner.io.CorruptLogError` names a line that is not JSON.
    """
    events: list[_Event] = []
    others = 0
    for number, record in iter_jsonl_numbered(path):
        if "event" not in record:
            others += 1
            continue
        where = f"{path}:{number}"
        envelope = _validate(_Envelope, record, where, "the episode record")
        model = _EVENT_DATA.get(envelope.event)
        if model is None:
            continue
        data = _validate(model, envelope.data, where, f"the {envelope.event!r} record's data")
        events.append(_Event(number, envelope.event, envelope.episode, data, envelope.data))
    return events, others


def read_episode(path: str | Path, *, episode: str | None = None) -> Episode:
    """The episode ``episode`` (default: the last one started) of the episode log ``path``.

    Raises :class:`ViewError` for a missing file, a malformed record (naming its line), a log
    without episodes, or an unknown episode id (listing the ones there are).
    """
    path = Path(path)
    _require_file(path, "episode log")
    events, others = _read_events(path)
    started = list(dict.fromkeys(e.episode for e in events if e.kind == "start"))
    if not started:
        kind = f" among its {others} records (is it a transition log?)" if others else (
            "" if events else " (it has no records)")
        raise ViewError(f"{path} holds no episode: no 'start' record{kind}")
    chosen = started[-1] if episode is None else episode
    if chosen not in started:
        shown = ", ".join(started[-10:])
        raise ViewError(f"{path} has no episode {chosen!r}; its episodes: {shown}")
    return _build_episode(path, [e for e in events if e.episode == chosen])


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ViewError(f"{what} {path} " + ("is not a file" if path.exists() else "not found"))


@dataclass
class _SegmentBuilder:
    """Collects one search's records while the log is read (mutable; turned into a
    :class:`PlanSegment` by :meth:`freeze`)."""

    number: int
    plan: _PlanData | None
    resumed: int | None = None
    rows: list[PlanRow] = field(default_factory=list)
    acts: dict[int, _ActData] = field(default_factory=dict)
    pending: Verification | None = None
    position: int = 0

    def verify(self, v: Verification) -> None:
        if v.allowed:
            self.pending = v
            return
        self.rows.append(PlanRow(position=self.position, action=v.action, step=None, verification=v, imagined=None))

    def step(self, s: RealStep) -> None:
        self.acts.pop(s.index, None)
        v = self.pending if self.pending is not None and self.pending.action == s.action else None
        self.pending = None
        position = None if s.probe else self.position
        self.rows.append(PlanRow(position=position, action=s.action, step=s, verification=v, imagined=s.imagined))
        self.position += not s.probe

    def freeze(self) -> PlanSegment:
        rows = list(self.rows)
        for act in self.acts.values():  # started, never finished
            rows.append(PlanRow(position=None if act.probe else self.position, action=act.action, step=None,
                                verification=None, imagined=act.imagined, unfinished=True))
            self.position += not act.probe
        actions = tuple(self.plan.actions) if self.plan is not None else ()
        rows.extend(PlanRow(position=i, action=a, step=None, verification=None, imagined=None)
                    for i, a in enumerate(actions) if i >= self.position)
        plan = self.plan
        stats: tuple[tuple[str, Any], ...] = ()
        if plan is not None:
            names = ("nodes", "expansions", "simulations", "model_calls", "cache_hits", "wall_seconds", "stopped_by")
            stats = tuple((n, getattr(plan, n)) for n in names if getattr(plan, n) is not None)
        return PlanSegment(
            number=self.number, actions=actions, replan=plan.replan if plan else False,
            reaches_goal=plan.reaches_goal if plan else None, value=plan.value if plan else None,
            stats=stats, rows=tuple(rows), resumed=self.resumed)


def _build_episode(path: Path, events: Sequence[_Event]) -> Episode:
    """An :class:`Episode` from its records, in log order (the first is its ``start``)."""
    start: _StartData = next(e.data for e in events if e.kind == "start")
    segments: list[_SegmentBuilder] = []
    errors: list[str] = []
    end: _EndData | None = None
    end_record: dict[str, Any] = {}
    resumed: int | None = None
    for event in events:
        d = event.data
        if event.kind == "plan":
            segments.append(_SegmentBuilder(number=len(segments) + 1 - _unplanned(segments), plan=d, resumed=resumed))
            resumed = None
            continue
        if event.kind == "resume":
            resumed = d.replayed
            continue
        if event.kind == "error":
            at = f"step {d.step} ({d.action}): " if d.step is not None else ""
            errors.append(at + d.error)
            continue
        if event.kind == "end":
            end, end_record = d, dict(event.raw)
            continue
        if event.kind not in ("act", "step", "verify"):
            continue
        if not segments:
            segments.append(_SegmentBuilder(number=0, plan=None))
        current = segments[-1]
        if event.kind == "act":
            current.acts[d.index] = d
        elif event.kind == "verify":
            current.verify(Verification(index=d.index, action=d.action, confidence=_float(d.confidence),
                                        threshold=_float(d.threshold), as_imagined=d.as_imagined, allowed=d.allowed))
        else:
            current.step(_real_step(d))
    info = dict(start.info)
    observation = info.pop("observation", None)
    outcome = None
    if end is not None:
        counts = tuple((k, end_record[k]) for k in _END_COUNTS if isinstance(end_record.get(k), (int, float)))
        outcome = Outcome(solved=end.solved, stopped_by=end.stopped_by, counts=counts, error=end.error)
    return Episode(
        id=events[0].episode, goal=start.goal, start=start.state, seed=start.seed,
        problem=tuple((str(k), _text(v)) for k, v in info.items()),
        observation=observation if isinstance(observation, str) else None,
        settings=_settings(start.config), segments=tuple(s.freeze() for s in segments),
        errors=tuple(errors), outcome=outcome, source=path.name)


def _unplanned(segments: Sequence[_SegmentBuilder]) -> int:
    """1 when the first segment holds steps logged before any plan (it is numbered 0), else 0."""
    return 1 if segments and segments[0].plan is None else 0


def _real_step(d: _StepData) -> RealStep:
    return RealStep(
        index=d.index, action=d.action, before=d.state, imagined=d.imagined, real=d.real,
        applicable=d.applicable, reward=float(d.reward), terminated=d.terminated, truncated=d.truncated,
        diverged=d.diverged, probe=d.probe, observation=d.observation,
        reason=None if d.reason is None else _text(d.reason))


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _text(value: Any) -> str:
    """A value of the log as one line of text."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _settings(config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The configuration values a reader of the episode wants: model, search and agent mode."""
    def section(name: str) -> Mapping[str, Any]:
        value = config.get(name)
        return value if isinstance(value, Mapping) else {}

    model, search, agent = section("model"), section("search"), section("agent")
    out: list[tuple[str, str]] = []
    if model.get("kind") is not None:
        where = model.get("path") or ("shipped default" if model.get("kind") == "gguf" else None)
        out.append(("model", f"{model['kind']}" + (f" ({where})" if where else "")))
    algorithm = search.get("algorithm")
    if algorithm is not None:
        budget = ("simulations", "selection") if algorithm == "mcts" else ("beam_width", "max_expansions")
        extra = ", ".join(f"{k}={search[k]}" for k in (*budget, "max_depth", "heuristic") if k in search)
        out.append(("search", f"{algorithm}" + (f" ({extra})" if extra else "")))
    if agent:
        agent_keys = ("mode", "max_steps", "max_replans", "verify")
        out.append(("agent", ", ".join(f"{k}={_text(agent[k])}" for k in agent_keys if k in agent)))
    return tuple(out)


# -- reading the tree ---------------------------------------------------------------------------
def read_tree(path: str | Path) -> SearchTreeView:
    """The search tree in the GraphML file ``path`` (as ``planner solve --tree`` writes it).

    Raises :class:`ViewError` for a missing file, a file that is not GraphML, or GraphML that
    is not a search tree (a node without a ``state``, no root).
    """
    path = Path(path)
    _require_file(path, "search tree")
    try:
        graph = nx.read_graphml(path)
    except ET.ParseError as exc:
        raise ViewError(f"search tree {path} is not GraphML (XML syntax error: {exc})") from None
    except (nx.NetworkXError, ValueError, TypeError, KeyError) as exc:
        raise ViewError(f"search tree {path} is not GraphML: {exc}") from None
    except UnicodeDecodeError as exc:  # pragma: no cover - expat reports bad bytes as ParseError
        raise ViewError(f"search tree {path} is not GraphML: {exc}") from None
    nodes = tuple(_tree_node(path, str(key), data) for key, data in graph.nodes(data=True))
    if not nodes:
        raise ViewError(f"search tree {path} has no nodes")
    edges = tuple(_tree_edge(str(u), str(v), data) for u, v, data in graph.edges(data=True))
    roots = [key for key, data in graph.nodes(data=True) if data.get("root") is True]
    if not roots:
        roots = [n.key for n in nodes if n.depth == 0]
    if not roots:
        raise ViewError(f"search tree {path} has no root node (no node with root=True or depth 0)")
    return SearchTreeView(nodes=nodes, edges=edges, root=str(roots[0]), source=path.name)


def _tree_node(path: Path, key: str, data: Mapping[str, Any]) -> TreeNode:
    state = data.get("state")
    if not isinstance(state, str):
        raise ViewError(f"search tree {path} is not a search tree: node {key!r} has no 'state' "
                        "(write one with planner solve --tree T.graphml)")
    return TreeNode(key=key, state=state, visits=_int_attr(data, "visits"), value=_float_attr(data, "value"),
                    estimate=_float_attr(data, "estimate"), depth=_int_attr(data, "depth", default=-1),
                    terminal=data.get("terminal") is True)


def _tree_edge(u: str, v: str, data: Mapping[str, Any]) -> TreeEdge:
    return TreeEdge(source=u, target=v, action=str(data.get("action", "")), visits=_int_attr(data, "visits"),
                    value=_float_attr(data, "value"), reward=_float_attr(data, "reward"),
                    prior=_float_attr(data, "prior"), confidence=_float_attr(data, "confidence"))


def _int_attr(data: Mapping[str, Any], key: str, *, default: int = 0) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _float_attr(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


# -- states as facts ----------------------------------------------------------------------------
_FACTS = re.compile(r"\s*(?:\([^()]*\)\s*)*")
_FACT = re.compile(r"\([^()]*\)")


def state_facts(state: str) -> tuple[str, ...] | None:
    """The facts of a state as the log writes it (``"(on a b) (clear a)"``), or ``None`` for a
    free-text state."""
    if _FACTS.fullmatch(state):
        return tuple(_FACT.findall(state))
    return None


def fact_changes(before: str, after: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(facts added, facts removed) from ``before`` to ``after``, sorted; ``None`` when either
    state is free text."""
    a, b = state_facts(before), state_facts(after)
    if a is None or b is None:
        return None
    return tuple(sorted(set(b) - set(a))), tuple(sorted(set(a) - set(b)))


# -- rendering ----------------------------------------------------------------------------------
def _e(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    """A number for reading: whole numbers as they are, others to 3 decimals; ``–`` for none."""
    if value is None:
        return "–"
    if isinstance(value, int):  # booleans too
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.0f}"
    return _e(value)


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{_e(text)}</span>'


def _chips(facts: Iterable[str], kind: str, sign: str) -> str:
    return "".join(f'<span class="fact {kind}">{sign}{_e(f)}</span>' for f in facts)


def _changes_html(before: str, after: str) -> str:
    """The change from ``before`` to ``after``: added and removed facts, or the new text."""
    changes = fact_changes(before, after)
    if changes is None:
        return f'<pre class="text">{_e(after)}</pre>'
    added, removed = changes
    if not added and not removed:
        return '<span class="muted">no change</span>'
    return _chips(added, "add", "+") + _chips(removed, "del", "−")


def _state_html(state: str) -> str:
    facts = state_facts(state)
    if facts is None:
        return f'<pre class="text">{_e(state)}</pre>'
    if not facts:
        return '<span class="muted">(no facts)</span>'
    return '<div class="facts">' + _chips(facts, "plain", "") + "</div>"


def _state_details(label: str, state: str) -> str:
    facts = state_facts(state)
    size = f"{len(facts)} facts" if facts is not None else f"{len(state)} characters"
    return f"<details class=\"state\"><summary>{_e(label)} ({size})</summary>{_state_html(state)}</details>"


def _pairs_html(pairs: Iterable[tuple[str, Any]], css: str = "pairs") -> str:
    items = "".join(f'<span class="kv">{_e(k.replace("_", " "))} <b>{_num(v)}</b></span>' for k, v in pairs)
    return f'<div class="{css}">{items}</div>'


def _header_html(ep: Episode) -> str:
    problem = list(ep.problem) + ([("seed", str(ep.seed))] if ep.seed is not None else [])
    rows = [("goal", f'<div class="facts">{_goal_html(ep.goal)}</div>')]
    rows += [(k, _e(v)) for k, v in problem]
    rows += [(k, _e(v)) for k, v in ep.settings]
    table = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    observation = (f'<h3>First observation</h3><pre class="obs">{_e(ep.observation)}</pre>'
                   if ep.observation else "")
    return (f'<section id="episode"><h2>Problem</h2><table class="info">{table}</table>{observation}'
            f'{_state_details("start state", ep.start)}</section>')


def _goal_html(goal: str) -> str:
    facts = state_facts(goal)
    return _chips(facts, "goal", "") if facts else f"<span>{_e(goal)}</span>"


def _outcome_html(ep: Episode) -> str:
    o = ep.outcome
    if o is None:
        verdict = _badge("unfinished: no end record (the run was cut off)", "warn")
        return f'<section id="outcome"><h2>Outcome</h2><p>{verdict}</p>{_errors_html(ep)}</section>'
    verdict = _badge("solved", "ok") if o.solved else _badge("not solved", "bad")
    stopped = f" stopped by <b>{_e(o.stopped_by)}</b>" if o.stopped_by else ""
    error = f'<p class="error">{_e(o.error)}</p>' if o.error else ""
    return (f'<section id="outcome"><h2>Outcome</h2><p class="verdict">{verdict}{stopped}</p>{error}'
            f'{_pairs_html(o.counts, "counts")}{_errors_html(ep)}</section>')


def _errors_html(ep: Episode) -> str:
    if not ep.errors:
        return ""
    items = "".join(f"<li>{_e(x)}</li>" for x in ep.errors)
    return f'<h3>Environment errors</h3><ul class="error">{items}</ul>'


def _segment_title(seg: PlanSegment, previous: PlanSegment | None) -> str:
    if seg.number == 0:
        return "Steps before any plan record"
    title = f"Plan {seg.number}"
    if seg.replan:
        title += " " + _badge("replan", "replan") + f" <span class=\"why\">{_e(_replan_cause(previous))}</span>"
    if seg.resumed is not None:
        title += " " + _badge(f"resumed after replaying {seg.resumed} steps", "warn")
    return title


def _replan_cause(previous: PlanSegment | None) -> str:
    """Why a replan happened, from how the previous search's rows ended."""
    if previous is not None:
        for row in reversed(previous.rows):
            if row.step is not None and row.step.diverged:
                return f"after the divergence at step {row.step.index}"
            if row.verification is not None and not row.verification.allowed:
                return f"after refusing {row.action}"
    return "after a divergence"


def _segment_html(seg: PlanSegment, previous: PlanSegment | None) -> str:
    facts = [f"{len(seg.actions)} actions"]
    if seg.reaches_goal is not None:
        facts.append("reaches the goal" if seg.reaches_goal else "does not reach the goal")
    if seg.value is not None:
        facts.append(f"value {_num(seg.value)}")
    if seg.number and not seg.actions:
        facts.append("no plan found: probing")
    summary = " · ".join(_e(f) for f in facts)
    stats = _pairs_html(seg.stats, "stats") if seg.stats else ""
    rows = "".join(_row_html(row, len(seg.actions)) for row in seg.rows)
    return (f'<article class="plan{" is-replan" if seg.replan else ""}" data-plan="{seg.number}">'
            f"<h3>{_segment_title(seg, previous)}</h3><p class=\"summary\">{summary}</p>{stats}"
            f'<ol class="rows">{rows}</ol></article>')


def _row_html(row: PlanRow, planned: int) -> str:
    """One plan row; ``planned`` is the plan's length (a row not executed shows its place in it)."""
    step = row.step
    classes = ["row"]
    badges: list[str] = []
    if row.position is None:
        classes.append("probe")
        badges.append(_badge("probe", "probe"))
    if row.verification is not None:
        v = row.verification
        conf = f" (confidence {_num(v.confidence)}" + (f", needs {_num(v.threshold)})" if v.threshold is not None
                                                      else ")")
        if v.as_imagined is False:
            conf += ", not as imagined"
        badges.append(_badge(("verified" if v.allowed else "refused") + conf, "ok" if v.allowed else "bad"))
    if step is None:
        classes.append("unfinished" if row.unfinished else ("refused" if row.verification else "skipped"))
        if row.unfinished:
            badges.append(_badge("started, no result logged", "warn"))
        elif row.verification is None:
            badges.append(_badge("not executed", "muted"))
    else:
        classes.append("diverged" if step.diverged else "matched")
        badges.append(_badge("diverged", "bad") if step.diverged else _badge("as imagined", "ok"))
        if step.terminated:
            badges.append(_badge("terminated", "ok"))
        if step.truncated:
            badges.append(_badge("truncated", "warn"))
    index = f"step {step.index}" if step is not None else (
        f"{row.position + 1}/{planned}" if row.position is not None else "")
    head = (f'<div class="row-head"><span class="idx">{_e(index)}</span>'
            f'<code class="action">{_e(row.action)}</code>{"".join(badges)}</div>')
    body = _step_body(step) if step is not None else ""
    if step is None and row.imagined:
        body = _line("imagined", _state_details("imagined state", row.imagined))
    return f'<li class="{" ".join(classes)}" data-step="{step.index if step else ""}">{head}{body}</li>'


def _step_body(step: RealStep) -> str:
    """A real step: what the model imagined, what really happened, and where they differ."""
    parts = []
    if step.diverged:
        parts.append(_line("imagined", _changes_html(step.before, step.imagined)))
        parts.append(_line("real", _changes_html(step.before, step.real) if step.applicable
                           else '<span class="bad-text">the action did not apply</span>'))
        parts.append(_divergence_html(step))
    else:
        parts.append(_line("effect", _changes_html(step.before, step.real)))
    if step.reason:
        parts.append(_line("reason", f"<span>{_e(step.reason)}</span>"))
    if step.reward:
        parts.append(_line("reward", _num(step.reward)))
    if step.observation and step.observation.strip():
        parts.append(_line("observation", f'<pre class="obs">{_e(step.observation)}</pre>'))
    states = _state_details("real state after", step.real)
    if step.diverged:
        states = _state_details("imagined state after", step.imagined) + states
    parts.append(f'<div class="line states">{states}</div>')
    return "".join(parts)


def _line(label: str, content: str) -> str:
    return f'<div class="line"><span class="lbl">{_e(label)}</span><span class="val">{content}</span></div>'


def _divergence_html(step: RealStep) -> str:
    """Where the imagined next state and the real one differ."""
    changes = fact_changes(step.real, step.imagined)
    if changes is None:
        return _line("differs", '<span class="bad-text">the imagined text differs from the real one</span>')
    invented, missed = changes
    out = ""
    if invented:
        out += _line("imagined only", _chips(invented, "del", ""))
    if missed:
        out += _line("real only", _chips(missed, "add", ""))
    return f'<div class="diff">{out}</div>' if out else ""


def _episode_body(ep: Episode) -> str:
    segments = []
    for i, seg in enumerate(ep.segments):
        segments.append(_segment_html(seg, ep.segments[i - 1] if i else None))
    steps = ep.steps
    if not segments:
        segments.append('<p class="muted">No plan and no step in this episode.</p>')
    legend = ('<p class="legend">' + _badge("as imagined", "ok") + " the real next state equals the imagined one · "
              + _badge("diverged", "bad") + " it differs (<span class=\"fact del\">imagined only</span> "
              "<span class=\"fact add\">real only</span>) · " + _badge("replan", "replan")
              + " a search after a divergence or a refused action</p>")
    counts = ", ".join(_count(n, word) for n, word in ((sum(1 for s in ep.segments if s.number), "search"),
                                                      (len(steps), "real step"),
                                                      (sum(s.diverged for s in steps), "divergence")))
    return (f'<section id="plans"><h2>Plans and steps</h2><p class="muted">{counts}.</p>{legend}'
            + "".join(segments) + "</section>")


def _count(n: int, word: str) -> str:
    """``"1 search"``, ``"2 searches"``."""
    if n == 1:
        return f"1 {word}"
    return f"{n} {word}es" if word.endswith(("s", "h")) else f"{n} {word}s"


def _tree_payload(tree: SearchTreeView, plan: Sequence[str]) -> dict[str, Any]:
    """The tree as compact JSON for the page's script: facts interned once, children of each
    node sorted by visits then value (best first), the last plan's path from the root."""
    index = {n.key: i for i, n in enumerate(tree.nodes)}
    facts: dict[str, int] = {}

    def state(text: str) -> Any:
        parsed = state_facts(text)
        if parsed is None:
            return text
        return [facts.setdefault(f, len(facts)) for f in parsed]

    nodes = [{"s": state(n.state), "n": n.visits, "v": _finite(n.value), "e": _finite(n.estimate),
              "d": n.depth, "g": n.terminal} for n in tree.nodes]
    kids: list[list[list[Any]]] = [[] for _ in tree.nodes]
    for edge in sorted(tree.edges, key=lambda e: (-e.visits, -_sortable(e.value), e.action)):
        kids[index[edge.source]].append([index[edge.target], edge.action, edge.visits, _finite(edge.value),
                                         _finite(edge.reward), _finite(edge.prior), _finite(edge.confidence)])
    root = index[tree.root]
    path = [root]
    for action in plan:
        nxt = next((k[0] for k in kids[path[-1]] if k[1] == action), None)
        if nxt is None or nxt in path:
            break
        path.append(nxt)
    return {"facts": list(facts), "nodes": nodes, "kids": kids, "root": root, "path": path, "cap": CHILDREN_SHOWN}


def _finite(value: float) -> float | str:
    """A number JSON can hold: non-finite values become their text."""
    return value if math.isfinite(value) else str(value)


def _sortable(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _json_for_script(payload: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` survives as such."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _tree_html(ep: Episode, tree: SearchTreeView | None) -> str:
    if tree is None:
        return ('<section id="tree"><h2>Search tree</h2><p class="muted">No tree given: write one with '
                "<code>planner solve --tree T.graphml</code> and pass <code>--tree T.graphml</code>.</p></section>")
    plan = next((s.actions for s in reversed(ep.segments) if s.number), ())
    payload = _tree_payload(tree, plan)
    where = ("its root is a real state of this episode" if tree.nodes[payload["root"]].state in ep.states()
             else "<b>its root is no real state of this episode</b> (a tree from another run?)")
    deepest = max((n.depth for n in tree.nodes), default=0)
    return (f'<section id="tree"><h2>Search tree</h2><p class="muted">The last search\'s tree from '
            f"<code>{_e(tree.source)}</code>: {len(tree.nodes)} nodes, {len(tree.edges)} edges, depth up to "
            f"{deepest}; {where}. Children are sorted by visits, then value; "
            f"<span class=\"hl\">highlighted</span>: the last plan. Each node shows the action on its edge, "
            f"N (visits), V (mean value), est (the value policy's estimate), r (predicted reward), p (prior), "
            f"conf (the model's confidence), and the imagined state as a change from its parent.</p>"
            f'<div class="controls"><button type="button" id="tree-path">Show the plan path</button>'
            f'<button type="button" id="tree-depth">Open to depth 2</button>'
            f'<button type="button" id="tree-collapse">Collapse all</button></div>'
            f'<ul class="tree" id="tree-root"></ul>'
            f"<noscript><p>The tree needs JavaScript to be browsed.</p></noscript>"
            f'<script type="application/json" id="tree-data">{_json_for_script(payload)}</script></section>')


_CSS = """
:root{--ok:#1a7f37;--bad:#c62828;--warn:#9a6700;--replan:#6f42c1;--muted:#6a737d;--line:#d0d7de}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:12px 24px}
header h1{font-size:18px;margin:0}
header .sub{color:#c9d1d9;font-size:12px}
nav{display:flex;gap:16px;padding:6px 24px;background:#fff;border-bottom:1px solid var(--line);
  position:sticky;top:0;z-index:2}
nav a{color:#0969da;text-decoration:none}
main{max-width:1200px;margin:0 auto;padding:8px 24px 48px}
.top{display:grid;grid-template-columns:minmax(0,2fr) minmax(0,3fr);gap:0 12px}
@media (max-width:900px){.top{display:block}}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 16px 12px;margin:12px 0}
h2{font-size:16px;margin:6px 0 8px}
h3{font-size:14px;margin:8px 0 4px}
table.info th{text-align:left;vertical-align:top;padding:2px 12px 2px 0;color:var(--muted);font-weight:600}
code,pre,.fact{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{white-space:pre-wrap;margin:2px 0}
pre.obs{background:#fffbe6;border-left:3px solid #d4a72c;padding:4px 8px}
pre.text{background:#f6f8fa;padding:4px 8px}
.facts{display:flex;flex-wrap:wrap;gap:3px}
.fact{display:inline-block;border-radius:4px;padding:0 5px;margin:1px 3px 1px 0;border:1px solid var(--line);
  background:#f6f8fa}
.fact.add{background:#dafbe1;border-color:#4ac26b}
.fact.del{background:#ffebe9;border-color:#ff8182}
.fact.goal{background:#ddf4ff;border-color:#54aeff}
.badge{display:inline-block;border-radius:10px;padding:0 8px;margin-left:6px;font-size:11px;font-weight:600;
  color:#fff;background:var(--muted)}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.warn{background:var(--warn)}
.badge.replan{background:var(--replan)}.badge.probe{background:#0969da}.badge.muted{background:#afb8c1}
.verdict .badge{font-size:14px;padding:2px 12px;margin:0 8px 0 0}
.counts,.stats,.pairs{display:flex;flex-wrap:wrap;gap:2px 18px;margin:4px 0;color:var(--muted)}
.kv b{color:#1f2328}
.stats{font-size:12px}
.muted{color:var(--muted)}.error,.bad-text{color:var(--bad)}
.legend{font-size:12px}
article.plan{border-left:4px solid #0969da;padding:2px 0 2px 12px;margin:14px 0}
article.plan.is-replan{border-left-color:var(--replan)}
article.plan .why{font-size:12px;color:var(--replan);font-weight:normal}
.summary{margin:2px 0;color:var(--muted)}
ol.rows{list-style:none;padding:0;margin:4px 0}
li.row{border:1px solid var(--line);border-left:4px solid var(--ok);border-radius:4px;padding:4px 8px;margin:4px 0}
li.row.diverged{border-left-color:var(--bad);background:#fff5f5}
li.row.skipped{border-left-color:#afb8c1;color:var(--muted);background:#fafbfc}
li.row.refused{border-left-color:var(--bad);background:#fafbfc}
li.row.unfinished{border-left-color:var(--warn)}
li.row.probe{border-left-color:#0969da}
.row-head .idx{display:inline-block;min-width:56px;color:var(--muted);font-size:12px}
.row-head .action{font-weight:600;font-size:13px}
.line{display:flex;gap:8px;align-items:baseline;margin:2px 0 0 56px}
.line .lbl{min-width:92px;color:var(--muted);font-size:12px}
.line.states{gap:16px}
.diff .lbl{color:var(--bad);font-weight:600}
details.state summary{cursor:pointer;color:#0969da;font-size:12px}
.controls button{margin-right:8px;font:inherit;font-size:12px;padding:2px 8px;cursor:pointer}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:18px}
ul.tree{padding-left:0}
li.node{margin:2px 0}
.node-row{display:flex;flex-wrap:wrap;gap:4px 8px;align-items:baseline}
.node-row .toggle{width:20px;border:none;background:none;cursor:pointer;font-size:12px;padding:0}
.node-row .toggle:disabled{cursor:default;color:#afb8c1}
.node-row .act{font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:600;font-size:12px}
.node-row .stat{font-size:11px;color:var(--muted)}
.node-row .stat b{color:#1f2328;font-weight:600}
.node-body{margin-left:28px}
li.node.onpath>.node-row .act,.hl{background:#fff3a3;border-radius:3px;padding:0 3px}
li.more button{font-size:11px;margin-left:28px;cursor:pointer}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var source = document.getElementById("tree-data");
  var host = document.getElementById("tree-root");
  if (!source || !host) { return; }
  var tree = JSON.parse(source.textContent);
  var nodes = tree.nodes, kids = tree.kids, facts = tree.facts, cap = tree.cap;
  var pathNext = {};
  for (var p = 0; p + 1 < tree.path.length; p++) { pathNext[tree.path[p]] = tree.path[p + 1]; }

  function make(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) { el.className = cls; }
    if (text !== undefined) { el.textContent = text; }
    return el;
  }
  function num(x) {
    if (typeof x !== "number") { return x === null || x === undefined ? "\u2013" : String(x); }
    return Number.isInteger(x) ? String(x) : x.toFixed(3);
  }
  function stat(row, label, value, title) {
    var s = make("span", "stat", label + "=");
    s.title = title;
    s.appendChild(make("b", "", num(value)));
    row.appendChild(s);
  }
  function chips(parent, list, cls, sign) {
    list.forEach(function (f) { parent.appendChild(make("span", "fact " + cls, sign + facts[f])); });
  }
  function changes(i, parent) {
    var box = make("div", "facts");
    var s = nodes[i].s;
    if (!Array.isArray(s)) { box.appendChild(make("pre", "text", s)); return box; }
    if (parent === null) { box.appendChild(make("span", "muted", s.length + " facts")); return box; }
    var before = {}, after = {};
    nodes[parent].s.forEach(function (f) { before[f] = true; });
    s.forEach(function (f) { after[f] = true; });
    var added = s.filter(function (f) { return !before[f]; });
    var removed = nodes[parent].s.filter(function (f) { return !after[f]; });
    chips(box, added, "add", "+");
    chips(box, removed, "del", "\u2212");
    if (!added.length && !removed.length) { box.appendChild(make("span", "muted", "no change")); }
    return box;
  }
  function fullState(i) {
    var d = make("details", "state");
    var s = nodes[i].s;
    d.appendChild(make("summary", "", Array.isArray(s) ? "state (" + s.length + " facts)" : "state (text)"));
    d.addEventListener("toggle", function () {
      if (!d.open || d.childNodes.length > 1) { return; }
      var box = make("div", "facts");
      if (Array.isArray(s)) { chips(box, s, "plain", ""); } else { box.appendChild(make("pre", "text", s)); }
      d.appendChild(box);
    });
    return d;
  }
  function showChildren(li, i, ancestors, open, from) {
    var ul = li.querySelector(":scope > ul");
    if (!ul) { ul = make("ul"); li.appendChild(ul); }
    var list = kids[i];
    var end = Math.min(list.length, from + cap);
    for (var k = from; k < end; k++) {
      ul.appendChild(nodeItem(list[k][0], list[k], i, ancestors, open));
    }
    if (end < list.length) {
      var more = make("li", "more");
      var button = make("button", "", "show " + Math.min(cap, list.length - end) + " more of "
                        + (list.length - end) + " (less visited)");
      button.type = "button";
      button.addEventListener("click", function () {
        ul.removeChild(more);
        showChildren(li, i, ancestors, null, end);
      });
      more.appendChild(button);
      ul.appendChild(more);
    }
  }
  function setOpen(li, i, ancestors, open) {
    var toggle = li.querySelector(":scope > .node-row > .toggle");
    var ul = li.querySelector(":scope > ul");
    if (open === false) { if (ul) { ul.hidden = true; } toggle.textContent = "\u25b8"; return; }
    if (ul) { ul.hidden = false; } else { showChildren(li, i, ancestors, open, 0); }
    toggle.textContent = "\u25be";
  }
  function wanted(i, parent, depth, open) {
    if (!open) { return false; }
    if (open.mode === "depth") { return depth < open.depth; }
    return parent === null || pathNext[parent] === i;
  }
  function nodeItem(i, edge, parent, ancestors, open) {
    var node = nodes[i];
    var depth = ancestors.length;
    var cycle = ancestors.indexOf(i) >= 0;
    var here = ancestors.concat([i]);
    var onPath = parent === null ? tree.path.length > 0 : pathNext[parent] === i;
    var li = make("li", "node" + (onPath ? " onpath" : "") + (node.g ? " goal" : ""));
    li.setAttribute("data-node", String(i));
    var row = make("div", "node-row");
    var toggle = make("button", "toggle", kids[i].length && !cycle ? "\u25b8" : "\u00b7");
    toggle.type = "button";
    toggle.disabled = !kids[i].length || cycle;
    row.appendChild(toggle);
    row.appendChild(make("span", "act", edge ? edge[1] : "root"));
    stat(row, "N", edge ? edge[2] : node.n, "visits");
    stat(row, "V", edge ? edge[3] : node.v, "mean backed-up value");
    stat(row, "est", node.e, "value estimate of the state");
    if (edge) {
      stat(row, "r", edge[4], "predicted reward");
      stat(row, "p", edge[5], "prior");
      stat(row, "conf", edge[6], "model confidence");
    }
    stat(row, "depth", depth, "actions from the root");
    if (kids[i].length) { row.appendChild(make("span", "stat", kids[i].length + " children")); }
    if (node.g) { row.appendChild(make("span", "badge ok", "goal")); }
    if (cycle) { row.appendChild(make("span", "badge warn", "back to an ancestor state")); }
    li.appendChild(row);
    var body = make("div", "node-body");
    body.appendChild(changes(i, parent));
    body.appendChild(fullState(i));
    li.appendChild(body);
    toggle.addEventListener("click", function () {
      var ul = li.querySelector(":scope > ul");
      setOpen(li, i, here, ul && !ul.hidden ? false : null);
    });
    if (!cycle && kids[i].length && wanted(i, parent, depth, open)) { setOpen(li, i, here, open); }
    return li;
  }
  function render(open) {
    host.textContent = "";
    host.appendChild(nodeItem(tree.root, null, null, [], open));
  }
  document.getElementById("tree-path").addEventListener("click", function () { render({mode: "path"}); });
  document.getElementById("tree-depth").addEventListener("click", function () { render({mode: "depth", depth: 2}); });
  document.getElementById("tree-collapse").addEventListener("click", function () { render(null); });
  render({mode: "path"});
})();
"""


def render_html(episode: Episode, tree: SearchTreeView | None = None) -> str:
    """The whole page for ``episode`` (and ``tree``) as one HTML document."""
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    policy = (f"default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; "
              "img-src 'none'; font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'")
    outcome = ("solved" if episode.outcome.solved else "not solved") if episode.outcome else "unfinished"
    title = f"Episode {episode.id} ({outcome})"
    sections = (("outcome", "Outcome"), ("episode", "Problem"), ("plans", "Plans and steps"), ("tree", "Search tree"))
    nav = "".join(f'<a href="#{k}">{v}</a>' for k, v in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><div class="sub">from {_e(episode.source)}</div></header>'
        f'<nav>{nav}</nav><main><div class="top">{_outcome_html(episode)}{_header_html(episode)}</div>'
        f"{_episode_body(episode)}"
        f"{_tree_html(episode, tree)}</main>"
        + (f"<script>{_SCRIPT}</script>" if tree is not None else "")
        + "</body></html>\n"
    )


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
