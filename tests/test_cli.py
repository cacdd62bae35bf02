"""The ``planner`` command: success paths and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import networkx as nx
import pytest

from planner.cli import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("search", ["beam", "mcts"])
def test_solve_oracle_json(bw_files, capsys, tmp_path, search):
    domain, problem = bw_files(5, 4)
    code, out, _ = run(capsys, "solve", domain, problem, "--oracle", "--search", search,
                       "--json", "--log", tmp_path / "ep.jsonl", "--tree", tmp_path / "t.graphml")
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["solved"] is True
    assert summary["plan"] and all(a.startswith("(") for a in summary["plan"])
    for key in ("steps", "replans", "model_calls", "wall_seconds"):
        assert key in summary
    assert (tmp_path / "ep.jsonl").read_text().count('"event": "step"') == summary["steps"]
    assert nx.read_graphml(tmp_path / "t.graphml").number_of_nodes() > 0


def test_solve_human_output(bw_files, capsys):
    domain, problem = bw_files(4, 1)
    code, out, _ = run(capsys, "solve", domain, problem, "--oracle")
    assert code == 0
    assert "solved in" in out and "model calls" in out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["solve", "{d}", "{missing}", "--oracle"], "problem file not found"),
        (["solve", "{d}", "{d}", "--oracle"], "invalid PDDL"),
        (["solve", "{d}", "{p}", "--oracle", "--bogus"], "No such option: --bogus"),
        (["solve", "{d}", "{p}", "--oracle", "--search", "dfs"], "dfs"),
        (["solve", "{d}", "{p}", "--oracle", "--beam-width", "0"], "beam_width"),
        (["solve", "{d}", "{p}", "--oracle", "--model", "{p}"], "both"),
        (["solve", "{d}", "{p}", "--oracle", "--config", "{missing}"], "configuration file not found"),
        (["solve", "{d}", "{p}", "--model", "{missing}"], "model file not found"),
        (["solve", "{d}", "{p}", "--model", "{d}"], "not a GGUF file"),
    ],
)
def test_errors_are_one_line(bw_files, capsys, tmp_path, args, match):
    domain, problem = bw_files(3, 0)
    filled = [a.format(d=domain, p=problem, missing=tmp_path / "missing.pddl") for a in args]
    code, _, err = run(capsys, *filled)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("planner: error:")
    assert match in lines[0]


def test_config_file_and_flag_override(bw_files, capsys, tmp_path):
    domain, problem = bw_files(4, 2)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[search]\nalgorithm = "mcts"\nsimulations = 300\n')
    code, out, _ = run(capsys, "solve", domain, problem, "--oracle", "--config", cfg,
                       "--search", "beam", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["search"] == "beam"


def test_console_script_exit_codes(bw_files):
    domain, problem = bw_files(3, 0)
    ok = subprocess.run([sys.executable, "-m", "planner.cli", "solve", str(domain), str(problem),
                         "--oracle", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "planner.cli", "solve", "nope.pddl", "x.pddl"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
