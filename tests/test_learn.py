"""``planner learn``: from an environment to a Q8_0 world model and its card, and planning with it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.env.registry import make
from planner.errors import ConfigError, ModelLoadError, VocabularyError
from planner.types import Action, FactGoal, State
from planner.world.factory import bind_environment_model, load_gguf_world_model

SEEDS = "train=0-5,val=100-101,test=200-202"


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def learned(tmp_path_factory) -> Path:
    """A tiny Blocksworld model learned through the command line (40 training steps)."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("learn") / "bw3"
    code = main(["learn", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--out", str(out),
                 "--seeds", SEEDS, "--steps", "40", "--episodes-per-seed", "2", "--max-steps", "30"])
    assert code == 0
    return out


def test_learn_writes_the_model_and_its_card(learned):
    assert (learned / "model-q8_0.gguf").is_file() and (learned / "model-f32.gguf").is_file()
    card = (learned / "README.md").read_text()
    assert "next EM" in card and "precond" in card  # the fidelity table
    assert "planner learn --env blocksworld-v0 --env-arg blocks=3" in card and "--steps 40" in card
    assert "| train | 6 |" in card and "| test | 3 |" in card
    assert all((learned / "data" / f"{s}.jsonl").is_file() for s in ("train", "val", "test"))
    # planning success on the held-out seeds, with the same limits named
    assert "## Planning on held-out test seeds" in card
    assert re.search(r"Solved [0-3]/3 held-out seeds \(200-202, [\d.]+%\), mean plan length", card)
    assert "one `planner solve` episode per seed (beam search, at most 100 real steps" in card
    record = json.loads((learned / "learn.json").read_text())
    assert record["seeds"]["test"] == [200, 203, 1] and record["command"].startswith("planner learn --env")


def test_learn_report_carries_planning_success(tmp_path):
    pytest.importorskip("torch")
    from planner.learn import PLANNING_SEEDS, learn

    report = learn(lambda s: make("blocksworld-v0", seed=s, blocks=3), out_dir=tmp_path,
                   seeds={"train": range(0, 3), "test": range(200, 202)}, steps=8, episodes_per_seed=1, max_steps=15)
    assert PLANNING_SEEDS >= 2 and report.planning.total == 2
    assert [e.seed for e in report.planning.episodes] == [200, 201]
    assert 0 <= report.planning.solved <= 2 and report.planning.model_calls > 0
    assert f"Solved {report.planning.solved}/2 held-out seeds" in report.card.read_text()


def test_learned_model_binds_and_plans_from_the_command_line(learned, capsys):
    env = make("blocksworld-v0", seed=5, blocks=3)
    model = load_gguf_world_model(env, path=learned / "model-q8_0.gguf")
    state, _ = env.reset(seed=5)
    assert model.predict_many(state, list(env.candidate_actions(state)))
    code, out, err = run(capsys, "solve", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--seed", "5",
                         "--model", learned / "model-q8_0.gguf", "--max-steps", "6", "--json")
    assert code in (0, 1), err
    assert json.loads(out.strip().splitlines()[-1])["model"].endswith("model-q8_0.gguf")


class Renamed:
    """Blocksworld seen through other names: a predicate and more objects the model lacks."""

    def __init__(self, facts: set[str], actions: list[str]) -> None:
        self.facts, self.actions = frozenset(facts), actions

    @property
    def goal(self) -> FactGoal:
        return FactGoal(frozenset({"(on a b)"}))

    def reset(self, *, seed=None):
        return State(self.facts), {}

    def candidate_actions(self, state):
        return [Action(a) for a in self.actions]

    def step(self, action):  # pragma: no cover - binding never steps
        raise NotImplementedError


def test_binding_names_an_unknown_predicate(learned):
    env = Renamed({"(clear a)", "(glowing a)", "(handempty)"}, ["(pick-up a)"])
    with pytest.raises(VocabularyError, match=r"unknown predicate glowing/1"):
        bind_environment_model(learned / "model-q8_0.gguf", env)


