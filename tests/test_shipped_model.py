"""The shipped Blocksworld world model, run by llama.cpp: real predictions, end to end."""

from __future__ import annotations

import json
import random

import pytest

from planner.cli import main
from planner.data.collect import SPLIT_SEED_BASE
from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.world.factory import default_model_path
from planner.world.gguf_io import read_model_info
from planner.world.llama import LlamaWorldModel

MODEL = default_model_path("blocksworld")


def test_shipped_model_card_facts():
    info = read_model_info(MODEL)
    assert MODEL.stat().st_size <= 2 * 1024 * 1024
    assert info.codec == "fact-delta" and info.domain == "blocksworld" and info.max_objects == 8
    assert info.training["train_problems"] > 0 and info.training["train_seconds"] <= 30 * 60


@pytest.mark.parametrize("n", [3, 5, 7])
def test_predictions_match_the_simulator(tmp_path, n):
    env = PDDLEnvironment(*write_problem(tmp_path, n, seed=SPLIT_SEED_BASE["test"] + 900))
    model = LlamaWorldModel.for_environment(MODEL, env, on_invalid="reject")
    rng = random.Random(n)
    right = total = 0
    for state in env.random_walk(env.state, 3, rng):
        actions = list(env.candidate_actions(state))
        for action, pred in zip(actions, model.predict_many(state, actions)):
            truth = env.simulate(state, action)
            right += pred.applicable == truth.applicable and pred.next_state == truth.next_state
            total += 1
            assert 0.0 <= pred.confidence <= 1.0  # 0.0 marks an invalid answer read as "not applicable"
    assert right / total >= 0.99, f"{right}/{total}"


def test_batched_prefix_and_naive_agree_and_prefix_saves_tokens(tmp_path):
    env = PDDLEnvironment(*write_problem(tmp_path, 6, seed=SPLIT_SEED_BASE["test"] + 901))
    states = env.random_walk(env.state, 2, random.Random(0))
    outcomes, tokens = {}, {}
    for mode in ("naive", "prefix", "batched"):
        model = LlamaWorldModel.for_environment(MODEL, env, mode=mode, on_invalid="reject")
        preds = []
        for state in states:
            preds += model.predict_many(state, list(env.candidate_actions(state)))
        outcomes[mode] = [(p.applicable, p.next_state, p.done, p.raw) for p in preds]
        tokens[mode] = model.stats.prompt_tokens / model.stats.predictions
        model.close()
    assert outcomes["naive"] == outcomes["prefix"] == outcomes["batched"]
    assert tokens["naive"] / tokens["prefix"] >= 5
    assert tokens["naive"] / tokens["batched"] >= 5


def test_demo_solves_with_the_shipped_model(tmp_path, capsys):
    assert main(["demo", "--blocks", "4", "--seed", "3", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["solved"] and summary["model"] == "default" and summary["model_calls"] > 0


def test_solve_uses_the_default_model(tmp_path, capsys):
    domain, problem = write_problem(tmp_path, 5, seed=SPLIT_SEED_BASE["test"] + 902)
    optimal = len(PDDLEnvironment(domain, problem).optimal_plan() or [])
    assert main(["solve", str(domain), str(problem), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["solved"] and summary["prompt_tokens"] > 0
    assert summary["steps"] <= round(optimal * 1.5)
