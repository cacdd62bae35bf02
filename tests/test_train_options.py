"""Training where the user chooses: the device, batches built by worker processes, a time
budget instead of a step count, and a schema learned from the data (``planner train``)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.data.collect import collect_blocksworld

HAS_TORCH = importlib.util.find_spec("torch") is not None
pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch (the `train` extra: pip install -e '.[train]')")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    collect_blocksworld(folder, problems={"train": 3, "val": 1, "test": 0}, blocks=(3,), seed=0)
    return folder


def _examples(data):
    from planner.env.blocksworld import DOMAIN_PDDL
    from planner.env.pddl import domain_schemas
    from planner.training.data import encode_records, load_records
    from planner.world.codec import domain_vocabulary

    _, predicates, actions = domain_schemas(DOMAIN_PDDL, source="blocksworld")
    vocab = domain_vocabulary(predicates, actions, 8)
    return encode_records(load_records(data / "train.jsonl"), vocab, predicates, actions, 8), vocab


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", "CPU"])
def test_a_device_that_is_no_device_is_named(device):
    from planner.errors import ConfigError
    from planner.training.train import TrainConfig

    with pytest.raises(ConfigError, match=f"device must be cpu, cuda, cuda:N or auto, got {device!r}"):
        TrainConfig(device=device)


@pytest.mark.parametrize("workers", [-1, 65, 1.5, True])
def test_loader_workers_out_of_range_are_named(workers):
    from planner.errors import ConfigError
    from planner.training.train import TrainConfig

    with pytest.raises(ConfigError, match="loader_workers"):
        TrainConfig(loader_workers=workers)


def test_a_missing_gpu_is_a_clear_error_and_auto_falls_back_to_the_cpu():
    import torch

    from planner.errors import ConfigError
    from planner.training.train import resolve_device

    assert resolve_device("cpu").type == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
        with pytest.raises(ConfigError, match="'cuda:99'"):
            resolve_device("cuda:99")
    else:
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ConfigError, match=r"'cuda'.*--device cpu"):
            resolve_device("cuda")


@pytest.mark.parametrize("shuffled", [False, True])
def test_worker_processes_build_the_same_batches_in_the_same_order(data, shuffled):
    from planner.training.data import ObjectShuffle, word_arguments
    from planner.training.train import batches

    examples, vocab = _examples(data)
    shuffle = ObjectShuffle.of(vocab, 8, 0.5) if shuffled else None
    arguments = word_arguments(vocab, 8) if shuffled else None  # and in the codec's version 2
    here = list(batches(examples, vocab, seed=3, first=5, until=lambda: 12, batch_size=8, shuffle=shuffle,
                        arguments=arguments))
    ahead = list(batches(examples, vocab, seed=3, first=5, until=lambda: 12, batch_size=8, workers=2,
                         shuffle=shuffle, arguments=arguments))
    assert len(here) == len(ahead) == 7
    for (t1, g1), (t2, g2) in zip(here, ahead, strict=True):
        assert np.array_equal(t1.numpy(), t2.numpy()) and np.array_equal(g1.numpy(), g2.numpy())
    if shuffled:  # and the renaming did happen
        plain = list(batches(examples, vocab, seed=3, first=5, until=lambda: 12, batch_size=8))
        assert any(not np.array_equal(a.numpy(), b.numpy()) for (a, _), (b, _) in zip(here, plain, strict=True))


def test_the_end_may_move_while_batches_are_consumed(data):
    from planner.training.train import batches

    examples, vocab = _examples(data)
    for workers in (0, 2):
        end = [3]

        def until(end: list[int] = end) -> int:
            return end[0]

        seen = 0
        for _ in batches(examples, vocab, seed=0, first=0, until=until, batch_size=4, workers=workers):
            seen += 1
            if seen == 3:
                end[0] = 7  # a time budget sets the total once the rate is known
        assert seen == 7


def _weights(folder):
    import gguf

    reader = gguf.GGUFReader(str(folder / "model-f32.gguf"))
    return {t.name: np.array(t.data) for t in reader.tensors}


def test_a_time_budget_chooses_the_steps_and_steps_repeat_the_run(data, tmp_path, capsys):
    args = ["train", "--data", str(data), "--batch-size", "4", "--dim", "32", "--layers", "1", "--warmup", "10",
            "--no-quantize"]
    assert main([*args, "--out", str(tmp_path / "budget"), "--minutes", "0.05"]) == 0
    summary = json.loads((tmp_path / "budget" / "train-summary.json").read_text())
    assert summary["steps"] >= 10 and summary["schedule_steps"] == summary["steps"]
    assert summary["device"] == "cpu"
    assert main([*args, "--out", str(tmp_path / "steps"), "--steps", str(summary["steps"])]) == 0
    a, b = _weights(tmp_path / "budget"), _weights(tmp_path / "steps")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # Run again: the budget's schedule was finished, so nothing is trained and the model stays.
    assert main([*args, "--out", str(tmp_path / "budget"), "--minutes", "0.05"]) == 0
    c = _weights(tmp_path / "budget")
    assert all(np.array_equal(a[k], c[k]) for k in a)
    assert json.loads((tmp_path / "budget" / "train-summary.json").read_text())["history"] == summary["history"]


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--steps", "5", "--minutes", "1"], "--steps .*--minutes.*not both"),
     (["--minutes", "0"], "--minutes must be a number > 0 .*got 0.0"),
     (["--minutes", "1", "--warmup", "9"], "warm-up of at least 10 steps, got 9"),
     (["--minutes", "1e9"], "at most 10080"),
     (["--device", "tpu"], "got 'tpu'"),
     (["--infer-schema", "--domain", "d.pddl"], "--infer-schema.*--domain d.pddl"),
     (["--loader-workers", "65"], "--loader-workers must be a whole number in 0..64, got 65"),
     (["--balance", "nan"], "--balance must be a number in 0..1, got nan"),
     (["--warmup", "-1"], "--warmup must be >= 0, got -1"),
     (["--precision", "fp16"], "--precision must be one of auto, fp32, tf32, bf16, got 'fp16'"),
     (["--precision", "tf32"], "precision 'tf32' needs a CUDA device, not 'cpu'"),
     (["--min-lr", "-1"], "--min-lr must be a finite number >= 0, got -1.0"),
     (["--min-lr", "0.01"], r"--min-lr must be at most --lr \(0.003\).*got 0.01"),
     (["--shuffle-objects", "1.5"], "--shuffle-objects must be a number in 0..1, got 1.5"),
     (["--shuffle-objects", "nan"], "--shuffle-objects must be a number in 0..1, got nan"),
     (["--focus", "stack"], "--focus must look like ACTION=FACTOR .*got 'stack'"),
     (["--focus", "stack=x"], "--focus must look like ACTION=FACTOR .*got 'stack=x'"),
     (["--focus", "stack=\uff12"], "--focus must look like ACTION=FACTOR .*got 'stack=\uff12'"),
     (["--focus", "stack=1_0"], "--focus must look like ACTION=FACTOR .*got 'stack=1_0'"),
     (["--codec-version", "4"], r"--codec-version must be one of \[1, 2, 3\], got 4"),
     (["--focus", "stack=0"], "--focus factor of 'stack' must be a finite number > 0, got 0\\s*$"),
     (["--focus", "stack=1e400"], "--focus factor of 'stack' must be a finite number > 0, got 1e400"),
     (["--focus", "stack=-1e-400"], "--focus factor of 'stack' must be a finite number > 0, got -1e-400"),
     (["--focus", "stack=inf"], "--focus factor of 'stack' must be a finite number > 0, got inf"),
     (["--focus", "stack=2", "--focus", "stack=3"], "--focus names 'stack' twice"),
     (["--focus", "fly=2", "--steps", "1"], "--focus names action 'fly', which the model does not have .*pick-up")],
)
def test_bad_training_requests_are_named(data, tmp_path, capsys, extra, match):
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--no-quantize", *extra])
    assert code == 2
    assert re.search(match, capsys.readouterr().err.replace("\n", " "))


def test_the_schema_and_shape_can_come_from_the_data(data, tmp_path, capsys):
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--infer-schema", "--steps", "3",
                 "--batch-size", "2", "--no-quantize"]) == 0
    from planner.world.gguf_io import read_model_info

    info = read_model_info(tmp_path / "m" / "model-f32.gguf")
    assert info.domain == "blocksworld"
    assert set(info.actions) == {"pick-up", "put-down", "stack", "unstack"}
    assert info.max_objects == 3  # the most objects a record has
    assert "not quantized" in capsys.readouterr().out


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=6), balance=st.floats(0, 1))
def test_each_group_is_drawn_in_proportion_to_its_size_to_the_balance(sizes, balance):
    from planner.training.train import sampling_weights

    groups = [(f"a{g}", g % 2 == 0) for g, n in enumerate(sizes) for _ in range(n)]
    p = sampling_weights(groups, balance)
    if balance == 1:
        assert p is None
        return
    assert p is not None and np.isclose(p.sum(), 1.0) and (p > 0).all()
    totals = np.array([p[[i for i, g in enumerate(groups) if g == (f"a{k}", k % 2 == 0)]].sum()
                       for k in range(len(sizes))])
    want = np.array(sizes, dtype=float) ** balance
    assert np.allclose(totals, want / want.sum())


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=6), balance=st.floats(0, 1),
       factor=st.floats(0.1, 10))
def test_a_focused_action_is_drawn_factor_times_as_often_as_balance_alone_says(sizes, balance, factor):
    from planner.training.train import sampling_weights

    groups = [(f"a{g // 2}", g % 2 == 0) for g, n in enumerate(sizes) for _ in range(n)]
    p = sampling_weights(groups, balance, {"a0": factor})
    assert p is not None and np.isclose(p.sum(), 1.0) and (p > 0).all()
    plain = sampling_weights(groups, balance, {"a0": 1.0})  # a factor of 1 is balance alone
    assert plain is not None
    focused = np.array([g[0] == "a0" for g in groups])
    # the odds of a focused record against any other one grow by the factor exactly
    ratio = (p[focused].sum() / p[~focused].sum()) / (plain[focused].sum() / plain[~focused].sum()) \
        if (~focused).any() else factor
    assert np.isclose(ratio, factor, rtol=1e-4)


@pytest.mark.parametrize("factor", [1e307, 1.7e308, 5e-324])
def test_extreme_focus_factors_still_give_probabilities(factor):
    """Finite factors > 0 are valid however large or small: the weights neither overflow their
    sum nor all underflow to 0."""
    from planner.training.train import sampling_weights

    groups = [("a", True)] * 1000 + [("b", False)] * 10
    p = sampling_weights(groups, 0.5, {"a": factor, "b": factor} if factor < 1 else {"a": factor})
    assert p is not None and np.isfinite(p).all() and np.isclose(p.sum(), 1.0)
    if factor < 1:  # the same factor on every action: balance alone
        assert np.allclose(p, sampling_weights(groups, 0.5))
    else:  # "b" as good as never
        assert p[-10:].sum() < 1e-300


def test_focus_reaches_the_draws_and_is_refused_before_the_data_is_read(data, tmp_path, monkeypatch, capsys):
    import planner.training.train as training

    drawn = []
    real = training.batches

    def spy(*args, **kwargs):
        drawn.append(kwargs["p"])
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "batches", spy)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--no-quantize", "--steps", "1",
                 "--batch-size", "2", "--dim", "32", "--layers", "1", "--balance", "1", "--focus", "stack=3"]) == 0
    p = drawn[0]
    assert p is not None and np.isclose(p.sum(), 1.0)
    assert np.allclose(sorted(set(np.round(p / p.min(), 6))), [1.0, 3.0])  # stack records: 3 × the others
    # an unknown action is named before a (here unreadable) log is read
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train.jsonl").write_text("{not json\n")
    capsys.readouterr()
    assert main(["train", "--data", str(broken), "--out", str(tmp_path / "b"), "--no-quantize", "--steps", "1",
                 "--focus", "fly=2"]) == 2
    assert "--focus names action 'fly'" in capsys.readouterr().err.replace("\n", " ")
    # an action the model has but no record of the data has: it would change nothing
    only_stacks = tmp_path / "stacks"
    only_stacks.mkdir()
    lines = [line for line in (data / "train.jsonl").read_text().splitlines() if '"(pick-up ' not in line]
    (only_stacks / "train.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["train", "--data", str(only_stacks), "--out", str(tmp_path / "c"), "--no-quantize", "--steps", "1",
                 "--focus", "pick-up=2"]) == 2
    assert re.search(r"--focus names action 'pick-up', which no record of .*train\.jsonl has",
                     capsys.readouterr().err.replace("\n", " "))


@pytest.mark.parametrize("version", [0, 4, True, 2.0])
def test_a_codec_version_training_cannot_write_is_named(version):
    from planner.errors import ConfigError
    from planner.training.train import TrainConfig

    with pytest.raises(ConfigError, match=f"codec_version must be one of \\[1, 2, 3\\], got {version!r}"):
        TrainConfig(codec_version=version)


def test_a_model_trained_in_codec_version_2_says_so_and_runs_in_it(data, tmp_path, capsys, monkeypatch):
    """``--codec-version 2``: the batches carry the action's arguments' facts, the model file and
    the summary record version 2, llama.cpp runs it with version 2's prompts, the checkpoint
    goes on only in the version it was trained in, and a run from the model keeps its version."""
    import planner.training.train as training
    from planner.env.blocksworld import write_problem
    from planner.env.pddl import PDDLEnvironment
    from planner.world.codec import ACTION, ARROW
    from planner.world.gguf_io import read_model_info
    from planner.world.llama import LlamaWorldModel

    trained = []
    real = training.make_batch

    def spy(*args, **kwargs):
        tokens, targets = real(*args, **kwargs)
        trained.append((args[1], tokens))
        return tokens, targets

    monkeypatch.setattr(training, "make_batch", spy)

    def between_action_and_arrow():
        """Tokens between each trained sequence's action word and ``=>``."""
        vocab, tokens = trained[-1]
        rows = [vocab.decode([t for t in row.tolist() if t != vocab.eos_id]) for row in tokens]
        return [row[row.index(ACTION) + 2:row.index(ARROW)] for row in rows]

    out = tmp_path / "m"
    args = ["train", "--data", str(data), "--out", str(out), "--no-quantize", "--batch-size", "4", "--dim", "32",
            "--layers", "1", "--warmup", "5", "--lr", "1e-2"]
    assert main([*args, "--steps", "30", "--codec-version", "2"]) == 0, capsys.readouterr().err
    assert all(between_action_and_arrow())  # every blocksworld action names a block some fact names
    summary = json.loads((out / "train-summary.json").read_text())
    assert summary["codec_version"] == 2 and summary["history"][-1]["val_token_acc"] > 0.3
    assert read_model_info(out / "model-f32.gguf").codec_version == 2
    env = PDDLEnvironment(*write_problem(tmp_path / "p", 3, seed=0))
    model = LlamaWorldModel.for_environment(out / "model-f32.gguf", env, on_invalid="reject")
    try:
        assert model.codec.version == 2
        action = env.candidate_actions(env.state)[0]
        assert len(model.codec.suffix_words(action, env.state)) > 3
        model.predict(env.state, action)
    finally:
        model.close()
    capsys.readouterr()
    assert main([*args, "--steps", "40", "--codec-version", "1"]) == 2
    assert "trained with --codec-version 2, this run asks for --codec-version 1" in \
        capsys.readouterr().err.replace("\n", " ")
    assert main([*args, "--steps", "32"]) == 0  # going on without the option: in the checkpoint's version
    assert read_model_info(out / "model-f32.gguf").codec_version == 2 and all(between_action_and_arrow())
    assert main([*args, "--steps", "30", "--codec-version", "4"]) == 2
    assert "--codec-version must be one of [1, 2, 3], got 4" in capsys.readouterr().err.replace("\n", " ")
    # going on from the model: its version unless told otherwise
    again = ["train", "--data", str(data), "--no-quantize", "--batch-size", "4", "--steps", "2",
             "--init", str(out / "model-f32.gguf")]
    assert main([*again, "--out", str(tmp_path / "b")]) == 0
    assert read_model_info(tmp_path / "b" / "model-f32.gguf").codec_version == 2 and all(between_action_and_arrow())
    assert main([*again, "--out", str(tmp_path / "c"), "--codec-version", "1"]) == 0
    assert read_model_info(tmp_path / "c" / "model-f32.gguf").codec_version == 1
    assert not any(between_action_and_arrow())
    # from the version 2 model into version 3: facts after the action, fewer of them
    assert main([*again, "--out", str(tmp_path / "e"), "--codec-version", "3"]) == 0
    assert read_model_info(tmp_path / "e" / "model-f32.gguf").codec_version == 3 and all(between_action_and_arrow())
    # a model of a version this project does not run is no start either
    from tests.conftest import build_tiny_gguf

    v4 = build_tiny_gguf(tmp_path / "v4.gguf", codec_version=4)
    capsys.readouterr()
    assert main([*again[:-1], str(v4), "--out", str(tmp_path / "d")]) == 2
    assert re.search(r"cannot start from .*v4\.gguf: .*version 4", capsys.readouterr().err.replace("\n", " "))
    # the batches of the three versions differ only by the facts after the action: 3 writes
    # a part of what 2 writes
    examples, vocab = _examples(data)
    from planner.training.data import suffix_arguments
    from tests.conftest import BW_PREDICATES

    one, two, three = (training.make_batch(examples, vocab, np.random.default_rng(0), 8, relabel=False,
                                           arguments=suffix_arguments(vocab, 8, v, BW_PREDICATES))[0]
                       for v in (1, 2, 3))
    assert (two != vocab.eos_id).sum() > (three != vocab.eos_id).sum() > (one != vocab.eos_id).sum()


