"""``planner view``: a self-contained HTML page of an episode log and its search tree."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import itertools
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import networkx as nx
import pytest

from planner.agent import Agent
from planner.cli import main
from planner.config import PlannerConfig
from planner.env.registry import make
from planner.view import (
    CHILDREN_SHOWN,
    ViewError,
    fact_changes,
    read_episode,
    read_tree,
    render_html,
    state_facts,
    write_episode_html,
)
from planner.world.oracle import NoisyWorldModel, OracleWorldModel

PAYLOAD = "<script>alert(1)</script>"
FACT = "(<b id=pwned>x</b><script>window.pwned=true</script>)"
"""Markup in a fact (facts hold no parentheses inside, so this one has none)."""


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text of each script element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_data(self, data):
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def tree_data(page: str) -> dict:
    (attrs, text), = [s for s in parse(page).scripts if s[0].get("type") == "application/json"]
    assert attrs["id"] == "tree-data"
    return json.loads(text)


# -- episodes ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def noisy_episode(tmp_path_factory) -> tuple[Path, Path, object]:
    """A real Blocksworld episode with a model wrong on some answers (so the agent diverges and
    replans), MCTS, stacking actions verified before they run; its log and last search tree."""
    folder = tmp_path_factory.mktemp("noisy")
    env = make("blocksworld-v0", seed=1, blocks=5)
    model = NoisyWorldModel(OracleWorldModel(env), error_rate=0.15, seed=1, goal=env.goal)
    config = PlannerConfig().updated(search={"algorithm": "mcts", "simulations": 200}, agent={"verify": ("stack",)})
    log, tree = folder / "episode.jsonl", folder / "tree.graphml"
    result = Agent(env, model, config=config, log_path=log).run(seed=1)
    assert result.divergences >= 1 and result.replans >= 1 and result.verified >= 1, result
    assert result.last_search is not None
    result.last_search.write_tree(tree)
    return log, tree, result


def record(event: str, data: dict, *, episode: str = "ep-test") -> str:
    return json.dumps({"event": event, "episode": episode, "time": 0.0, "data": data})


def crafted_log(path: Path, *, end: bool = True, episode: str = "ep-test") -> Path:
    """An episode whose every text carries markup: a refused action, a divergence, a probe."""
    s0 = f"(clear a) (handempty) (on a b) {FACT}"
    s1 = f"(holding a) (clear b) {FACT}"
    lines = [
        record("start", {"state": s0, "goal": f"(on b a) {FACT}", "seed": 7,
                         "info": {"problem": "<img src=x onerror=alert(2)>", "observation": f"Hello {PAYLOAD}"},
                         "config": {"search": {"algorithm": "beam", "beam_width": 4}, "model": {"kind": "oracle"}}},
               episode=episode),
        record("plan", {"actions": ["(stack a b)", "(pick-up b)"], "reaches_goal": True, "value": 0.9,
                        "nodes": 5, "replan": False}, episode=episode),
        record("verify", {"index": 0, "action": "(stack a b)", "confidence": 0.4, "threshold": 0.9,
                          "applicable": True, "as_imagined": True, "allowed": False}, episode=episode),
        record("plan", {"actions": ["(unstack a b)", f"(say {PAYLOAD})"], "reaches_goal": True, "value": 0.8,
                        "nodes": 9, "replan": True}, episode=episode),
        record("act", {"index": 0, "action": "(unstack a b)", "imagined": s1, "probe": False}, episode=episode),
        record("step", {"index": 0, "action": "(unstack a b)", "state": s0, "imagined": s1,
                        "real": "(holding a) (on-fire b)", "applicable": True, "reward": 0.0, "terminated": False,
                        "truncated": False, "diverged": True, "probe": False, "reason": None,
                        "observation": f"</pre>{PAYLOAD}"}, episode=episode),
        record("plan", {"actions": [], "reaches_goal": False, "value": 0.0, "nodes": 1, "replan": True},
               episode=episode),
        record("act", {"index": 1, "action": "(put-down a)", "imagined": "(clear a)", "probe": True},
               episode=episode),
        record("step", {"index": 1, "action": "(put-down a)", "state": "(holding a) (on-fire b)",
                        "imagined": "(clear a)", "real": "(clear a)", "applicable": True, "reward": 1.0,
                        "terminated": True, "truncated": False, "diverged": False, "probe": True}, episode=episode),
    ]
    if end:
        lines.append(record("end", {"solved": True, "stopped_by": "goal", "steps": 2, "searches": 3, "replans": 2,
                                    "divergences": 1, "refused": 1, "error": None}, episode=episode))
    path.write_text("\n".join(lines) + "\n")
    return path


def crafted_tree(path: Path, *, children: int = 3) -> Path:
    """A GraphML tree as ``planner solve --tree`` writes it, with markup in states and actions."""
    g = nx.DiGraph()
    g.add_node(0, state=f"(clear a) (handempty) (on a b) {FACT}", terminal=False, visits=40, value=0.5,
               estimate=0.4, depth=0, root=True)
    for i in range(1, children + 1):
        g.add_node(i, state=f"(holding a) (x{i}) (</script><script>alert({i})</script>)", terminal=i == 1,
                   visits=40 - i, value=0.9 - i / 1000, estimate=0.3, depth=1, root=False)
        g.add_edge(0, i, action="(unstack a b)" if i == 1 else f"(act{i} {PAYLOAD})", visits=40 - i,
                   value=0.9 - i / 1000, reward=0.0, prior=1 / children, confidence=0.99)
    nx.write_graphml(g, path)
    return path


# -- the page holds nothing from outside ------------------------------------------------------
def assert_self_contained(page: str) -> None:
    lowered = page.lower()
    for needle in ("http://", "https://", "@import", "url(", "<link", "<iframe", "<img", "<object", "<embed",
                   "//cdn", "fonts."):
        assert needle not in lowered, needle
    tags = parse(page)
    for tag, attrs in tags.tags:
        assert "src" not in attrs, (tag, attrs)
        assert "srcset" not in attrs and "action" not in attrs and "formaction" not in attrs, (tag, attrs)
        assert all(not name.startswith("on") for name in attrs), (tag, attrs)
        if "href" in attrs:
            assert (attrs["href"] or "").startswith("#"), (tag, attrs)
    assert {tag for tag, _ in tags.tags} <= {
        "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "div", "nav", "a", "main",
        "section", "p", "span", "b", "table", "tr", "th", "td", "pre", "details", "summary", "article", "ol",
        "li", "code", "ul", "button", "noscript", "script"}


def test_real_episode_page_is_self_contained(noisy_episode, tmp_path):
    log, tree, _ = noisy_episode
    out = tmp_path / "episode.html"
    report = write_episode_html(log, out, tree=tree)
    page = out.read_text()
    assert report.bytes == len(page.encode()) and report.tree_nodes is not None
    assert_self_contained(page)
    # The only code that runs is the page's own script, pinned by its hash in the policy.
    tags = parse(page)
    code = [text for attrs, text in tags.scripts if "type" not in attrs]
    assert len(code) == 1
    digest = base64.b64encode(hashlib.sha256(code[0].encode()).digest()).decode()
    policy = next(a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv"))
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy


def test_text_from_the_log_and_the_tree_is_never_live(tmp_path):
    log, tree = crafted_log(tmp_path / "ep.jsonl"), crafted_tree(tmp_path / "t.graphml")
    page = render_html(read_episode(log), read_tree(tree))
    assert_self_contained(page)
    tags = parse(page)
    assert [t for t, _ in tags.tags].count("script") == 2  # the tree's JSON and the page's script
    assert "alert" not in "".join(text for attrs, text in tags.scripts if "type" not in attrs)
    assert PAYLOAD not in page and FACT not in page and "<img src=x" not in page and "</pre><script>" not in page
    assert "(&lt;b id=pwned&gt;x&lt;/b&gt;&lt;script&gt;window.pwned=true&lt;/script&gt;)" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    data = tree_data(page)  # the markup is data: it survives as text once the JSON is read
    assert FACT in data["facts"]
    assert "(holding a) (x1) (</script><script>alert(1)</script>)" in [n["s"] for n in data["nodes"]]  # text
    assert "</script><script>" not in page.split('id="tree-data">', 1)[1].split("</script>", 1)[0]


def test_only_the_tree_needs_a_script(noisy_episode):
    log, _, _ = noisy_episode
    page = render_html(read_episode(log))
    assert "<script" not in page and "No tree given" in page
    assert_self_contained(page)


# -- what the page shows ----------------------------------------------------------------------
def test_plans_steps_divergences_and_replans_of_a_real_episode(noisy_episode):
    log, tree, result = noisy_episode
    episode = read_episode(log)
    assert episode.id == result.episode_id and len(episode.steps) == len(result.steps)
    assert [s.action for s in episode.steps] == [s.action.name for s in result.steps]
    assert sum(s.number > 0 for s in episode.segments) == result.searches
    assert sum(s.replan for s in episode.segments) == result.replans
    page = render_html(episode, read_tree(tree))
    assert page.count('class="row diverged"') == result.divergences
    assert page.count('<span class="badge replan">replan</span> <span class="why">') == result.replans
    assert page.count("after the divergence at step") == result.replans
    assert page.count(">verified (confidence") == result.verified
    assert page.count('class="row matched"') == len(result.steps) - result.divergences
    assert "stopped by <b>goal</b>" in page and '<span class="badge ok">solved</span>' in page
    for step in result.steps:
        assert f"<code class=\"action\">{step.action.name}</code>" in page
        if step.diverged:  # what the model imagined that did not happen, and the reverse
            invented = set(step.imagined.facts) - set(step.real.facts)
            missed = set(step.real.facts) - set(step.imagined.facts)
            assert all(f'<span class="fact del">{f}</span>' in page for f in invented)
            assert all(f'<span class="fact add">{f}</span>' in page for f in missed)
            assert invented or missed
    goal = state_facts(episode.goal)
    assert goal and all(f'<span class="fact goal">{f}</span>' in page for f in goal)


def test_refusals_probes_observations_and_text_from_a_crafted_log(tmp_path):
    episode = read_episode(crafted_log(tmp_path / "ep.jsonl"))
    first, second, third = episode.segments
    assert [r.verification.allowed for r in first.rows if r.verification] == [False]
    assert first.rows[0].step is None and first.rows[1].step is None  # refused, then not executed
    assert second.replan and second.rows[0].step is not None and second.rows[0].step.diverged
    assert [r.step is None for r in second.rows] == [False, True]
    assert third.rows[0].position is None and third.rows[0].step is not None and third.rows[0].step.probe
    page = render_html(episode)
    assert "refused (confidence 0.400, needs 0.900)" in page and "after refusing (stack a b)" in page
    assert "no plan found: probing" in page and '<span class="badge probe">probe</span>' in page
    assert '<pre class="obs">&lt;/pre&gt;&lt;script&gt;' in page  # the step's observation
    assert "Hello &lt;script&gt;" in page  # the first observation
    assert '<span class="fact del">(clear b)</span>' in page  # imagined only
    assert '<span class="fact add">(on-fire b)</span>' in page  # real only


def test_an_episode_without_end_record_is_shown_as_unfinished(tmp_path):
    page = render_html(read_episode(crafted_log(tmp_path / "ep.jsonl", end=False)))
    assert "unfinished: no end record" in page


def test_the_last_episode_is_shown_unless_one_is_named(tmp_path):
    log = tmp_path / "two.jsonl"
    crafted_log(tmp_path / "a.jsonl", episode="ep-one")
    crafted_log(tmp_path / "b.jsonl", episode="ep-two")
    log.write_text((tmp_path / "a.jsonl").read_text() + (tmp_path / "b.jsonl").read_text())
    assert read_episode(log).id == "ep-two"
    assert read_episode(log, episode="ep-one").id == "ep-one"
    with pytest.raises(ViewError, match="no episode 'ep-three'; its episodes: ep-one, ep-two"):
        read_episode(log, episode="ep-three")


def test_states_split_into_facts_or_stay_text():
    assert state_facts("(on a b) (clear a)") == ("(on a b)", "(clear a)")
    assert state_facts("") == ()
    assert state_facts("You are in a kitchen.") is None
    assert fact_changes("(a) (b)", "(b) (c)") == (("(c)",), ("(a)",))
    assert fact_changes("(a)", "free text") is None


def test_tree_nodes_carry_their_statistics_and_the_plan_path(noisy_episode):
    log, tree, result = noisy_episode
    graph = nx.read_graphml(tree)
    data = tree_data(render_html(read_episode(log), read_tree(tree)))
    assert len(data["nodes"]) == graph.number_of_nodes()
    assert sum(len(k) for k in data["kids"]) == graph.number_of_edges()
    assert sorted(n["n"] for n in data["nodes"]) == sorted(v for _, v in graph.nodes(data="visits"))
    root = data["nodes"][data["root"]]
    assert root["d"] == 0 and root["n"] > 0
    for kids in data["kids"]:  # best first
        assert [k[2] for k in kids] == sorted((k[2] for k in kids), reverse=True)
    plan = result.last_search.plan.actions
    path = data["path"]
    assert len(path) == len(plan) + 1
    actions = [next(k[1] for k in data["kids"][a] if k[0] == b) for a, b in itertools.pairwise(path)]
    assert actions == [a.name for a in plan]


def test_huge_fan_out_is_embedded_whole_and_shown_in_batches(tmp_path):
    tree = read_tree(crafted_tree(tmp_path / "t.graphml", children=300))
    data = tree_data(render_html(read_episode(crafted_log(tmp_path / "ep.jsonl")), tree))
    assert len(data["kids"][data["root"]]) == 300 and data["cap"] == CHILDREN_SHOWN < 300


@pytest.mark.skipif(importlib.util.find_spec("textworld") is None, reason="the household extra is not installed")
def test_a_household_episode_shows_its_text_observations(tmp_path):
    env = make("household-v0", seed=3, split="test")
    log = tmp_path / "hh.jsonl"
    result = Agent(env, OracleWorldModel(env), log_path=log).run(seed=3)
    page = render_html(read_episode(log))
    observations = [s.observation for s in result.steps if s.observation]
    assert observations and all(f'<pre class="obs">{o}</pre>' in page for o in observations[:3])
    assert "First observation" in page and "task" in page


# -- bad input: one line, exit code 2 ---------------------------------------------------------
def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_command_writes_the_page(noisy_episode, tmp_path, capsys):
    log, tree, _ = noisy_episode
    out = tmp_path / "sub" / "episode.html"
    code, stdout, err = run(capsys, "view", log, "--tree", tree, "-o", out)
    assert code == 0 and err == ""
    assert out.is_file() and "steps" in stdout and str(out.name) in stdout
    assert not list(out.parent.glob(".*"))  # written atomically: no temporary file left


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("missing log", "episode log {tmp}/missing.jsonl not found"),
        ("not jsonl", "{tmp}/notes.txt:1: not a JSON object"),
        ("bad line", "{tmp}/ep.jsonl:3: not a JSON object"),
        ("bad record", "{tmp}/ep.jsonl:2: the 'plan' record's data is malformed: actions"),
        ("no episode", "holds no episode: no 'start' record among its 2 records"),
        ("empty log", "holds no episode: no 'start' record (it has no records)"),
        ("missing tree", "search tree {tmp}/missing.graphml not found"),
        ("tree not xml", "search tree {tmp}/ep.jsonl is not GraphML"),
        ("tree not graphml", "search tree {tmp}/other.xml is not GraphML"),
        ("tree without states", "not a search tree: node '0' has no 'state'"),
        ("unknown episode", "has no episode 'nope'"),
        ("output is a folder", "--out {tmp} is a folder"),
        ("output is the log", "is also an input"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, case, match):
    log = crafted_log(tmp_path / "ep.jsonl")
    out = tmp_path / "out.html"
    args: list[object] = [log, "-o", out]
    if case == "missing log":
        args[0] = tmp_path / "missing.jsonl"
    elif case == "not jsonl":
        (tmp_path / "notes.txt").write_text("just notes\nmore notes\n")
        args[0] = tmp_path / "notes.txt"
    elif case == "bad line":
        lines = log.read_text().splitlines()
        log.write_text("\n".join([*lines[:2], "{oops", *lines[2:]]) + "\n")
    elif case == "bad record":
        lines = log.read_text().splitlines()
        lines[1] = record("plan", {"actions": "(stack a b)"})
        log.write_text("\n".join(lines) + "\n")
    elif case == "no episode":
        log.write_text('{"state": "(a)", "action": "(b)"}\n{"state": "(b)", "action": "(c)"}\n')
    elif case == "empty log":
        log.write_text("")
    elif case == "missing tree":
        args += ["--tree", tmp_path / "missing.graphml"]
    elif case == "tree not xml":
        args += ["--tree", crafted_log(tmp_path / "ep.jsonl")]
    elif case == "tree not graphml":
        (tmp_path / "other.xml").write_text("<svg><g/></svg>\n")
        args += ["--tree", tmp_path / "other.xml"]
    elif case == "tree without states":
        g = nx.DiGraph()
        g.add_edge(0, 1)
        nx.write_graphml(g, tmp_path / "plain.graphml")
        args += ["--tree", tmp_path / "plain.graphml"]
    elif case == "unknown episode":
        args += ["--episode", "nope"]
    elif case == "output is a folder":
        args[2] = tmp_path
    elif case == "output is the log":
        args[2] = log
    code, _, err = run(capsys, "view", *args)
    assert code == 2, (code, err)
    assert match.format(tmp=tmp_path) in err, err
    assert err.startswith("planner: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


# -- in a real browser ------------------------------------------------------------------------
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium, chromium-browser or google-chrome "
                                                            "binary on PATH (apt-get install chromium)")


def browser(page: Path, *args: str) -> str:
    """Run the headless browser on ``page`` and return what it printed (the DOM for --dump-dom)."""
    assert BROWSER is not None
    cmd = [BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
           "--user-data-dir=" + str(page.parent / "profile"), *args, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_browser
def test_a_real_episode_renders_in_a_headless_browser(noisy_episode, tmp_path):
    log, tree, result = noisy_episode
    page = tmp_path / "episode.html"
    write_episode_html(log, page, tree=tree)
    dom = browser(page, "--dump-dom")
    # The server-side part: every real step, divergences marked.
    assert len(re.findall(r'<li class="row (?:matched|diverged)', dom)) == len(result.steps)
    assert dom.count('class="row diverged"') == result.divergences
    # The script ran: tree nodes exist in the DOM (they are not in the file), the plan path is open.
    assert 'class="node' not in page.read_text()
    nodes = re.findall(r'<li class="node[^"]*" data-node="(\d+)"', dom)
    plan = result.last_search.plan.actions
    assert len(nodes) > len(plan)
    assert len(re.findall(r'<li class="node onpath', dom)) == len(plan) + 1
    assert '<span class="act">root</span>' in dom and 'N=<b>' in dom and 'V=<b>' in dom
    for action in plan:
        assert f'<span class="act">{action.name}</span>' in dom
    shot = tmp_path / "episode.png"
    browser(page, "--hide-scrollbars", "--window-size=1280,900", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_browser
def test_huge_fan_out_renders_a_batch_and_says_how_many_more(tmp_path):
    page = tmp_path / "wide.html"
    write_episode_html(crafted_log(tmp_path / "ep.jsonl"), page, tree=crafted_tree(tmp_path / "t.graphml",
                                                                                   children=300))
    dom = browser(page, "--dump-dom")
    assert len(re.findall(r'<li class="node', dom)) == 1 + CHILDREN_SHOWN
    assert f"show {CHILDREN_SHOWN} more of {300 - CHILDREN_SHOWN}" in dom
    assert 'id="pwned"' not in dom and "&lt;b id=pwned&gt;" in dom  # markup from the files stayed text
