"""The shipped Blocksworld world model, run by llama.cpp: real predictions, end to end."""

from __future__ import annotations

import json
import random

import pytest

from planner.cli import main
from planner.data.collect import SPLIT_SEED_BASE
from planner.env.blocksworld import DOMAIN_PDDL, generate_problem, write_problem
from planner.env.pddl import PDDLEnvironment, parse_domain
from planner.world.factory import default_model_path, package_models_dir, recorded_signature
from planner.world.gguf_io import KEY_SIGNATURE, read_model_info
from planner.world.llama import LlamaWorldModel
from planner.world.signature import domain_signature, rewrite_with_metadata, stamp_signature
from tests.test_signature import FOUR_OPS_DOMAIN

MODEL = default_model_path("blocksworld")
BLOCKSWORLD = domain_signature(parse_domain(DOMAIN_PDDL))


def test_shipped_model_card_facts():
    info = read_model_info(MODEL)
    assert MODEL.stat().st_size <= 2 * 1024 * 1024
    assert info.codec == "fact-delta" and info.domain == "blocksworld" and info.max_objects == 8
    assert info.training["train_problems"] > 0 and info.training["train_seconds"] <= 45 * 60  # CPU-trainable


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


# -- the recorded domain signature -----------------------------------------------------------


def test_shipped_model_travels_in_the_package_and_records_its_domain():
    assert package_models_dir() / "blocksworld-q8_0.gguf" == MODEL
    assert (package_models_dir() / "README.md").is_file()
    assert recorded_signature(read_model_info(MODEL)) == BLOCKSWORLD


def test_stamping_the_shipped_model_again_gives_the_same_file(tmp_path):
    again = stamp_signature(MODEL, BLOCKSWORLD, out=tmp_path / "again.gguf")
    assert again.read_bytes() == MODEL.read_bytes()


def test_a_rewritten_model_keeps_its_q8_0_tensors_and_predictions(tmp_path):
    import gguf

    other = rewrite_with_metadata(MODEL, tmp_path / "other.gguf", key=KEY_SIGNATURE, value='{"version": 1}')
    before, after = gguf.GGUFReader(str(MODEL)), gguf.GGUFReader(str(other))
    assert {t.tensor_type.name for t in before.tensors} == {"Q8_0", "F32"}
    assert [(t.name, t.tensor_type, t.data.tobytes()) for t in before.tensors] == [
        (t.name, t.tensor_type, t.data.tobytes()) for t in after.tensors]
    env = PDDLEnvironment(*write_problem(tmp_path, 5, seed=SPLIT_SEED_BASE["test"] + 903))
    states = env.random_walk(env.state, 3, random.Random(5))
    answers = []
    for path in (MODEL, other):
        model = LlamaWorldModel.for_environment(path, env, on_invalid="reject")
        answers.append([(p.applicable, p.next_state, p.done, p.raw)
                        for s in states for p in model.predict_many(s, list(env.candidate_actions(s)))])
        model.close()
    assert answers[0] == answers[1] and len(answers[0]) == 4 * 60


def _four_ops_problem(tmp_path, text=FOUR_OPS_DOMAIN):
    domain, problem = tmp_path / "domain.pddl", tmp_path / "p.pddl"
    domain.write_text(text)
    name = parse_domain(text).name
    problem.write_text(generate_problem(4, seed=SPLIT_SEED_BASE["test"] + 904).replace(
        "(:domain blocksworld)", f"(:domain {name})"))
    return domain, problem


def test_solve_uses_the_shipped_model_for_blocksworld_under_another_name(tmp_path, capsys):
    domain, problem = _four_ops_problem(tmp_path)
    assert main(["solve", str(domain), str(problem), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["solved"] and summary["model"] == "default" and summary["model_calls"] > 0


def test_a_domain_that_differs_gets_the_differences(tmp_path, capsys):
    changed = FOUR_OPS_DOMAIN.replace("(and (clear ?underob) (holding ?ob))", "(holding ?ob)")
    domain, problem = _four_ops_problem(tmp_path, changed)
    assert main(["solve", str(domain), str(problem), "--json"]) != 0
    err = capsys.readouterr().err
    assert "blocksworld-q8_0.gguf" in err and "operator stack: precondition clear(?1) missing" in err
    assert main(["solve", str(domain), str(problem), "--model", str(MODEL), "--json"]) != 0
    err = capsys.readouterr().err
    assert "blocksworld-4ops" in err and "operator stack: precondition clear(?1) missing" in err