def test_a_schema_naming_a_predicate_and_an_action_alike_is_refused_before_training(data, tmp_path):
    """One token would stand for both (in version 3 a fact's first argument counts, an action's
    all): named before any step, not at export."""
    from planner.env.blocksworld import DOMAIN_PDDL
    from planner.env.pddl import domain_schemas
    from planner.training.errors import TrainingDataError
    from planner.training.train import TrainConfig, train

    _, predicates, actions = domain_schemas(DOMAIN_PDDL, source="blocksworld")
    with pytest.raises(TrainingDataError, match=r"predicates and actions both name \['stack'\]"):
        train(train_path=data / "train.jsonl", val_path=None, out_dir=tmp_path / "d",
              predicates={**predicates, "stack": 2}, actions=actions, domain="blocksworld",
              config=TrainConfig(steps=1, batch_size=2, codec_version=3))
    assert not (tmp_path / "d" / "checkpoint.pt").exists()


def test_training_from_a_model_needs_no_llama_cpp(data, tmp_path):
    """A GPU machine often has PyTorch and not llama.cpp: going on from a model and writing the
    float GGUF (--no-quantize) must not import it."""
    import subprocess
    import sys

    assert main(["train", "--data", str(data), "--batch-size", "4", "--no-quantize", "--out", str(tmp_path / "a"),
                 "--dim", "32", "--layers", "1", "--steps", "2"]) == 0
    blocked = tmp_path / "blocked" / "llama_cpp"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'llama_cpp'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked.parent), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "planner", "train", "--data", str(data), "--batch-size", "4",
                           "--no-quantize", "--out", str(tmp_path / "b"), "--init",
                           str(tmp_path / "a" / "model-f32.gguf"), "--steps", "2"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b" / "model-f32.gguf").is_file()


