"""``planner learn --improve DIR --logs LOG``: real steps folded into a learned model's training."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from planner.agent import EpisodeEvent
from planner.cli import main
from planner.data.experience import DIVERGENCE_WEIGHT, ExperienceError, fold_logs, read_episode_log
from planner.io import CorruptLogError, JsonlLog

BW_PREDICATES = {"clear": 1, "handempty": 0, "holding": 1, "on": 2, "ontable": 1}
BW_ACTIONS = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
START = "(clear a) (clear b) (handempty) (ontable a) (ontable b)"
HOLDING = "(clear b) (holding a) (ontable b)"


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_log(path: Path, steps: list[dict], *, episode: str = "ep-1", seed: int | None = 3,
              goal: str = "(on a b)") -> Path:
    """An episode log as the agent writes it: start, then an act and a step record per step."""
    with JsonlLog(path, fsync=False) as log:
        log.write(EpisodeEvent(event="start", episode=episode, time=0.0,
                               data={"state": steps[0]["state"], "goal": goal, "seed": seed}))
        for i, s in enumerate(steps):
            log.write(EpisodeEvent(event="act", episode=episode, time=0.0, data={"index": i, "action": s["action"]}))
            log.write(EpisodeEvent(event="step", episode=episode, time=0.0, data={
                "index": i, "imagined": s.get("imagined", s["real"]), "reward": 0.0, "terminated": False,
                "truncated": False, "probe": False, "reason": None, **s}))
    return path


GOOD_STEPS = [
    {"state": START, "action": "(pick-up a)", "real": HOLDING, "applicable": True, "diverged": True,
     "imagined": START},
    {"state": HOLDING, "action": "(pick-up b)", "real": HOLDING, "applicable": False, "diverged": False},
]


# -- episode logs -> training records (no model, no PyTorch) ---------------------------------------
def test_fold_logs_weights_divergences_and_skips_known_steps(tmp_path):
    log = write_log(tmp_path / "ep.jsonl", GOOD_STEPS)
    folded = fold_logs([log], domain="bw", predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=3)
    assert (folded.steps, folded.divergences, folded.episodes, folded.known) == (2, 1, 1, 0)
    assert len(folded.records) == DIVERGENCE_WEIGHT + 1
    first = folded.records[0]
    assert first.state == ["(clear a)", "(clear b)", "(handempty)", "(ontable a)", "(ontable b)"]
    assert first.next_state == ["(clear b)", "(holding a)", "(ontable b)"] and first.applicable
    assert first.objects == ["a", "b"] and first.goal == ["(on a b)"] and first.problem == "bw-3"
    assert first.episode == "log:ep-1" and first.split == "train" and first.source == "plan"
    refused = folded.records[-1]
    assert not refused.applicable and refused.next_state == refused.state
    again = fold_logs([log, log], domain="bw", predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=3,
                      known={("log:ep-1", 0)})
    assert (again.steps, again.known, len(again.records)) == (1, 3, 1)


def test_a_goal_that_is_no_conjunction_of_facts_folds_as_no_goal(tmp_path):
    """A disjunctive goal (a household task's "in any countertop") is logged as its text; its
    steps fold with an empty goal, as collection records them, instead of refusing the log."""
    goal = "(or (and (on a b) (clear a)) (and (on b a) (clear b)))"
    log = write_log(tmp_path / "ep.jsonl", GOOD_STEPS, goal=goal)
    folded = fold_logs([log], domain="bw", predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=3)
    assert folded.steps == 2 and all(r.goal == [] for r in folded.records)
    conjunction = fold_logs([write_log(tmp_path / "and.jsonl", GOOD_STEPS, goal="(on a b) (clear a)")],
                            domain="bw", predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=3)
    assert conjunction.records[0].goal == ["(clear a)", "(on a b)"]


def test_fold_logs_names_every_unknown_word(tmp_path):
    steps = [{"state": START + " (glowing a)", "action": "(zap a)", "real": START, "applicable": True,
              "diverged": True}]
    log = write_log(tmp_path / "ep.jsonl", steps)
    with pytest.raises(ExperienceError, match=r"ep\.jsonl episode ep-1: unknown predicate glowing/1, unknown action"):
        fold_logs([log], domain="bw", predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=3)
    with pytest.raises(ExperienceError, match=r"2 objects \(a, b\), more than the model's 1"):
        fold_logs([write_log(tmp_path / "ok.jsonl", GOOD_STEPS)], domain="bw", predicates=BW_PREDICATES,
                  actions=BW_ACTIONS, max_objects=1)


def test_a_corrupt_episode_log_names_the_line(tmp_path):
    log = write_log(tmp_path / "ep.jsonl", GOOD_STEPS)
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join([*lines[:2], "{not json\n", *lines[2:]]))
    with pytest.raises(CorruptLogError, match=r"ep\.jsonl:3: not a JSON object"):
        read_episode_log(log)
    bad_step = write_log(tmp_path / "bad.jsonl", [{**GOOD_STEPS[0], "applicable": "yes"}])
    with pytest.raises(CorruptLogError, match=r"bad\.jsonl:3: not an episode event: applicable"):
        read_episode_log(bad_step)


def test_a_log_without_steps_is_refused(tmp_path):
    log = tmp_path / "empty.jsonl"
    with JsonlLog(log, fsync=False) as sink:
        sink.write(EpisodeEvent(event="start", episode="e", time=0.0, data={"state": START}))
    with pytest.raises(ExperienceError, match="no real steps"):
        fold_logs([log], domain="bw", predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=3)


# -- the whole improvement, through the command line -------------------------------------------------
SEEDS = "train=0-5,val=100-101,test=200-201"


@pytest.fixture(scope="module")
def learned(tmp_path_factory) -> Path:
    """A tiny Blocksworld model (20 steps) and an episode log of it planning (seed 7)."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("improve")
    out = root / "bw3"
    assert main(["learn", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--out", str(out), "--seeds", SEEDS,
                 "--steps", "20", "--episodes-per-seed", "2", "--max-steps", "30"]) == 0
    code = main(["solve", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--seed", "7", "--model",
                 str(out / "model-q8_0.gguf"), "--max-steps", "8", "--log", str(root / "episode.jsonl"), "--json"])
    assert code in (0, 1)
    return out


@pytest.fixture(scope="module")
def improved(learned):
    """``learned`` improved with its episode log (10 more steps): (folder, what was there before, stdout)."""
    before = {"model": (learned / "model-q8_0.gguf").read_bytes(),
              "records": len((learned / "data" / "train.jsonl").read_text().splitlines())}
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["learn", "--improve", str(learned), "--logs", str(learned.parent / "episode.jsonl"),
                     "--steps", "10"])
    assert code == 0, buffer.getvalue()
    return learned, before, buffer.getvalue()


