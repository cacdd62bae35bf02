"""Reading an episode log and a search tree into the records of :mod:`planner.view.episode`;
every record is checked, and a bad one is named by its file and line."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from planner.io import iter_jsonl_numbered
from planner.view.episode import (
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
)


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
    doubting: StrictBool = False
    followed: StrictBool = True
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
    doubted: StrictBool = False
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


_END_COUNTS = ("steps", "searches", "replans", "divergences", "probes", "doubted", "doubted_applied", "verified",
               "refused", "model_calls", "cache_hits", "invalid_answers", "split_votes", "prompt_tokens",
               "generated_tokens", "model_seconds", "search_seconds", "wall_seconds")
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
            stats=stats, rows=tuple(rows), resumed=self.resumed,
            doubting=plan.doubting if plan else False, followed=plan.followed if plan else True)


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
        reason=None if d.reason is None else _text(d.reason), doubted=d.doubted)


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