@pytest.mark.parametrize("balance", [-0.1, 1.5, float("nan"), True])
def test_a_balance_out_of_range_is_named(balance):
    from planner.errors import ConfigError
    from planner.training.train import TrainConfig

    with pytest.raises(ConfigError, match=r"balance must be a number in 0\.\.1"):
        TrainConfig(balance=balance)


def test_training_can_start_from_a_models_weights(data, tmp_path, capsys):
    args = ["--data", str(data), "--batch-size", "4", "--no-quantize"]
    assert main(["train", *args, "--out", str(tmp_path / "a"), "--dim", "32", "--layers", "1", "--steps", "4"]) == 0
    start = tmp_path / "a" / "model-f32.gguf"
    # No steps: the exported model is the one it started from, weight for weight.
    assert main(["train", *args, "--out", str(tmp_path / "b"), "--init", str(start), "--steps", "0"]) == 0
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # Some steps with rebalanced draws: the run goes on from there and says so.
    assert main(["train", *args, "--out", str(tmp_path / "c"), "--init", str(start), "--steps", "3",
                 "--balance", "0.5", "--focus", "stack=3"]) == 0
    summary = json.loads((tmp_path / "c" / "train-summary.json").read_text())
    assert summary["init"] == str(start) and summary["balance"] == 0.5 and summary["embeddings"] == "free"
    assert summary["focus"] == {"stack": 3.0}
    c = _weights(tmp_path / "c")
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_a_model_that_does_not_fit_is_refused_before_training(data, tmp_path, capsys):
    args = ["--data", str(data), "--batch-size", "4", "--no-quantize", "--steps", "1"]
    assert main(["train", *args, "--out", str(tmp_path / "a"), "--dim", "32", "--layers", "1"]) == 0
    start = str(tmp_path / "a" / "model-f32.gguf")
    capsys.readouterr()
    assert main(["train", *args, "--out", str(tmp_path / "b"), "--init", start, "--dim", "64"]) == 2
    assert "--dim cannot be given with it" in capsys.readouterr().err.replace("\n", " ")
    assert main(["train", *args, "--out", str(tmp_path / "a"), "--init", start]) == 2
    assert "holds the checkpoint of another one" in capsys.readouterr().err.replace("\n", " ")
    # A model of more objects has another vocabulary than this domain's over 8 objects.
    assert main(["train", *args, "--out", str(tmp_path / "c"), "--dim", "32", "--layers", "1",
                 "--max-objects", "9"]) == 0
    other = str(tmp_path / "c" / "model-f32.gguf")
    from planner.env.blocksworld import DOMAIN_PDDL
    from planner.env.pddl import domain_schemas
    from planner.errors import ConfigError
    from planner.training.train import TrainConfig, train
    from planner.world.gguf_io import LlamaShape

    _, predicates, actions = domain_schemas(DOMAIN_PDDL, source="blocksworld")
    capsys.readouterr()
    with pytest.raises(ConfigError, match=r"cannot start from .* tokens"):
        train(train_path=data / "train.jsonl", val_path=None, out_dir=tmp_path / "d", predicates=predicates,
              actions=actions, domain="blocksworld",
              config=TrainConfig(steps=1, batch_size=2, shape=LlamaShape(dim=32, n_layers=1, n_heads=1, ffn_dim=128),
                                 max_objects=8),
              init=other)
    assert main(["train", *args, "--out", str(tmp_path / "e"), "--init", str(data / "train.jsonl")]) == 2
    assert "not a GGUF file" in capsys.readouterr().err.replace("\n", " ")


