"""Rendering an episode (and its search tree) as one self-contained HTML page."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from planner.view.assets import CSS, SCRIPT
from planner.view.episode import (
    CHILDREN_SHOWN,
    Episode,
    PlanRow,
    PlanSegment,
    RealStep,
    SearchTreeView,
    count_words,
)
from planner.view.read import fact_changes, state_facts


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
    if seg.doubting:
        title += " " + _badge("through doubted refusals" + ("" if seg.followed else ": no plan, not followed"),
                              "probe")
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
    if step is not None and step.doubted:
        badges.append(_badge("doubted: planned although the model refused it", "probe"))
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
    counts = ", ".join(count_words(n, word) for n, word in ((sum(1 for s in ep.segments if s.number), "search"),
                                                      (len(steps), "real step"),
                                                      (sum(s.diverged for s in steps), "divergence")))
    return (f'<section id="plans"><h2>Plans and steps</h2><p class="muted">{counts}.</p>{legend}'
            + "".join(segments) + "</section>")



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



def render_html(episode: Episode, tree: SearchTreeView | None = None) -> str:
    """The whole page for ``episode`` (and ``tree``) as one HTML document."""
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
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
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><div class="sub">from {_e(episode.source)}</div></header>'
        f'<nav>{nav}</nav><main><div class="top">{_outcome_html(episode)}{_header_html(episode)}</div>'
        f"{_episode_body(episode)}"
        f"{_tree_html(episode, tree)}</main>"
        + (f"<script>{SCRIPT}</script>" if tree is not None else "")
        + "</body></html>\n"
    )