def test_binding_names_too_many_objects(learned):
    blocks = "abcdefgh"
    env = Renamed({f"(clear {b})" for b in blocks} | {"(handempty)"}, [f"(pick-up {b})" for b in blocks])
    with pytest.raises(VocabularyError, match=r"8 objects .* more than the model's 3"):
        bind_environment_model(learned / "model-q8_0.gguf", env)


def test_a_non_pddl_environment_needs_a_named_model():
    env = make(str(Path(__file__).parents[1] / "examples" / "automation_cell.py") + ":make_cell", seed=0)
    with pytest.raises(ModelLoadError, match="name a learned one"):
        load_gguf_world_model(env)


def test_learn_without_torch_says_how_to_install_it(monkeypatch, tmp_path):
    from planner.learn import learn

    monkeypatch.setitem(sys.modules, "planner.training.train", None)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[train\]'"):
        learn(lambda s: make("blocksworld-v0", seed=s, blocks=3), out_dir=tmp_path, minutes=1)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"minutes": 0}, "minutes must lie"),
    ({"seeds": {"train": range(0, 2)}}, "missing"),
    ({"steps": 0}, "steps must be at least 1"),
])
def test_learn_request_errors_name_the_value(tmp_path, kwargs, match):
    pytest.importorskip("torch")
    from planner.learn import learn

    with pytest.raises(ConfigError, match=match):
        learn(lambda s: make("blocksworld-v0", seed=s, blocks=3), out_dir=tmp_path, **kwargs)


# -- rounds: goal-directed collection between training rounds -----------------------------------
@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 100_000), rounds=st.integers(1, 10))
def test_round_ends_split_the_steps_in_order(total, rounds):
    from planner.learn import FIRST_ROUND_SHARE, round_ends

    ends = round_ends(total, rounds)
    assert len(ends) == rounds and ends[-1] == total
    assert ends == sorted(ends) and ends[0] >= 1
    if rounds > 1:
        assert ends[0] == max(1, int(total * FIRST_ROUND_SHARE))


def test_training_stopped_and_resumed_equals_training_straight_through(tmp_path):
    """``stop_at`` keeps the schedule of ``config.steps``: 4 steps then 4 more (new process
    state, resumed from the checkpoint) give the weights 8 steps in one go give."""
    pytest.importorskip("torch")
    from planner.learn import learn
    from planner.training.train import TrainConfig, train
    from planner.world.gguf_io import LlamaShape, read_model_info

    data = tmp_path / "data"
    report = learn(lambda s: make("blocksworld-v0", seed=s, blocks=3), out_dir=data, rounds=1,
                   seeds={"train": range(0, 3), "test": range(200, 201)}, steps=1, episodes_per_seed=1, max_steps=15)
    config = TrainConfig(steps=8, batch_size=8, warmup=2, shape=LlamaShape(dim=32, n_layers=1, n_heads=2,
                                                                           ffn_dim=64, context=report.shape.context),
                         max_objects=report.max_objects, checkpoint_every=100, eval_every=100)
    common = {"train_path": data / "data" / "train.jsonl", "val_path": None, "predicates": report.schema.predicates,
              "actions": report.schema.actions, "domain": "bw", "config": config}
    straight = train(out_dir=tmp_path / "a", resume=False, **common)
    first = train(out_dir=tmp_path / "b", resume=False, stop_at=4, **common)
    assert first["steps"] == 4 and first["schedule_steps"] == 8
    second = train(out_dir=tmp_path / "b", resume=True, **common)
    assert straight["steps"] == second["steps"] == 8
    a = (tmp_path / "a" / "model-f32.gguf").read_bytes()
    b = (tmp_path / "b" / "model-f32.gguf").read_bytes()
    assert read_model_info(tmp_path / "b" / "model-f32.gguf").training["steps"] == 8
    assert len(a) == len(b)
    assert a == b or _same_weights(tmp_path / "a" / "model-f32.gguf", tmp_path / "b" / "model-f32.gguf")


