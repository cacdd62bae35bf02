"""Action verification: irreversible actions are imagined again and executed only when the
model is confident of the imagined outcome."""

from __future__ import annotations

import json

import pytest

from planner.agent import Agent
from planner.cli import main
from planner.config import PlannerConfig
from planner.errors import ConfigError
from planner.io import read_jsonl
from planner.world.factory import default_model_path, load_gguf_world_model
from planner.world.oracle import OracleWorldModel

MODEL = default_model_path("blocksworld")


def verifying(*patterns: str, confidence: float = 0.9) -> PlannerConfig:
    return PlannerConfig().updated(agent={"verify": patterns, "verify_confidence": confidence})


def test_confident_matching_actions_are_verified_then_executed(bw_env, tmp_path):
    env = bw_env(4, 5)
    log = tmp_path / "ep.jsonl"
    result = Agent(env, OracleWorldModel(env), config=verifying(r"^\(stack "), log_path=log).run()
    stacks = [s for s in result.steps if s.action.name.startswith("(stack ")]
    assert result.solved and stacks and result.verified == len(stacks) and result.refused == 0
    records = [r for r in read_jsonl(log) if r["event"] == "verify"]
    assert [r["data"]["action"] for r in records] == [s.action.name for s in stacks]
    assert all(r["data"]["allowed"] and r["data"]["confidence"] == 1.0 for r in records)
    end = [r for r in read_jsonl(log) if r["event"] == "end"][-1]["data"]
    assert (end["verified"], end["refused"]) == (len(stacks), 0)


def test_without_patterns_nothing_is_asked_twice(bw_env):
    env = bw_env(4, 5)
    model = OracleWorldModel(env)
    result = Agent(env, model).run()
    assert result.solved and result.verified == result.refused == 0


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped Blocksworld model is missing")
def test_an_unconfident_model_never_executes_a_matching_action(bw_env, tmp_path):
    """With the shipped GGUF and a threshold no llama.cpp answer reaches (confidence 1.0), every
    planned stack is refused at its state and planned around; none is executed."""
    env = bw_env(4, 5)
    model = load_gguf_world_model(env, path=MODEL)
    try:
        config = verifying(r"^\(stack ", confidence=1.0).updated(agent={"max_replans": 6})
        log = tmp_path / "ep.jsonl"
        result = Agent(env, model, config=config, log_path=log).run()
    finally:
        model.close()  # type: ignore[attr-defined]
    assert result.refused >= 1 and result.verified == 0
    assert not any(s.action.name.startswith("(stack ") for s in result.steps)
    refusals = [r["data"] for r in read_jsonl(log) if r["event"] == "verify"]
    assert refusals and not any(r["allowed"] for r in refusals)
    assert all(r["confidence"] < 1.0 for r in refusals)
    # A refused (state, action) is not planned again: each refusal names another pair.
    pairs = [(r["index"], r["action"]) for r in refusals]
    assert len(pairs) == result.refused


def test_verify_patterns_are_checked(bw_files, capsys):
    with pytest.raises(ConfigError, match=r"verify pattern '\(' is not a regular expression"):
        verifying("(")
    domain, problem = bw_files(3, 0)
    code = main(["solve", str(domain), str(problem), "--oracle", "--verify", "[unclosed"])
    assert code == 2 and "verify pattern '[unclosed'" in capsys.readouterr().err


def test_solve_verifies_from_the_command_line(bw_files, capsys):
    domain, problem = bw_files(4, 5)
    code = main(["solve", str(domain), str(problem), "--oracle", "--verify", "stack", "--verify", "put-down",
                 "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["solved"] and summary["verified"] >= 1 and summary["refused"] == 0
    matching = [a for a in summary["plan"] if "stack" in a or "put-down" in a]
    assert summary["verified"] == len(matching)