def test_improve_keeps_the_old_model_and_writes_a_new_one(improved):
    folder, before, _ = improved
    assert (folder / "model-q8_0.before.gguf").read_bytes() == before["model"]
    assert (folder / "model-q8_0.gguf").read_bytes() != before["model"]
    assert (folder / "model-f32.before.gguf").is_file() and (folder / "checkpoint.before.pt").is_file()
    summary = json.loads((folder / "train-summary.json").read_text())
    assert summary["steps"] == 30


def test_improve_folds_the_logged_steps_into_the_training_data(improved):
    folder, before, _ = improved
    episode = folder.parent / "episode.jsonl"
    logged = read_episode_log(episode)
    steps = sum(len(ep.steps) for ep in logged)
    diverged = sum(s.diverged for ep in logged for s in ep.steps)
    records = (folder / "data" / "train.jsonl").read_text().splitlines()
    assert len(records) == before["records"] + steps + diverged * (DIVERGENCE_WEIGHT - 1) > before["records"]
    assert json.loads(records[-1])["episode"].startswith("log:ep-")
    entry = json.loads((folder / "learn.json").read_text())["improvements"][-1]
    assert entry["records"] == [before["records"], len(records)] and entry["steps"] == [20, 30]
    assert entry["new_steps"] == steps and entry["divergences"] == diverged


def test_improve_card_shows_before_and_after_on_the_same_seeds(improved):
    folder, _, stdout = improved
    card = (folder / "README.md").read_text()
    assert card.count("## Improvement") == 1 and card.index("## Planning on held-out") < card.index("## Improvement")
    assert "| before (`model-q8_0.before.gguf`) | 20 |" in card and "| after (`model-q8_0.gguf`) | 30 |" in card
    assert "held-out test transitions" in card and "seeds (200-201)" in card
    assert f"planner learn --improve {folder} --logs {folder.parent / 'episode.jsonl'}" in card
    assert "before" in stdout and "after" in stdout and "model-q8_0.before.gguf" in stdout


def test_improving_again_with_the_same_log_finds_nothing_new(improved, capsys):
    folder, _, _ = improved
    model = (folder / "model-q8_0.gguf").read_bytes()
    code, _, err = run(capsys, "learn", "--improve", folder, "--logs", folder.parent / "episode.jsonl", "--steps", "5")
    assert code == 2 and "nothing new in the logs" in err
    assert (folder / "model-q8_0.gguf").read_bytes() == model