def test_a_budget_cannot_resume_a_run_of_a_number_of_steps(data, tmp_path, capsys):
    args = ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--batch-size", "2", "--dim", "32",
            "--layers", "1", "--no-quantize"]
    assert main([*args, "--steps", "2"]) == 0
    capsys.readouterr()
    assert main([*args, "--minutes", "0.05"]) == 2
    assert "trained to a number of steps, not a time budget" in capsys.readouterr().err.replace("\n", " ")


def test_not_quantizing_removes_the_quantized_model_of_an_earlier_run(data, tmp_path, capsys):
    args = ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--batch-size", "2", "--dim", "32",
            "--layers", "1"]
    assert main([*args, "--steps", "2"]) == 0
    assert (tmp_path / "m" / "model-q8_0.gguf").exists()
    assert main([*args, "--steps", "3", "--fresh", "--no-quantize"]) == 0
    assert not (tmp_path / "m" / "model-q8_0.gguf").exists()
    assert not (tmp_path / "m" / "quantize-report.json").exists()


def test_a_quantization_cut_short_leaves_no_quantized_model_of_an_earlier_run(data, tmp_path, capsys, monkeypatch):
    """Ctrl-C while the new model is quantized: the new F32 model stays, and no Q8_0 file or
    report of the run before sits beside it as if it were this one's."""
    import planner.training.export as export

    args = ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--batch-size", "2", "--dim", "32",
            "--layers", "1"]
    assert main([*args, "--steps", "2"]) == 0
    assert (tmp_path / "m" / "model-q8_0.gguf").exists()
    before = _weights(tmp_path / "m")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "finish_model", interrupted)
    assert main([*args, "--steps", "3", "--fresh"]) == 130
    assert not (tmp_path / "m" / "model-q8_0.gguf").exists()
    assert not (tmp_path / "m" / "quantize-report.json").exists()
    after = _weights(tmp_path / "m")
    assert not all(np.array_equal(before[k], after[k]) for k in before)
    # a folder where the quantized model goes: named, not a traceback
    (tmp_path / "m" / "model-q8_0.gguf").mkdir()
    capsys.readouterr()
    assert main([*args, "--steps", "3", "--fresh", "--no-quantize"]) == 2
    assert re.search(r"cannot replace .*model-q8_0\.gguf with the new model's: Is a directory",
                     capsys.readouterr().err.replace("\n", " "))


