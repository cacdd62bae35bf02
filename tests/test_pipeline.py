"""Collect → train → export/quantize → evaluate, end to end on a tiny budget."""

from __future__ import annotations

import json

import pytest

from planner.cli import main
from planner.data.collect import SPLIT_SEED_BASE, collect_blocksworld
from planner.data.fidelity import evaluate, read_records
from planner.world.gguf_io import read_model_info
from planner.world.oracle import OracleWorldModel


def test_collect_splits_by_problem_and_records_everything(tmp_path):
    stats = collect_blocksworld(tmp_path, problems={"train": 6, "test": 3}, blocks=(3, 4))
    train, test = read_records(tmp_path / "train.jsonl"), read_records(tmp_path / "test.jsonl")
    assert stats["train"].transitions == len(train) and stats["test"].transitions == len(test)
    assert {r.problem for r in train}.isdisjoint({r.problem for r in test})
    assert all(int(r.problem.split("-")[-1]) >= SPLIT_SEED_BASE["test"] for r in test)
    assert {r.source for r in train} == {"random", "plan"}
    assert any(r.done for r in train) and any(not r.applicable for r in train)
    inapplicable = [r for r in train if not r.applicable]
    assert all(r.state == r.next_state for r in inapplicable)
    # Deterministic: the same call writes the same data.
    collect_blocksworld(tmp_path / "again", problems={"train": 6, "test": 3}, blocks=(3, 4))
    assert (tmp_path / "again" / "train.jsonl").read_text() == (tmp_path / "train.jsonl").read_text()


def test_fidelity_of_the_exact_model_is_perfect(tmp_path):
    from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
    from planner.env.pddl import PDDLEnvironment

    collect_blocksworld(tmp_path, problems={"test": 4}, blocks=(3, 5))
    records = read_records(tmp_path / "test.jsonl")
    (tmp_path / "d.pddl").write_text(DOMAIN_PDDL)

    def bind(objects, goal):
        # Rebuild the problem whose objects and goal these are, and use its simulator.
        for r in records:
            if sorted(r.objects) == sorted(objects) and frozenset(r.goal) == goal.facts:
                n, seed = r.problem.split("-")[1:]
                (tmp_path / "p.pddl").write_text(generate_problem(int(n), seed=int(seed)))
                return OracleWorldModel(PDDLEnvironment(tmp_path / "d.pddl", tmp_path / "p.pddl"))
        raise AssertionError("problem not found")

    report = evaluate(records, bind)
    assert report.overall["precondition_accuracy"] == 1.0
    assert report.overall["next_state_exact_match"] == 1.0
    assert report.overall["done_accuracy"] == 1.0
    assert report.multistep_consistency == 1.0 and report.trajectory_exact_match == 1.0
    assert "multi-step consistency 1.0000" in report.table()


def test_cli_collect_train_eval(tmp_path, capsys):
    pytest.importorskip("torch")
    data, model = tmp_path / "data", tmp_path / "model"
    assert main(["collect", "--out", str(data), "--train-problems", "8", "--val-problems", "2",
                 "--test-problems", "2", "--blocks", "3-4"]) == 0
    assert main(["train", "--data", str(data), "--out", str(model), "--steps", "6", "--dim", "32",
                 "--layers", "1", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "Q8_0 agrees with F32" in out
    info = read_model_info(model / "model-q8_0.gguf")
    assert info.codec == "fact-delta" and info.training["steps"] == 6
    assert info.training["train_problems"] == 8
    assert (model / "checkpoint.pt").exists()
    # Resuming from the checkpoint at the final step trains nothing more and still exports.
    assert main(["train", "--data", str(data), "--out", str(model), "--steps", "6", "--dim", "32",
                 "--layers", "1", "--batch-size", "8"]) == 0
    capsys.readouterr()
    assert main(["eval-model", str(model / "model-q8_0.gguf"), "--data", str(data / "test.jsonl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= report["overall"]["precondition_accuracy"] <= 1.0
    assert set(report["by_objects"]) <= {"3", "4"} and report["episodes"] > 0


def test_cli_errors_for_the_pipeline(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m")]) == 1
    assert "no training data" in capsys.readouterr().err
    assert main(["eval-model", str(tmp_path / "none.gguf"), "--data", str(tmp_path / "none.jsonl")]) == 1
    assert "data file not found" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"problem": 1}\n')
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert main(["eval-model", str(tmp_path / "m.gguf"), "--data", str(tmp_path / "bad.jsonl")]) == 1
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["collect", "--blocks", "x-y", "--out", str(tmp_path)]) == 1
    assert "--blocks" in capsys.readouterr().err
