"""The ``planner`` command: success paths and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    assert code == 2  # usage or input error
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
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_unsolved_exits_1_with_json(bw_files, capsys):
    domain, problem = bw_files(6, 0)
    code, out, _ = run(capsys, "solve", domain, problem, "--oracle", "--max-steps", "1", "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and summary["solved"] is False and summary["stopped_by"] == "max_steps"


def _slow_solve(tmp_path, domain, problem, log):
    """A solve slowed by a huge MCTS budget, started in its own process."""
    import os

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # A child inherits an ignored SIGINT from a background shell: restore Python's handler.
    start = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from planner.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.Popen(
        [sys.executable, "-c", start, "solve", str(domain), str(problem), "--oracle", "--search", "mcts",
         "--simulations", "1000000", "--max-depth", "200", "--heuristic", "goal", "--log", str(log), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupt_exits_130_with_end_record_and_json(bw_files, tmp_path, signame):
    import signal
    import time

    from planner.io import read_jsonl

    domain, problem = bw_files(8, 1)
    log = tmp_path / "ep.jsonl"
    proc = _slow_solve(tmp_path, domain, problem, log)
    deadline = time.monotonic() + 60
    while not (log.exists() and '"start"' in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "planner: error: interrupted"
    assert json.loads(out.strip().splitlines()[-1])["stopped_by"] == "interrupted"
    end = read_jsonl(log)[-1]
    assert end["event"] == "end" and end["data"]["stopped_by"] == "interrupted"


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.6])
def test_interrupt_during_startup_prints_no_traceback(bw_files, tmp_path, delay):
    """SIGTERM while the command is still importing (or just started) ends it quietly."""
    import signal
    import time
    from pathlib import Path

    domain, problem = bw_files(8, 1)
    script = Path(sys.executable).with_name("planner")  # the installed command, as users start it
    if not script.exists():
        pytest.skip(f"the planner command is not installed beside {sys.executable}")
    proc = subprocess.Popen([str(script), "solve", str(domain), str(problem), "--oracle",
                             "--search", "mcts", "--simulations", "1000000", "--heuristic", "goal"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    if proc.returncode == -signal.SIGTERM:  # arrived before the interpreter ran any of our code
        assert err == ""
        return
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "planner: error: interrupted"


def test_a_sigterm_swallowed_during_startup_still_ends_the_command(monkeypatch, capsys):
    """A library that catches the interrupt while the command imports (``except BaseException``)
    does not make the command run on: the SIGTERM is remembered."""
    import contextlib
    import os
    import signal

    from planner import console

    ran = []

    def swallowing_import():
        with contextlib.suppress(BaseException):  # the library's fault this test plays
            os.kill(os.getpid(), signal.SIGTERM)
        return lambda: ran.append(True) or 0

    monkeypatch.setattr(console, "_import_command", swallowing_import)
    monkeypatch.setattr(console, "_terminated", False)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert console.main() == 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ran == [] and capsys.readouterr().err == "planner: error: interrupted\n"


def test_resume_from_the_command_line(bw_files, capsys, tmp_path):
    from planner.io import read_jsonl

    domain, problem = bw_files(5, 3)
    log = tmp_path / "ep.jsonl"
    code, out, _ = run(capsys, "solve", domain, problem, "--oracle", "--max-steps", "2", "--log", log, "--json")
    assert code == 1
    # A finished (not interrupted) episode is not resumable: exit 2, one line.
    code, _, err = run(capsys, "solve", domain, problem, "--oracle", "--resume", log)
    assert code == 2 and "no unfinished episode" in err
    # Cut the end record off, as a crash would.
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n")
    code, out, _ = run(capsys, "solve", domain, problem, "--oracle", "--resume", log, "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["solved"] and summary["resumed_steps"] == 2
    assert [r["event"] for r in read_jsonl(log)].count("resume") == 1


def test_episode_is_reported_even_when_the_tree_cannot_be_written(bw_files, capsys, tmp_path):
    domain, problem = bw_files(3, 0)
    code, out, err = run(capsys, "solve", domain, problem, "--oracle", "--json", "--tree", "/dev/full")
    assert code == 2 and json.loads(out.strip().splitlines()[-1])["solved"] is True
    assert err.strip().startswith("planner: error:") and "/dev/full" in err
    # A folder is refused before any work is done.
    code, out, err = run(capsys, "solve", domain, problem, "--oracle", "--json", "--tree", tmp_path)
    assert code == 2 and not out.strip() and "is a folder" in err


@pytest.mark.parametrize("fraction", ["nan", "inf", "-1", "1"])
def test_collect_refuses_a_bad_test_fraction(bw_files, capsys, tmp_path, fraction):
    domain, problem = bw_files(3, 0)
    code, _, err = run(capsys, "collect", "--out", tmp_path / "c", "--domain", domain, "--problem", problem,
                       "--test-fraction", fraction)
    assert code == 2 and "--test-fraction" in err


def test_json_has_no_nan():
    from planner.cli import _finite

    assert json.dumps(_finite({"a": float("nan"), "b": [1.0, float("inf")], "c": "x"})) == \
        '{"a": null, "b": [1.0, null], "c": "x"}'


def test_long_error_messages_are_bounded(tmp_path, capsys):
    huge = tmp_path / ("x" * 200)
    code, _, err = run(capsys, "solve", huge / ("y" * 2000), huge, "--oracle")
    assert code == 2 and len(err.strip()) <= len("planner: error: ") + 1000


@pytest.mark.parametrize("fmt", ["sharegpt", "openai", "alpaca"])
def test_export_import_round_trip_from_the_command_line(capsys, tmp_path, fmt):
    from planner.data.collect import collect_blocksworld

    collect_blocksworld(tmp_path / "data", blocks=[3], seed=0, problems={"train": 2, "val": 0, "test": 0})
    log = tmp_path / "data" / "train.jsonl"
    exported = tmp_path / f"out.{fmt}"
    code, _, err = run(capsys, "export", log, "--format", fmt, "--out", exported)
    assert code == 0, err
    code, _, err = run(capsys, "import", exported, "--out", tmp_path / "back.jsonl")
    assert code == 0, err
    assert (tmp_path / "back.jsonl").read_bytes() == log.read_bytes()
    exported.write_text(exported.read_text().replace("Applicable: yes", "Applicable: perhaps", 1))
    code, _, err = run(capsys, "import", exported, "--out", tmp_path / "bad.jsonl")
    assert code == 2 and "perhaps" in err and not (tmp_path / "bad.jsonl").exists()


# -- environments by name or path (--env, --env-arg, --seed) ----------------------------------------
CELL = str(Path(__file__).resolve().parents[1] / "examples" / "automation_cell.py")

NO_SIMULATE = """
from planner.types import Action, FactGoal, State