def test_a_run_from_a_model_is_quantized_by_the_same_command_again(data, tmp_path, capsys):
    args = ["--data", str(data), "--batch-size", "2"]
    assert main(["train", *args, "--out", str(tmp_path / "a"), "--dim", "32", "--layers", "1", "--steps", "2",
                 "--no-quantize"]) == 0
    again = ["train", *args, "--out", str(tmp_path / "b"), "--init", str(tmp_path / "a" / "model-f32.gguf"),
             "--steps", "2"]
    assert main([*again, "--no-quantize"]) == 0
    before = _weights(tmp_path / "b")
    assert main(again) == 0  # resumes its own finished run: exports and quantizes, no more steps
    assert (tmp_path / "b" / "model-q8_0.gguf").exists()
    after = _weights(tmp_path / "b")
    assert all(np.array_equal(before[k], after[k]) for k in before)
    report = json.loads((tmp_path / "b" / "quantize-report.json").read_text())
    assert report["checked"] > 0 and 0 <= report["agreement"] <= 1


def test_an_empty_validation_log_falls_back_to_the_training_log(data, tmp_path, capsys):
    import shutil

    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(data / "train.jsonl", folder / "train.jsonl")
    (folder / "val.jsonl").write_text("")
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "m"), "--batch-size", "2", "--dim", "32",
                 "--layers", "1", "--steps", "2"]) == 0
    report = json.loads((tmp_path / "m" / "quantize-report.json").read_text())
    assert report["checked"] > 0