def _same_weights(a: Path, b: Path) -> bool:
    """The tensors of two GGUF files are equal (their metadata, training seconds among it, may differ)."""
    import numpy as np
    from gguf import GGUFReader

    ta = {t.name: np.array(t.data) for t in GGUFReader(a).tensors}
    tb = {t.name: np.array(t.data) for t in GGUFReader(b).tensors}
    return ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta)


def test_learn_in_two_rounds_folds_goal_directed_episodes_into_the_data(tmp_path):
    pytest.importorskip("torch")
    from planner.data.collect import read_records
    from planner.data.experience import DIVERGENCE_WEIGHT
    from planner.learn import learn, read_learn_record, round_ends

    report = learn(lambda s: make("blocksworld-v0", seed=s, blocks=3), out_dir=tmp_path, rounds=2,
                   seeds={"train": range(0, 3), "test": range(200, 202)}, steps=10, episodes_per_seed=1, max_steps=15)
    (goal,) = report.goal_rounds
    first = round_ends(10, 2)[0]
    assert 1 <= first < 10 and goal.after_step == first and goal.skipped is None
    assert goal.log == tmp_path / "data" / "goal-1.jsonl" and goal.log.is_file()
    assert 1 <= goal.planning.total <= 3 and {e.seed for e in goal.planning.episodes} <= {0, 1, 2}
    assert goal.steps == sum(e.steps for e in goal.planning.episodes) > 0
    assert goal.records == goal.steps + (DIVERGENCE_WEIGHT - 1) * goal.divergences  # divergences weighted
    records = read_records(tmp_path / "data" / "train.jsonl")
    from_goals = [r for r in records if r.episode.startswith("log:")]
    assert len(from_goals) == goal.records and {r.split for r in from_goals} == {"train"}
    assert report.data["train"].transitions == len(records) - goal.records
    assert report.steps == 10 and _checkpoint_step(tmp_path / "checkpoint.pt") == 10
    card = report.card.read_text()
    assert "## Goal-directed experience" in card and f"| {first} | {goal.planning.total} |" in card
    (entry,) = read_learn_record(tmp_path).goal_rounds
    assert entry["after_step"] == first and entry["records"] == goal.records
    # A new run in the same folder with one round leaves no goal log of the old one behind.
    learn(lambda s: make("blocksworld-v0", seed=s, blocks=3), out_dir=tmp_path, rounds=1,
          seeds={"train": range(0, 3), "test": range(200, 201)}, steps=2, episodes_per_seed=1, max_steps=15)
    assert not list((tmp_path / "data").glob("goal-*.jsonl"))
    assert "Goal-directed" not in report.card.read_text()


def _checkpoint_step(path: Path) -> int:
    from planner.learn import _checkpoint_step as step

    return step(path)


@pytest.mark.parametrize("rounds", [0, 11, 1.5, True])
def test_learn_names_bad_rounds(tmp_path, rounds):
    pytest.importorskip("torch")
    from planner.learn import learn

    with pytest.raises(ConfigError, match=f"rounds must be a whole number in 1..10, got {rounds!r}"):
        learn(lambda s: make("blocksworld-v0", seed=s, blocks=3), out_dir=tmp_path, rounds=rounds)
    assert not (tmp_path / "data").exists()


class DoorEnv:
    """A door whose fact ``(open d)`` shares its name with the action ``(open d)``."""

    goal = FactGoal(frozenset({"(open d)"}))

    def __init__(self) -> None:
        self.state = State.from_facts(["(closed d)"])

    def reset(self, *, seed=None):
        self.state = State.from_facts(["(closed d)"])
        return self.state, {}

    def candidate_actions(self, state):
        return [Action("(open d)"), Action("(close d)")]

    def step(self, action):
        from types import MappingProxyType

        from planner.env.base import StepResult

        opening = action.name == "(open d)"
        ok = ("(closed d)" in self.state.facts) == opening
        if ok:
            self.state = State.from_facts(["(open d)"] if opening else ["(closed d)"])
        done = ok and opening
        return StepResult(self.state, 1.0 if done else 0.0, done, False, MappingProxyType({}), ok)