class Plain:
    goal = FactGoal(frozenset({"(done)"}))

    def reset(self, *, seed=None):
        return State(), {}

    def step(self, action):
        raise NotImplementedError

    def candidate_actions(self, state):
        return (Action("(finish)"),)


def make(seed):
    return Plain()


def boom(seed, **kwargs):
    raise ValueError(f"bad size {kwargs.get('size')}")
"""


def test_solve_env_by_name_with_args_and_seed(capsys):
    code, out, err = run(capsys, "solve", "--env", "blocksworld-v0", "--env-arg", "blocks=4", "--seed", "3",
                         "--oracle", "--json")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["solved"] is True and summary["problem"] == "bw-4-3" and summary["plan"]


def test_solve_env_from_a_path_factory(capsys):
    code, out, err = run(capsys, "solve", "--env", f"{CELL}:make_cell", "--oracle")
    assert code == 0, err
    assert "automation_cell.py:make_cell: solved in 10 steps" in out
    code, out, err = run(capsys, "solve", "--env", f"{CELL}:make_cell", "--env-arg", "parts=3", "--oracle", "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["solved"] and summary["steps"] == 15


def test_solve_gymnasium_env(capsys):
    pytest.importorskip("gymnasium", reason="frozenlake-v0 needs gymnasium (the 'gym' extra)")
    code, out, err = run(capsys, "solve", "--env", "frozenlake-v0", "--env-arg", "size=8", "--seed", "2",
                         "--oracle", "--search", "beam", "--json")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["solved"] and summary["problem"] == "frozenlake-v0"


def test_demo_with_env(capsys, tmp_path):
    code, out, err = run(capsys, "demo", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--seed", "1",
                         "--oracle", "--out", tmp_path / "d")
    assert code == 0, err
    assert "environment blocksworld-v0 (seed 1)" in out and "imagined plan" in out and "bw-3-1: solved" in out
    assert (tmp_path / "d" / "episode.jsonl").is_file()


def test_env_arg_values_are_json_when_they_parse():
    from planner.cli import parse_env_args

    assert parse_env_args(["blocks=4", "name=cell", "ok=true", "xs=[1, 2]", "empty=", "eq=a=b"]) == {
        "blocks": 4, "name": "cell", "ok": True, "xs": [1, 2], "empty": "", "eq": "a=b"}


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["solve", "--env", "nope-v0", "--oracle"], "unknown environment 'nope-v0'; registered: blocksworld-v0"),
        (["solve", "--env", "blocksworld-v0", "--env-arg", "blocks", "--oracle"], "key=value"),
        (["solve", "--env", "blocksworld-v0", "--env-arg", "size=3", "--oracle"], "unexpected keyword argument 'size'"),
        (["solve", "--env", "blocksworld-v0", "--env-arg", "blocks=1", "--oracle"], "n_blocks"),
        (["solve", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--env-arg", "blocks=4"], "given twice"),
        (["solve", "{d}", "{p}", "--env", "blocksworld-v0", "--oracle"], "either DOMAIN PROBLEM or --env, not both"),
        (["solve", "{d}", "--env", "blocksworld-v0", "--oracle"], "not both"),
        (["solve", "--oracle"], "missing DOMAIN and PROBLEM"),
        (["solve", "{d}", "--oracle"], "missing PROBLEM"),
        (["solve", "{d}", "{p}", "--env-arg", "blocks=3", "--oracle"], "--env-arg blocks=3 needs --env"),
        (["solve", "--env", "{missing}:make", "--oracle"], "environment file not found"),
        (["solve", "--env", "{d}:make", "--oracle"], "is not a Python file"),
        (["solve", "--env", "{mod}:nope", "--oracle"], "has no 'nope'; callables defined there: Plain, boom, make"),
        (["solve", "--env", "{mod}:boom", "--env-arg", "size=3", "--oracle"],
         "environment check failed: {mod}:boom(seed=0, size=3) raised ValueError: bad size 3"),
        (["solve", "--env", "{mod}:make", "--oracle"], "--oracle needs an environment with simulate"),
        (["solve", "--env", f"{CELL}:make_cell"], "a GGUF world model needs a PDDL environment today"),
        (["demo", "--env", "blocksworld-v0", "--blocks", "3", "--oracle"], "with --env give --env-arg blocks=N"),
        (["demo", "--env-arg", "blocks=3", "--oracle"], "needs --env"),
        (["demo", "--env", f"{CELL}:make_cell"], "needs a PDDL environment today"),
    ],
)
def test_env_errors_are_one_line(bw_files, capsys, tmp_path, args, match):
    domain, problem = bw_files(3, 0)
    module = tmp_path / "plain.py"
    module.write_text(NO_SIMULATE)
    fill = {"d": domain, "p": problem, "missing": tmp_path / "missing.py", "mod": module}
    filled = [a.format(**fill) for a in args]
    code, _, err = run(capsys, *filled, "--out", tmp_path / "demo") if args[0] == "demo" else run(capsys, *filled)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("planner: error:")
    assert match.format(**fill) in lines[0]


def test_collect_from_an_environment_and_infer_its_domain(bw_files, capsys, tmp_path):
    domain, _ = bw_files(4, 0)
    code, out, err = run(capsys, "collect", "--env", "blocksworld-v0", "--env-arg", "blocks=4",
                         "--seeds", "train=0-3,test=100", "--out", tmp_path / "data")
    assert code == 0, err
    assert "train: 4 seeds" in out and (tmp_path / "data" / "test.jsonl").is_file()
    code, out, err = run(capsys, "schema", tmp_path / "data" / "train.jsonl", "--compare", domain,
                         "--pddl-out", tmp_path / "learned.pddl")
    assert code == 0, err
    assert f"the learned domain equals {domain}" in out
    assert "(:action stack" in (tmp_path / "learned.pddl").read_text()
    code, _, err = run(capsys, "collect", "--env", "blocksworld-v0", "--seeds", "train=0-3,bogus=9",
                       "--out", tmp_path / "d2")
    assert code == 2 and "bogus" in err


SPLIT_WORLDS = """
from planner.env.registry import make