def _endless_run_with_workers(data, tmp_path):
    """``planner train`` with 2 loader workers and a million steps, in its own process group."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "planner", "train", "--data", str(data), "--out",
                             str(tmp_path / "m"), "--batch-size", "2", "--dim", "32", "--layers", "1", "--steps",
                             "1000000", "--warmup", "10", "--loader-workers", "2", "--no-quantize"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _ctrl_c(proc) -> str:
    """What a terminal's Ctrl-C does (SIGINT to the whole process group); the run's stderr once
    it has stopped, which it must within a minute."""
    import os
    import signal
    import subprocess

    assert proc.poll() is None, "the run ended by itself"  # a million steps: it cannot have finished
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # pragma: no cover - the defect this guards against
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("planner train did not stop after Ctrl-C")
    assert proc.returncode == 130, err
    return err


def test_ctrl_c_stops_a_run_with_loader_workers_at_once_and_quietly(data, tmp_path):
    import time

    proc = _endless_run_with_workers(data, tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / "m" / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.5)  # the workers are running once a checkpoint is written
    err = _ctrl_c(proc)
    assert "Traceback" not in err and "interrupted" in err


def test_ctrl_c_while_the_loader_workers_start_is_quiet(data, tmp_path):
    """Ctrl-C reaches the whole process group, workers still importing PyTorch included: they
    ignore it from their start, so the run ends with one line, not their tracebacks."""
    import os
    import signal
    import time

    proc = _endless_run_with_workers(data, tmp_path)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if not children.exists():
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.skip("no /proc/PID/task/PID/children here to see the workers start")
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if len(children.read_text().split()) >= 2:  # the spawned workers, about to import PyTorch
            break
        time.sleep(0.01)
    time.sleep(0.3)  # into their imports (a second or more)
    err = _ctrl_c(proc)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "interrupted" in err


def test_an_output_path_that_is_a_file_is_named(data, tmp_path, capsys):
    target = tmp_path / "model.gguf"
    target.write_text("not a folder")
    assert main(["train", "--data", str(data), "--out", str(target), "--steps", "1", "--no-quantize"]) == 2
    assert f"--out: cannot write {target}: it is a file, not a folder" in capsys.readouterr().err.replace("\n", " ")
    assert target.read_text() == "not a folder"
    # a folder below a file, found before the data is read
    assert main(["train", "--data", str(data), "--out", str(target / "sub"), "--steps", "1", "--no-quantize"]) == 2
    assert f"--out: cannot write {target / 'sub'}: {target} is a file" in capsys.readouterr().err.replace("\n", " ")


def test_precision_is_chosen_for_the_device_and_named_when_unknown():
    import torch

    from planner.errors import ConfigError
    from planner.training.train import TrainConfig, resolve_precision

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("auto", gpu) == "tf32"
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("fp32", gpu) == "fp32"
    with pytest.raises(ConfigError, match="'tf32' needs a CUDA device"):
        resolve_precision("tf32", cpu)
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, tf32, bf16, got 'half'"):
        TrainConfig(precision="half")


def _train_blocksworld(data, out, **config):
    from planner.env.blocksworld import DOMAIN_PDDL
    from planner.env.pddl import domain_schemas
    from planner.training.train import TrainConfig, train
    from planner.world.gguf_io import LlamaShape

    _, predicates, actions = domain_schemas(DOMAIN_PDDL, source="blocksworld")
    cfg = TrainConfig(**{"steps": 40, "batch_size": 8, "warmup": 5, "lr": 1e-2, "eval_every": 10,
                         "shape": LlamaShape(dim=32, n_layers=1, n_heads=1, ffn_dim=128, context=128), **config})
    return train(train_path=data / "train.jsonl", val_path=data / "val.jsonl", out_dir=out, predicates=predicates,
                 actions=actions, domain="blocksworld", config=cfg)


def test_bfloat16_training_learns_and_exports_float32_weights(data, tmp_path):
    """bf16 autocasts the forward pass; the weights, and so the exported model, stay float32,
    and the model learns as in float32 (the same batches, rounding apart)."""
    runs = {p: _train_blocksworld(data, tmp_path / p, precision=p) for p in ("bf16", "fp32")}
    assert runs["bf16"]["precision"] == "bf16" and runs["fp32"]["precision"] == "fp32"
    history = runs["bf16"]["history"]
    assert [h["step"] for h in history] == [10, 20, 30, 40]
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["val_token_acc"] > 0.5
    assert abs(history[-1]["val_token_acc"] - runs["fp32"]["history"][-1]["val_token_acc"]) < 0.1
    a, b = _weights(tmp_path / "bf16"), _weights(tmp_path / "fp32")
    assert all(a[k].dtype == np.float32 for k in a)
    assert not all(np.array_equal(a[k], b[k]) for k in a)  # it did compute in another arithmetic


@pytest.mark.parametrize(("setting", "other"), [("precision", "bf16"), ("min_lr", 5e-4), ("lr", 2e-2),
                                               ("shuffle_objects", 0.5)])
def test_a_checkpoint_resumes_only_with_the_settings_it_was_trained_with(data, tmp_path, setting, other):
    from planner.errors import ConfigError

    _train_blocksworld(data, tmp_path / "m", steps=20)
    option = "--" + setting.replace("_", "-")
    asked = f"{other:g}" if isinstance(other, float) else other
    with pytest.raises(ConfigError, match=f"trained with {option} .*this run asks for {option} {asked}: .*--fresh"):
        _train_blocksworld(data, tmp_path / "m", steps=30, **{setting: other})
    assert _train_blocksworld(data, tmp_path / "m", steps=30)["steps"] == 30  # the same settings go on


def test_a_finished_run_is_exported_again_whatever_its_settings(data, tmp_path):
    """Nothing is left to train: the model is written again as it was, whatever precision the
    machine exporting it would train in (a GPU run quantized on a CPU)."""
    _train_blocksworld(data, tmp_path / "m", steps=20, precision="bf16")
    before = _weights(tmp_path / "m")
    summary = _train_blocksworld(data, tmp_path / "m", steps=20, precision="fp32", lr=5e-3)
    assert summary["steps"] == 20 and summary["precision"] == "bf16" and summary["lr"] == 1e-2
    after = _weights(tmp_path / "m")
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_a_checkpoint_updates_as_the_device_of_the_run_wants(tmp_path):
    """Whether AdamW is fused is the resuming run's choice (its device's), not the checkpoint's."""
    import torch

    from planner.training.train import _load_checkpoint, _save_checkpoint

    model = torch.nn.Linear(3, 3)
    fused = torch.optim.AdamW(model.parameters(), fused=True)
    model(torch.ones(1, 3)).sum().backward()
    fused.step()
    path = tmp_path / "checkpoint.pt"
    _save_checkpoint(path, model, fused, 1, {})
    plain = torch.optim.AdamW(model.parameters())
    assert _load_checkpoint(path, model, plain, fused=False)[0] == 1
    assert not plain.param_groups[0]["fused"]
    again = torch.optim.AdamW(model.parameters(), fused=True)
    _load_checkpoint(path, model, again, fused=True)
    assert again.param_groups[0]["fused"] is True