def test_improve_refuses_a_corrupt_log_and_unknown_words_before_any_work(learned, capsys, tmp_path):
    torn = tmp_path / "corrupt.jsonl"
    lines = (learned.parent / "episode.jsonl").read_text().splitlines(keepends=True)
    torn.write_text("".join([lines[0], "garbage\n", *lines[1:]]))
    strange = write_log(tmp_path / "strange.jsonl", [
        {"state": "(clear b1) (glowing b1) (handempty) (ontable b1)", "action": "(zap b1)",
         "real": "(clear b1) (handempty) (ontable b1)", "applicable": True, "diverged": True}], seed=None)
    model = (learned / "model-q8_0.gguf").read_bytes()
    for log, match in ((torn, "corrupt.jsonl:2: not a JSON object"),
                       (strange, "strange.jsonl episode ep-1: unknown predicate glowing/1, unknown action zap/1")):
        code, _, err = run(capsys, "learn", "--improve", learned, "--logs", log, "--steps", "5")
        assert code == 2 and match in err, err
        assert len(err.strip().splitlines()) == 1
    assert (learned / "model-q8_0.gguf").read_bytes() == model


@pytest.mark.parametrize(("args", "match"), [
    (["--logs", "x.jsonl"], "--logs x.jsonl needs --improve DIR"),
    (["--improve", "{dir}"], "needs --logs LOG"),
    (["--improve", "{dir}", "--logs", "{log}", "--out", "elsewhere"], "--out is for a new learn"),
    (["--improve", "{dir}", "--logs", "{log}", "--seeds", "test=1-2"], "--seeds is for a new learn"),
    (["--improve", "{dir}", "--logs", "nowhere.jsonl"], "--logs nowhere.jsonl: no such episode log"),
    (["--improve", "{tmp}/none", "--logs", "{log}"], "no such folder"),
    (["--improve", "{tmp}", "--logs", "{log}"], "not a folder written by planner learn: missing model-q8_0.gguf"),
    ([], "missing --env"),
])
def test_improve_usage_errors(learned, capsys, tmp_path, args, match):
    fill = {"dir": str(learned), "log": str(learned.parent / "episode.jsonl"), "tmp": str(tmp_path)}
    code, _, err = run(capsys, "learn", *[a.format(**fill) for a in args])
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err


def test_improve_without_a_recorded_command_needs_env(learned, capsys, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(learned, copy)
    (copy / "learn.json").unlink()
    from planner.learn import recorded_command

    argv = recorded_command(copy)  # from the card's "Reproduce" block
    assert argv[:6] == ["planner", "learn", "--env", "blocksworld-v0", "--env-arg", "blocks=3"] and SEEDS in argv
    (copy / "README.md").write_text("# a card without a command\n")
    code, _, err = run(capsys, "learn", "--improve", copy, "--logs", learned.parent / "episode.jsonl")
    assert code == 2 and "give --env" in err


def test_a_failed_improvement_leaves_the_folder_as_it_was(learned, tmp_path, monkeypatch):
    import planner.learn as learn_module
    from planner.env.registry import make

    copy = tmp_path / "copy"
    shutil.copytree(learned, copy)
    (copy / "model-q8_0.before.gguf").unlink(missing_ok=True)
    names = ("model-q8_0.gguf", "model-f32.gguf", "checkpoint.pt", "data/train.jsonl")
    before = {name: (copy / name).read_bytes() for name in names}
    listed = sorted(p.name for p in (copy / "data").iterdir())
    assert {"test.jsonl", "train.jsonl", "val.jsonl"} <= set(listed)

    def broken(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(learn_module, "_finish", broken)
    log = write_log(tmp_path / "ep.jsonl", [
        {"state": "(clear b1) (handempty) (ontable b1)", "action": "(pick-up b1)", "real": "(holding b1)",
         "applicable": True, "diverged": True}], seed=None)
    with pytest.raises(OSError, match="no space"):
        learn_module.improve(lambda s: make("blocksworld-v0", seed=s, blocks=3), model_dir=copy, logs=[log],
                             steps=2, test_seeds=range(200, 201))
    assert {name: (copy / name).read_bytes() for name in names} == before
    assert sorted(p.name for p in (copy / "data").iterdir()) == listed
    assert (copy / "model-q8_0.before.gguf").read_bytes() == before["model-q8_0.gguf"]