def test_learn_refuses_a_name_used_for_a_fact_and_an_action_before_training(tmp_path):
    pytest.importorskip("torch")
    from planner.learn import LearnError, learn

    with pytest.raises(LearnError, match=r"names \['open'\] both as predicates .* and as actions"):
        learn(lambda s: DoorEnv(), out_dir=tmp_path, seeds={"train": range(0, 2), "test": range(9, 10)}, steps=1,
              episodes_per_seed=1, max_steps=4)
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize(("device", "named"), [
    ("tpu", "must be cpu, cuda, cuda:N or auto, got 'tpu'"),
    ("cuda:7x", "got 'cuda:7x'"),
    ("cuda", "'cuda' asked for, but PyTorch"),
])
def test_learn_names_a_training_device_it_cannot_use_before_any_work(tmp_path, capsys, device, named):
    torch = pytest.importorskip("torch")
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("PyTorch sees a CUDA device here")
    out = tmp_path / "m"
    code, _, err = run(capsys, "learn", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--out", out,
                       "--seeds", SEEDS, "--steps", "4", "--device", device)
    assert code == 2 and named in " ".join(err.split())
    assert not (out / "data").exists()  # nothing collected


def test_learn_trains_where_device_says_and_records_it(tmp_path, capsys, monkeypatch):
    """``--device`` reaches the rate measurement and every training round (``auto`` is the CPU
    on a machine without CUDA, with no batch workers there); the command recorded (and quoted
    on the card) repeats it."""
    torch = pytest.importorskip("torch")
    import planner.learn
    import planner.training.train

    seen = []
    real_rate, real_train = planner.learn.measure_rate, planner.training.train.train

    def rate(examples, vocab, config, predicates, actions, **kw):
        seen.append(("rate", config.device, config.loader_workers))
        return real_rate(examples, vocab, config, predicates, actions, **kw)

    def train(**kw):
        seen.append(("train", kw["config"].device, kw["config"].loader_workers))
        return real_train(**kw)

    monkeypatch.setattr(planner.learn, "measure_rate", rate)
    monkeypatch.setattr(planner.training.train, "train", train)
    out = tmp_path / "m"
    code, _, _ = run(capsys, "learn", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--out", out,
                     "--seeds", "train=0-2,test=200-201", "--steps", "4", "--episodes-per-seed", "1",
                     "--max-steps", "10", "--rounds", "2", "--device", "auto")
    assert code == 0
    workers = 0 if not torch.cuda.is_available() else seen[0][2]
    assert seen == [("rate", "auto", workers), ("train", "auto", workers), ("train", "auto", workers)]
    summary = json.loads((out / "train-summary.json").read_text())
    assert summary["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert "--device auto" in json.loads((out / "learn.json").read_text())["command"]


def test_improve_refuses_a_device_that_cannot_do_the_runs_arithmetic(learned, tmp_path, capsys):
    """A run trained with TensorFloat-32 on a GPU trains on only with it: improving it on the
    CPU is refused before any work (nothing copied, the data untouched), naming what to do."""
    pytest.importorskip("torch")
    import shutil

    from planner.learn import LearnError, _resumable_precision

    copy = tmp_path / "gpu-run"
    shutil.copytree(learned, copy)
    summary = json.loads((copy / "train-summary.json").read_text())
    (copy / "train-summary.json").write_text(json.dumps({**summary, "precision": "tf32"}))
    data = (copy / "data" / "train.jsonl").read_bytes()
    log = tmp_path / "episodes.jsonl"
    log.write_text("{}\n")
    code, _, err = run(capsys, "learn", "--improve", copy, "--logs", log, "--device", "cpu")
    assert code == 2
    assert "trained on a GPU with TensorFloat-32 arithmetic (tf32)" in " ".join(err.split())
    assert "--device cuda" in err
    assert not list(copy.glob("*before*")) and (copy / "data" / "train.jsonl").read_bytes() == data
    with pytest.raises(LearnError, match=r"records precision 'fp16', not one of fp32, tf32, bf16"):
        _resumable_precision(copy, "fp16", "cpu")
    assert _resumable_precision(copy, "fp32", "cpu") == "fp32"
    assert _resumable_precision(copy, "fp32", "auto") == "fp32"  # on any device


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not __import__("importlib").util.find_spec("torch") or not __import__("torch").cuda.is_available(),
    reason="PyTorch sees no CUDA device"))])