def test_float32_products_are_ieee_unless_tf32_and_the_switch_is_put_back():
    import torch

    from planner.training.train import _matmul_precision

    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip(f"PyTorch {torch.__version__} has only the legacy TF32 switch")
    torch.set_float32_matmul_precision("high")  # a process that chose TF32 for itself
    try:
        for precision in ("fp32", "bf16"):
            with _matmul_precision(precision):
                assert matmul.fp32_precision == "ieee"
        with pytest.raises(RuntimeError, match="boom"), _matmul_precision("tf32"):
            assert matmul.fp32_precision == "tf32"
            torch.set_float32_matmul_precision("highest")
            raise RuntimeError("boom")
        assert matmul.fp32_precision == "tf32"  # the process's own choice again
    finally:
        torch.set_float32_matmul_precision("highest")


def test_a_peak_below_the_default_final_rate_ends_at_the_peak(data, tmp_path):
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--steps", "2", "--batch-size", "2",
                 "--dim", "32", "--layers", "1", "--warmup", "1", "--lr", "5e-5", "--no-quantize"]) == 0
    summary = json.loads((tmp_path / "m" / "train-summary.json").read_text())
    assert summary["lr"] == summary["min_lr"] == 5e-5


def test_the_schedule_decays_to_the_final_learning_rate():
    from planner.training.train import TrainConfig, lr_at

    cfg = TrainConfig(steps=100, warmup=10, lr=2e-3, min_lr=1e-5)
    assert lr_at(9, cfg) == pytest.approx(2e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-5)
    assert all(lr_at(k, cfg) >= lr_at(k + 1, cfg) for k in range(10, 100))


def test_a_run_renaming_objects_learns_and_says_how_often_it_renamed(data, tmp_path):
    """--shuffle-objects: the loss falls as without it, the batches differ, and the summary
    (and so the model file) records the chance."""
    from planner.world.gguf_io import read_model_info

    summary = _train_blocksworld(data, tmp_path / "m", shuffle_objects=0.5)
    history = summary["history"]
    assert summary["shuffle_objects"] == 0.5 and history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_token_acc"] > 0.5
    assert read_model_info(tmp_path / "m" / "model-f32.gguf").training["shuffle_objects"] == 0.5
    _train_blocksworld(data, tmp_path / "plain")  # the same run without renaming trains on other batches
    shuffled, plain = _weights(tmp_path / "m"), _weights(tmp_path / "plain")
    assert not all(np.array_equal(shuffled[k], plain[k]) for k in plain)


