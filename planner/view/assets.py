"""The page's inline style sheet and script (the script browses the search tree)."""

CSS = """
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

SCRIPT = r"""
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
