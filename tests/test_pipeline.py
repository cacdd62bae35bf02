"""Collect → train → export/quantize → evaluate, end to end on a tiny budget."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from planner.cli import main
from planner.data.collect import SPLIT_SEED_BASE, TransitionRecord, collect_blocksworld
from planner.data.fidelity import evaluate, read_records
from planner.errors import ConfigError
from planner.io import CorruptLogError, JsonlLog
from planner.world.gguf_io import read_model_info
from planner.world.oracle import OracleWorldModel

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch (the `train` extra: pip install -e '.[train]')")


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"problems": {"training": 1}}, "'training'"), ({"problems": {"train": -1}}, "-1"),
     ({"problems": {"train": 1}, "blocks": ()}, "blocks"), ({"problems": {"train": 1}, "blocks": (0,)}, "blocks")],
)
def test_collect_names_a_bad_request(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        collect_blocksworld(tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


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


@needs_torch
def test_cli_collect_train_eval(tmp_path, capsys):
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
    # Input errors: exit code 2 and one line naming the bad value.
    assert main(["eval-model", str(tmp_path / "none.gguf"), "--data", str(tmp_path / "none.jsonl")]) == 2
    assert "data file not found" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"problem": 1}\n')
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert main(["eval-model", str(tmp_path / "m.gguf"), "--data", str(tmp_path / "bad.jsonl")]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["collect", "--blocks", "x-y", "--out", str(tmp_path)]) == 2
    assert "--blocks" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["collect", "--blocks", "3", "--train-problems", "1", "--val-problems", "0",
                 "--test-problems", "0", "--out", str(tmp_path / "file")]) == 2
    assert "cannot write" in capsys.readouterr().err
    out = tmp_path / "file" / "sub"  # under a file: named before anything is collected
    assert main(["collect", "--env", "blocksworld-v0", "--seeds", "train=0-0", "--out", str(out)]) == 2
    assert f"--out: cannot write {out}: {tmp_path / 'file'} is a file" in capsys.readouterr().err.replace("\n", " ")


@needs_torch
def test_cli_train_without_data(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "no training data" in capsys.readouterr().err


@pytest.mark.skipif(HAS_TORCH, reason="PyTorch is installed")
def test_cli_train_without_torch_says_so(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "PyTorch" in capsys.readouterr().err


# -- transition logs: one reader ----------------------------------------------------------------
def _record(**changes):
    data = {"problem": "p", "domain": "blocksworld", "objects": ["a", "b"], "goal": ["(on a b)"],
            "state": ["(clear a)", "(clear b)", "(handempty)", "(ontable a)", "(ontable b)"],
            "action": "(pick-up a)", "applicable": True,
            "next_state": ["(clear b)", "(holding a)", "(ontable b)"], "reward": 0.0, "done": False,
            "episode": "p/random-0", "step": 0, "source": "random", "split": "train"}
    return TransitionRecord(**{**data, **changes})


def test_read_records_skips_a_torn_last_line_and_appends_on_a_fresh_line(tmp_path):
    path = tmp_path / "train.jsonl"
    with JsonlLog(path) as log:
        log.write(_record(step=0))
    with path.open("a") as fh:
        fh.write('{"problem": "p", "dom')  # a crash in the middle of a record
    assert [r.step for r in read_records(path)] == [0]
    with JsonlLog(path) as log:
        log.write(_record(step=1))
    assert [r.step for r in read_records(path)] == [0, 1]
    assert [r.step for r in read_records(path, limit=1)] == [0]


def test_read_records_names_the_bad_line(tmp_path):
    path = tmp_path / "train.jsonl"
    good = _record().model_dump_json()
    path.write_text(f"{good}\n{good[:-1]}, \"extra\": 1}}\n{good}\n")
    with pytest.raises(CorruptLogError, match=re.escape(f"{path}:2: not a transition record: extra")):
        read_records(path)
    path.write_text(f"{good}\n{{oops\n{good}\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: not a JSON object")):
        read_records(path)


def test_training_data_names_a_record_the_vocabulary_cannot_express():
    from planner.training.data import check_fits, encode_records
    from planner.training.errors import TrainingDataError
    from planner.world.codec import domain_vocabulary

    predicates = {"on": 2, "ontable": 1, "clear": 1, "handempty": 0, "holding": 1}
    actions = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
    vocab = domain_vocabulary(predicates, actions, 4)
    examples = encode_records([_record()], vocab, predicates, actions, 4)
    check_fits(examples, 64)
    with pytest.raises(TrainingDataError, match="more than the model's context of 8"):
        check_fits(examples, 8)
    for bad in (_record(problem="glowing", state=["(glows a)"]), _record(problem="five", objects=list("abcde")),
                _record(problem="stranger", action="(pick-up z)")):
        with pytest.raises(TrainingDataError, match=f"record 0 \\(problem '{bad.problem}'\\)"):
            encode_records([bad], vocab, predicates, actions, 4)


def test_training_prompts_are_the_runtime_prompts():
    """Training and the runtime build prompts through the codec's one layout: a training
    sequence (without goal relabelling) is the runtime prompt followed by the answer."""
    import numpy as np

    from planner.training.data import encode_records, sample_sequence
    from planner.types import Action, FactGoal, Prediction
    from planner.world.codec import FactDeltaCodec, domain_vocabulary

    predicates = {"on": 2, "ontable": 1, "clear": 1, "handempty": 0, "holding": 1}
    actions = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
    vocab = domain_vocabulary(predicates, actions, 4)
    record = _record()
    [example] = encode_records([record], vocab, predicates, actions, 4)
    tokens, answer_start = sample_sequence(example, vocab, np.random.default_rng(0), relabel=False)
    codec = FactDeltaCodec(objects=tuple(record.objects), predicates=predicates, actions=actions, max_objects=4)
    state = record.state_obj()
    prompt = codec.prefix_words(FactGoal(frozenset(record.goal)), state) + codec.suffix_words(Action(record.action))
    answer = codec.answer_words(Prediction(applicable=record.applicable, next_state=record.next_state_obj()), state)
    assert tokens[0] == vocab.bos_id
    assert vocab.decode(tokens[1:answer_start]) == prompt
    assert vocab.decode(tokens[answer_start:])[:-1] == answer[:-1]


def test_relabelled_goals_are_goal_facts_in_runtime_order_with_exact_done():
    """Hindsight goals use the predicates of the records' goals, as many facts as the problem's
    goal (one the action added among them where it added one), are listed in the order the
    runtime lists facts (``x10`` sorts before ``x2``), and ``done`` says whether they all hold
    after the action."""
    import numpy as np

    from planner.training.data import encode_records, goal_predicates_of, sample_sequence
    from planner.world.codec import FactDeltaCodec, domain_vocabulary

    objects = [f"o{k:02d}" for k in range(12)]
    predicates = {"in": 2, "hot": 1, "holding": 1}
    actions = {"take": 2}
    fixed = ["(in o01 o00)", "(in o02 o00)", "(in o03 o11)", "(in o04 o11)", "(hot o05)", "(hot o10)"]
    record = _record(objects=objects, goal=["(in o09 o11)", "(hot o09)"], state=[*fixed, "(in o09 o10)"],
                     action="(take o09 o10)", next_state=[*fixed, "(holding o09)"])
    moved = _record(objects=objects, goal=record.goal, state=record.next_state, action="(take o09 o11)",
                    next_state=[*fixed, "(in o09 o11)"])
    assert goal_predicates_of([record]) == ("hot", "in")
    vocab = domain_vocabulary(predicates, actions, 12)
    codec = FactDeltaCodec(objects=tuple(objects), predicates=predicates, actions=actions, max_objects=12)
    words = {ex_record.action: (ex, ex_record) for ex, ex_record in
             zip(encode_records([record, moved], vocab, predicates, actions, 12), [record, moved])}
    done_seen, added_seen, problem_goal = set(), 0, sorted(codec.fact_word(f) for f in record.goal)
    for draw in range(300):
        for ex, rec in words.values():
            tokens, _ = sample_sequence(ex, vocab, np.random.default_rng(draw))
            text = vocab.decode(tokens[1:])
            goal = text[1:text.index("state")]
            assert goal == sorted(goal)
            after = {codec.fact_word(f) for f in rec.next_state}
            done = text[-1] == "done"
            assert done == (set(goal) <= after)
            if goal != problem_goal:
                assert len(goal) == 2 and all(w.startswith(("in(", "hot(")) for w in goal)
            done_seen.add(done)
            added_seen += rec.action == "(take o09 o11)" and done and codec.fact_word("(in o09 o11)") in goal
    assert done_seen == {True, False}
    assert added_seen > 30  # the fact the action added is in most "done" relabellings of that step


def test_an_empty_goal_is_never_trained_as_reached():
    """Records of an environment whose goal is no conjunction of facts have an empty goal; the
    model is bound with an empty one at run time, so ``done`` is trained as never reached there
    (not as vacuously true), while relabelled goals still teach it."""
    import numpy as np

    from planner.training.data import encode_records, sample_sequence
    from planner.world.codec import domain_vocabulary

    predicates = {"on": 2, "ontable": 1, "clear": 1, "handempty": 0, "holding": 1}
    actions = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
    vocab = domain_vocabulary(predicates, actions, 4)
    [example] = encode_records([_record(goal=[])], vocab, predicates, actions, 4, goal_predicates=("holding",))
    endings = set()
    for draw in range(60):
        tokens, _ = sample_sequence(example, vocab, np.random.default_rng(draw))
        words = vocab.decode(tokens[1:])
        goal = words[1:words.index("state")]
        endings.add((bool(goal), words[-1]))
        if not goal:
            assert words[-1] == "cont"
    assert (True, "done") in endings and (False, "cont") in endings