def test_a_checkpoint_of_another_shape_is_named_with_the_weight_that_differs(data, tmp_path, capsys):
    args = ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--steps", "2", "--batch-size", "2",
            "--no-quantize", "--layers", "1"]
    assert main([*args, "--dim", "32"]) == 0
    capsys.readouterr()
    assert main([*args, "--dim", "64", "--steps", "4"]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert re.search(r"cannot resume from .*checkpoint.pt: it was trained with another model: weight \S+ is "
                     r"\[(\d+, )?32\] there, \[(\d+, )?64\] in this run .*--fresh", err), err


def test_a_run_from_a_model_goes_on_whatever_the_spelling_of_its_path(data, tmp_path, capsys):
    args = ["train", "--data", str(data), "--batch-size", "2", "--no-quantize", "--layers", "1", "--dim", "32"]
    assert main([*args, "--out", str(tmp_path / "a"), "--steps", "2"]) == 0
    start = tmp_path / "a" / "model-f32.gguf"
    (tmp_path / "link.gguf").symlink_to(start)
    go_on = ["train", "--data", str(data), "--batch-size", "2", "--no-quantize", "--out", str(tmp_path / "b")]
    assert main([*go_on, "--init", str(start), "--steps", "2"]) == 0
    for steps, spelling in ((3, tmp_path / "a" / ".." / "a" / "model-f32.gguf"), (4, tmp_path / "link.gguf")):
        assert main([*go_on, "--init", str(spelling), "--steps", str(steps)]) == 0, capsys.readouterr().err
    assert main([*go_on, "--init", str(tmp_path / "b" / "model-f32.gguf"), "--steps", "5"]) == 2
    assert "holds the checkpoint of another one" in capsys.readouterr().err.replace("\n", " ")


def test_a_checkpoint_resumes_only_with_the_focus_it_was_trained_with(data, tmp_path):
    from planner.errors import ConfigError

    _train_blocksworld(data, tmp_path / "m", steps=20, focus=(("stack", 3.0),))
    with pytest.raises(ConfigError, match=r"trained with --focus stack=3, this run asks for no --focus"):
        _train_blocksworld(data, tmp_path / "m", steps=30)
    assert _train_blocksworld(data, tmp_path / "m", steps=30, focus=(("stack", 3.0),))["focus"] == {"stack": 3.0}


def test_a_finished_checkpoint_is_exported_as_trained_and_says_which_settings_it_did_not_apply(data, tmp_path,
                                                                                              capsys):
    args = ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--batch-size", "2", "--dim", "32",
            "--layers", "1", "--no-quantize", "--steps", "3"]
    assert main([*args, "--focus", "stack=3"]) == 0
    capsys.readouterr()
    assert main([*args, "--focus", "stack=2", "--codec-version", "2"]) == 0
    said = capsys.readouterr().out.replace("\n", " ")
    assert "with --focus stack=3: exported as trained, not with --focus stack=2 (--fresh" in said
    assert "with --codec-version 1: exported as trained, not with --codec-version 2" in said
    summary = json.loads((tmp_path / "m" / "train-summary.json").read_text())
    assert summary["focus"] == {"stack": 3.0} and summary["codec_version"] == 1 and "unapplied" not in summary
    assert main([*args, "--focus", "stack=3"]) == 0
    assert "note:" not in capsys.readouterr().out


def test_a_checkpoint_from_before_renaming_resumes_only_without_it(data, tmp_path):
    import torch

    from planner.errors import ConfigError

    _train_blocksworld(data, tmp_path / "m", steps=20)
    path = tmp_path / "m" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=False)
    del ckpt["meta"]["shuffle_objects"]  # as written before the option existed
    torch.save(ckpt, path)
    with pytest.raises(ConfigError, match=r"with --shuffle-objects 0, this run asks for --shuffle-objects 0\.5"):
        _train_blocksworld(data, tmp_path / "m", steps=30, shuffle_objects=0.5)
    assert _train_blocksworld(data, tmp_path / "m", steps=30)["shuffle_objects"] == 0.0


def test_a_refused_request_leaves_no_output_folder(data, tmp_path, capsys):
    out = tmp_path / "new" / "model"
    assert main(["train", "--data", str(data), "--out", str(out), "--shuffle-objects", "1.5", "--no-quantize"]) == 2
    assert main(["collect", "--blocks", "bogus", "--out", str(out)]) == 2
    assert main(["collect", "--env", "no-such-env-v0", "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()


def test_a_run_in_the_background_logs_its_progress_in_plain_lines(data, tmp_path, capsys):
    """Away from a terminal (a log file, a pipe) there is no live bar to see: plain lines say
    how the run goes."""
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--steps", "3", "--batch-size", "2",
                 "--no-quantize", "--layers", "1", "--dim", "32"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "training: reading the data"
    # the seconds of the step lines count from the first step, after the data were read
    assert re.fullmatch(r"training: data read and the first step taken in \d+ s", lines[1]), lines
    assert re.fullmatch(r"training: step 3/3, loss \d+\.\d{4}, validation token accuracy \d\.\d{4}, "
                        r"learning rate \S+, \d+ s", lines[2]), lines


@pytest.mark.parametrize("recorded", [4, "2", 2.0, True, None])
def test_a_checkpoint_recording_a_codec_version_it_cannot_have_is_refused_naming_it(data, tmp_path, recorded):
    import torch

    from planner.training.errors import CheckpointError

    _train_blocksworld(data, tmp_path / "m", steps=20)
    path = tmp_path / "m" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=False)
    ckpt["meta"]["codec_version"] = recorded
    torch.save(ckpt, path)
    for asked in ({}, {"codec_version": 1}):
        with pytest.raises(CheckpointError, match=f"checkpoint.pt records codec version {re.escape(repr(recorded))}, "
                                                  r"not one of \[1, 2, 3\]: start afresh"):
            _train_blocksworld(data, tmp_path / "m", steps=30, **asked)
