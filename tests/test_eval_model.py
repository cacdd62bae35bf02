"""``planner eval-model --env``: fidelity on fresh episodes and planning success, with the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.cli import main
from planner.config import PlannerConfig
from planner.data.planning_eval import DEFAULT_CONFIG, SEARCH_SECONDS, evaluate_planning
from planner.env.registry import make
from planner.errors import ModelLoadError
from planner.world.factory import package_models_dir
from planner.world.oracle import OracleWorldModel

SHIPPED = package_models_dir() / "blocksworld-q8_0.gguf"
CELLS = str(Path(__file__).resolve().parents[1] / "examples" / "automation_cell.py") + ":make_cells"
ENV = ["--env", "blocksworld-v0", "--env-arg", "blocks=3", "--episodes-per-seed", "1", "--max-steps", "10"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_model_env_prints_fidelity_and_planning_tables(capsys):
    code, out, err = run(capsys, "eval-model", SHIPPED, *ENV, "--seeds", "5-6")
    assert code == 0, err
    assert "on blocksworld-v0 seeds 5-6: 20 fresh transitions from 2 exploration episodes" in out
    assert "next EM" in out and "multi-step consistency" in out
    assert "planning: solved 2/2 seeds (100.0%), mean plan length" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["5"], ["6"])]
    assert [r[:2] for r in rows] == [["5", "yes"], ["6", "yes"]]


def test_eval_model_env_json_has_planning_per_seed_and_matches_solve(capsys, tmp_path):
    code, out, err = run(capsys, "eval-model", SHIPPED, *ENV, "--seeds", "5-6", "--out", tmp_path, "--json")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["env"] == "blocksworld-v0" and report["seeds"] == "5-6"
    kept = Path(report["data"])
    assert kept == tmp_path / "test.jsonl" and len(kept.read_text().splitlines()) == report["collected"] == 20
    assert report["overall"]["transitions"] == 20
    planning = report["planning"]
    assert planning["solved"] == planning["total"] == 2 and planning["mean_plan_length"] > 0
    assert planning["config"]["search"]["time_limit_s"] == SEARCH_SECONDS
    assert [e["seed"] for e in planning["episodes"]] == [5, 6]
    first = planning["episodes"][0]
    assert {"solved", "steps", "plan", "divergences", "replans", "model_calls", "stopped_by", "seconds"} <= set(first)
    # the same episode planner solve plays for that seed
    code, out, err = run(capsys, "solve", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--seed", "5",
                         "--model", SHIPPED, "--json")
    assert code == 0, err
    solved = json.loads(out.strip().splitlines()[-1])
    assert solved["plan"] == first["plan"] and solved["model_calls"] == first["model_calls"]


def test_eval_model_env_without_planning(capsys):
    code, out, err = run(capsys, "eval-model", SHIPPED, *ENV, "--seeds", "7", "--no-solve", "--json")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["planning"] is None and report["data"] is None and report["overall"]["transitions"] == 10


@pytest.mark.parametrize(("args", "match"), [
    (["--data", "x.jsonl", "--env", "blocksworld-v0"], "not both"),
    ([], "not neither"),
    (["--data", "x.jsonl", "--seeds", "1-2"], "--seeds needs --env"),
    (["--data", "x.jsonl", "--no-solve"], "--solve/--no-solve needs --env"),
    (["--env", "blocksworld-v0", "--seeds", "9-3"], "runs from a lower to a higher seed"),
    (["--env", "no-such-env-v0"], "no-such-env-v0"),
])
def test_eval_model_usage_errors(capsys, args, match):
    code, _, err = run(capsys, "eval-model", SHIPPED, *args)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1


def test_eval_model_env_needs_the_model_file(capsys, tmp_path):
    code, _, err = run(capsys, "eval-model", tmp_path / "none.gguf", "--env", "blocksworld-v0")
    assert code == 2 and "model file not found" in err


def test_evaluate_planning_plays_one_bounded_episode_per_seed():
    config = DEFAULT_CONFIG.updated(search={"heuristic": "goal"}, agent={"max_steps": 40})
    report = evaluate_planning(lambda s: make(CELLS, seed=s), "unused.gguf", seeds=range(3), config=config,
                               build=lambda cfg, env: OracleWorldModel(env))  # type: ignore[arg-type]
    assert report.total == report.solved == 3 and report.errors == 0
    assert report.mean_plan_length == report.mean_steps > 0
    assert all(e.steps <= 40 and e.stopped_by == "goal" for e in report.episodes)
    assert report.to_dict()["config"]["agent"]["max_steps"] == 40


def test_evaluate_planning_counts_a_failing_seed_as_not_solved():
    def build(cfg: PlannerConfig, env):
        if cfg.search.seed == 1:
            raise ModelLoadError("seed 1 has a problem the model cannot write")
        return OracleWorldModel(env)

    report = evaluate_planning(lambda s: make(CELLS, seed=s), "unused.gguf", seeds=[0, 1],
                               config=DEFAULT_CONFIG.updated(search={"heuristic": "goal"}), build=build)
    assert (report.solved, report.total, report.errors) == (1, 2, 1)
    failed = report.episodes[1]
    assert failed.stopped_by == "error" and "cannot write" in (failed.error or "")
    assert "1 ended by an error" in report.line()


def test_an_action_the_model_does_not_know_is_scored_wrong_not_fatal(tmp_path, capsys):
    """A held-out log may hold an action the training data never showed (``planner learn`` on
    a few seeds): those transitions count as wrong, and the report says how many raised."""
    code, _, err = run(capsys, "collect", *ENV, "--seeds", "train=5", "--out", tmp_path)
    assert code == 0, err
    log = tmp_path / "train.jsonl"
    lines = log.read_text().splitlines()
    record = json.loads(lines[0])
    obj = record["objects"][0]
    lines.append(json.dumps({**record, "action": f"(jump {obj})", "applicable": False,
                             "next_state": record["state"], "step": 99}))
    log.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "eval-model", SHIPPED, "--data", log)
    assert code == 0, err
    assert "2 raised (counted wrong)" in out  # the step, and its episode rolled out through it
    assert f"all {len(lines)}" in " ".join(out.split())