def test_the_training_rate_is_measured_on_the_device_that_trains(device, monkeypatch):
    pytest.importorskip("torch")
    import planner.training.train
    from planner.data.collect import TransitionRecord
    from planner.learn import GPU_TIMED_STEPS, measure_rate
    from planner.training.data import encode_records
    from planner.training.train import TrainConfig
    from planner.world.codec import domain_vocabulary
    from planner.world.gguf_io import LlamaShape

    predicates, actions = {"on": 2, "clear": 1}, {"move": 2}
    vocab = domain_vocabulary(predicates, actions, 3)
    record = TransitionRecord(problem="p", domain="d", episode="e", step=0, objects=["a", "b", "c"],
                              goal=["(on a b)"], state=["(clear a)", "(clear b)"], action="(move a b)",
                              applicable=True, next_state=["(on a b)", "(clear a)"], reward=1.0, done=True,
                              source="random", split="train")
    examples = encode_records([record] * 8, vocab, predicates, actions, 3)
    config = TrainConfig(steps=1, batch_size=4, shape=LlamaShape(dim=32, n_layers=1, n_heads=1, ffn_dim=64,
                                                                  context=64), max_objects=3, device=device)
    devices = []
    real = planner.training.train.training_step

    def step(model, opt, tokens, targets, where, autocast):
        devices.append(where.type)
        return real(model, opt, tokens, targets, where, autocast)

    monkeypatch.setattr(planner.training.train, "training_step", step)
    assert measure_rate(examples, vocab, config, predicates, actions, steps=2) > 0
    # one untimed step, then the timed ones (beside a GPU at least GPU_TIMED_STEPS), on the device
    assert devices == [device] * (1 + (2 if device == "cpu" else GPU_TIMED_STEPS))


def test_improve_plays_the_held_out_seeds_in_their_split(learned, tmp_path, capsys, monkeypatch):
    """``--improve`` measures before and after on the run's test seeds, built in the test split
    (household-v0's test scenes) as ``planner learn`` built them, not in the default one."""
    import planner.learn

    factory = tmp_path / "worlds.py"
    factory.write_text('from planner.env.registry import make\n\n\n'
                       'def make_world(seed=0, split="train"):\n'
                       '    return make("blocksworld-v0", seed=seed, blocks=3 if split == "train" else 4)\n')
    log = tmp_path / "episodes.jsonl"
    log.write_text("{}\n")
    seen = {}

    def blocks(env):
        return len({name for fact in env.state.facts for name in fact.strip("()").split()[1:]})

    def fake_improve(make_env, **kwargs):
        seen["test"], seen["train"] = blocks(make_env(kwargs["test_seeds"][0])), blocks(make_env(0))
        raise ConfigError("stopped after the environment was built")

    monkeypatch.setattr(planner.learn, "improve", fake_improve)
    code, _, err = run(capsys, "learn", "--improve", learned, "--logs", log, "--env", f"{factory}:make_world")
    assert code == 2 and "stopped after the environment was built" in err
    assert seen == {"test": 4, "train": 3}  # 4 blocks in the test split, 3 outside it