def make_world(seed=0, split="train"):
    # held-out splits are other worlds: 4 blocks instead of 3
    return make("blocksworld-v0", seed=seed, blocks=3 if split == "train" else 4)
"""


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_collect_builds_each_seed_in_the_split_that_names_it(capsys, tmp_path, workers):
    """As ``planner learn`` does: an environment whose factory takes ``split`` plays held-out
    seeds in held-out variations (household-v0's scenes); ``--env-arg split=…`` may name the
    split only of seeds named for it."""
    factory = tmp_path / "worlds.py"
    factory.write_text(SPLIT_WORLDS)
    env = f"{factory}:make_world"

    def objects(folder, split):
        return {len(json.loads(line)["objects"]) for line in (folder / f"{split}.jsonl").read_text().splitlines()}

    code, _, err = run(capsys, "collect", "--env", env, "--seeds", "train=0-1,val=10,test=20-21",
                       "--episodes-per-seed", "1", "--max-steps", "5", "--out", tmp_path / "a", *workers)
    assert code == 0, err
    assert [objects(tmp_path / "a", s) for s in ("train", "val", "test")] == [{3}, {4}, {4}]
    code, _, err = run(capsys, "collect", "--env", env, "--env-arg", "split=train", "--seeds", "train=0-1",
                       "--episodes-per-seed", "1", "--max-steps", "5", "--out", tmp_path / "b", *workers)
    assert code == 0, err
    assert objects(tmp_path / "b", "train") == {3}
    # seeds named for one split but played in another would put held-out variations in training
    # data (or the reverse): refused, before anything is collected
    code, _, err = run(capsys, "collect", "--env", env, "--env-arg", "split=train", "--seeds", "train=0,test=20-21",
                       "--episodes-per-seed", "1", "--max-steps", "5", "--out", tmp_path / "c", *workers)
    assert code == 2 and "--env-arg split=train plays every seed in the train split, but --seeds names test=20-21" \
        in " ".join(err.split())
    assert not (tmp_path / "c").exists()


def test_outputs_never_overwrite_inputs(capsys, tmp_path):
    from planner.data.collect import collect_blocksworld

    collect_blocksworld(tmp_path / "data", blocks=[3], seed=0, problems={"train": 1, "val": 0, "test": 0})
    log = tmp_path / "data" / "train.jsonl"
    before = log.read_bytes()
    for args in (["schema", log, "--pddl-out", log], ["export", log, "--format", "openai", "--out", log],
                 ["import", log, "--out", log]):
        code, _, err = run(capsys, *args)
        assert code == 2 and "is also an input" in err
    assert log.read_bytes() == before


@pytest.mark.parametrize(("args", "match"), [
    (["--seeds", "train=5-1"], "from a lower to a higher seed"),
    (["--seeds", "train=0-4294967296"], "within 0..4294967295"),
    (["--seeds", "train=0-2000000"], "more than 1,000,000"),
    (["--seeds", "train=0-1,train=2-3"], "twice"),
    (["--seeds", "train=0-1", "--env-arg", "seed=3"], "use --seed"),
    (["--seeds", "train=0-1", "--domain", "/dev/null"], "not both"),
])
def test_collect_env_request_errors(capsys, tmp_path, args, match):
    code, _, err = run(capsys, "collect", "--env", "blocksworld-v0", "--out", tmp_path / "c", *args)
    assert code == 2 and match in err, err


def test_demonstrations_are_checked(capsys, tmp_path):
    bad = tmp_path / "demos.json"
    for text, match in (('{"0": [5]}', "list of action names"), ('{"x": []}', "not a seed"),
                        ("[" * 100000, "not JSON"), ('"x"', "expected a JSON object")):
        bad.write_text(text)
        code, _, err = run(capsys, "collect", "--env", "blocksworld-v0", "--seeds", "train=0", "--demos", bad,
                           "--out", tmp_path / "c")
        assert code == 2 and match in err, err
    code, _, err = run(capsys, "collect", "--demos", bad, "--out", tmp_path / "c")
    assert code == 2 and "--demos needs --env" in err


def test_user_environment_code_that_exits_is_a_failure_not_an_interrupt(capsys, tmp_path):
    factory = tmp_path / "envs.py"
    factory.write_text(
        "import sys\n"
        "def exits(seed=0):\n    raise SystemExit(0)\n"
        "def garbage(seed=0):\n"
        "    class E:\n"
        "        goal = None\n"
        "        def reset(self, *, seed=None):\n            return 'garbage'\n"
        "        def step(self, action):\n            raise SystemExit(0)\n"
        "        def candidate_actions(self, state):\n            return []\n"
        "    return E()\n")
    code, _, err = run(capsys, "solve", "--env", f"{factory}:exits", "--oracle")
    assert code == 2 and "SystemExit" in err


def test_synth_reports_the_consistency_ratio(capsys, tmp_path):
    code, out, err = run(capsys, "synth", "--env", "blocksworld-v0", "--env-arg", "blocks=4", "--oracle",
                         "--seeds", "0-3", "--policy", "greedy", "--out", tmp_path / "syn.jsonl", "--json")
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0, err
    assert report["episodes"] == 4 and report["consistency"] == 1.0 and report["steps"] > 0
    code, _, err = run(capsys, "synth", "--env", "blocksworld-v0", "--out", tmp_path / "s2.jsonl")
    assert code == 2 and "--oracle" in err


@pytest.mark.parametrize(("args", "match"), [
    (["--env", "no-such-env-v0"], "no-such-env-v0"),
    (["--env", "blocksworld-v0", "--minutes", "0"], "minutes must lie"),
    (["--env", "blocksworld-v0", "--seeds", "train=0-3"], "missing"),
])
def test_learn_request_errors_are_one_line(capsys, tmp_path, args, match):
    pytest.importorskip("torch")
    code, _, err = run(capsys, "learn", "--out", tmp_path / "out", *args)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "model-q8_0.gguf").exists()


def test_a_non_pddl_environment_may_plan_with_a_named_model_only(capsys, tmp_path):
    code, _, err = run(capsys, "solve", "--env", f"{CELL}:make_cell")
    assert code == 2 and "--model DIR/model-q8_0.gguf" in err


def test_small_states_are_shown_whole_and_large_ones_as_changes():
    from planner.cli import FULL_STATE_FACTS, imagined_text
    from planner.types import State

    small_before, small_after = State.from_facts(["(a)"]), State.from_facts(["(b)"])
    assert imagined_text(small_before, small_after) == "(b)"
    big = [f"(f{i})" for i in range(FULL_STATE_FACTS)]
    before, after = State.from_facts([*big, "(x)"]), State.from_facts([*big, "(y)"])
    assert imagined_text(before, after) == "+(y) -(x)"
    assert imagined_text(before, before) == "(no change)"


def test_quantize_a_float_model_and_compare_it(tiny_gguf, capsys, tmp_path):
    """``planner quantize``: a float model trained where llama.cpp is not (``--no-quantize``)
    becomes Q8_0 beside it, compared with it on a log."""
    import shutil

    from planner.world.gguf_io import read_model_info

    model = tmp_path / "model-f32.gguf"
    shutil.copy(tiny_gguf, model)
    code, _, err = run(capsys, "collect", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--seeds", "train=0",
                       "--episodes-per-seed", "1", "--max-steps", "6", "--out", tmp_path / "data")
    assert code == 0, err
    code, out, err = run(capsys, "quantize", model, "--compare", tmp_path / "data" / "train.jsonl", "--sample", "5")
    assert code == 0, err
    q8 = tmp_path / "model-q8_0.gguf"
    assert f"wrote {q8}" in out and "q8_0 agrees with model-f32.gguf on" in out and "of 5 predictions" in out
    assert read_model_info(q8).domain == read_model_info(model).domain
    assert q8.stat().st_size < model.stat().st_size
    code, out, _ = run(capsys, "quantize", model, "--out", tmp_path / "small.gguf", "--kind", "q4_0")
    assert code == 0 and (tmp_path / "small.gguf").is_file()


def test_a_failed_quantize_writes_nothing_and_keeps_what_was_there(tiny_gguf, capsys, tmp_path):
    """Each refusal comes before anything is put in place: an existing --out stays as it was,
    and no half-written file is left beside it."""
    import shutil

    import gguf

    from tests.conftest import rewrite_gguf

    model = tmp_path / "m-f32.gguf"
    shutil.copy(tiny_gguf, model)
    keep = tmp_path / "keep.gguf"
    keep.write_text("keep")
    (tmp_path / "corrupt.jsonl").write_text("not json\n")
    (tmp_path / "empty.jsonl").write_text("")
    rewrite_gguf(model, changes={"llama.block_count": (5, gguf.GGUFValueType.UINT32)}, out=tmp_path / "blocks.gguf")
    code, _, _ = run(capsys, "quantize", model, "--out", tmp_path / "q8.gguf")
    assert code == 0
    for args, named in [
        ([model, "--compare", tmp_path / "corrupt.jsonl"], "corrupt.jsonl:1: not a JSON object"),
        ([model, "--compare", tmp_path / "empty.jsonl"], "empty.jsonl holds no transitions"),
        ([tmp_path / "q8.gguf"], "is already quantized (Q8_0); name a float (F32 or F16) model"),
        ([tmp_path / "blocks.gguf"], "llama.cpp could not load"),
    ]:
        before = sorted(p.name for p in tmp_path.iterdir())
        code, _, err = run(capsys, "quantize", *args, "--out", keep)
        assert code == 2 and named in " ".join(err.split()), err
        assert keep.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(("args", "named"), [
    (["{missing}"], "no model at {missing}"),
    (["{model}", "--out", "{model}"], "is the model itself"),
    (["{model}", "--kind", "q5_k"], "unknown quantization 'q5_k'"),
    (["{model}", "--compare", "{missing}"], "--compare {missing}: no such transition log"),
    (["{model}", "--out", "{tmp}"], "is a folder; name a file"),
    (["{bad}"], "{bad}"),
])
def test_quantize_names_what_it_cannot_use(tiny_gguf, capsys, tmp_path, args, named):
    import shutil

    model = tmp_path / "m.gguf"
    shutil.copy(tiny_gguf, model)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF not really")
    fill = {"model": model, "missing": tmp_path / "nope.gguf", "tmp": tmp_path, "bad": bad}
    code, _, err = run(capsys, "quantize", *[a.format(**fill) for a in args])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert named.format(**fill) in lines[0]
    assert not list(tmp_path.glob("m-*.gguf"))  # nothing written
