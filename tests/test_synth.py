"""Synthetic experience: imagined rollouts written as records, then confirmed in reality."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planner import make
from planner.data.collect import read_records
from planner.data.synth import SynthReport, synthesize
from planner.errors import ConfigError, EnvironmentStepError
from planner.types import Action
from planner.world.oracle import NoisyWorldModel, OracleWorldModel


def bw(seed: int) -> Any:
    return make("blocksworld-v0", seed=seed, blocks=4)


def oracle(env: Any) -> OracleWorldModel:
    return OracleWorldModel(env)


def noisy(env: Any) -> NoisyWorldModel:
    return NoisyWorldModel(OracleWorldModel(env), error_rate=0.3, seed=7)


def hand_check(path: Path, make_env: Any = bw) -> tuple[int, int, int, int]:
    """(episodes, steps, confirmed, agreeing steps) recomputed from the records alone."""
    records = read_records(path)
    episodes: dict[str, list[Any]] = {}
    for rec in records:
        episodes.setdefault(rec.episode, []).append(rec)
    confirmed = agreeing = 0
    for eps in episodes.values():
        env = make_env(int(eps[0].problem.rsplit("-", 1)[1]))
        env.reset(seed=int(eps[0].problem.rsplit("-", 1)[1]))
        good = 0
        for rec in eps:
            res = env.step(Action(rec.action))
            good += (res.applicable == rec.applicable and sorted(res.state.facts) == rec.next_state
                     and res.terminated == rec.done)
            if res.terminated or res.truncated:
                break
        agreeing += good
        confirmed += good == len(eps)
    return len(episodes), len(records), confirmed, agreeing


@pytest.mark.parametrize("policy", ["random", "greedy"])
def test_oracle_is_fully_consistent(tmp_path: Path, policy: str) -> None:
    out = tmp_path / "synth.jsonl"
    report = synthesize(bw, oracle, seeds=[0, 1, 2], episodes_per_seed=2, max_steps=8, policy=policy,
                        anchor_every=None, out_path=out, seed=3)
    assert isinstance(report, SynthReport)
    assert report.episodes == 6 and report.steps > 0
    assert report.consistency == 1.0 and report.step_agreement == 1.0
    assert report.confirmed == 6 and report.agreeing_steps == report.steps
    records = read_records(out)
    assert len(records) == report.steps
    assert all(r.source == "synthetic" and r.applicable for r in records)
    assert all("/synthetic-" in r.episode for r in records)
    assert {r.episode for r in records} == {f"blocksworld-{s}/synthetic-{k}" for s in range(3) for k in range(2)}
    assert "consistency 1.000" in report.line()


def test_greedy_oracle_reaches_the_goal_sometimes(tmp_path: Path) -> None:
    report = synthesize(bw, oracle, seeds=[0, 1], max_steps=20, policy="greedy", anchor_every=None,
                        out_path=tmp_path / "s.jsonl")
    records = read_records(tmp_path / "s.jsonl")
    assert report.consistency == 1.0
    assert any(r.done for r in records)
    # an episode stops at the predicted goal: done only on its last step
    for ep in {r.episode for r in records}:
        steps = [r for r in records if r.episode == ep]
        assert not any(r.done for r in steps[:-1])


def test_noisy_model_is_less_consistent_and_counts_match(tmp_path: Path) -> None:
    out = tmp_path / "noisy.jsonl"
    report = synthesize(bw, noisy, seeds=[0, 1, 2, 3], episodes_per_seed=2, max_steps=10, policy="random",
                        anchor_every=None, out_path=out, seed=1)
    assert report.consistency < 1.0
    assert report.step_agreement < 1.0
    assert report.consistency == report.confirmed / report.episodes
    assert (report.episodes, report.steps, report.confirmed, report.agreeing_steps) == hand_check(out)
    assert all(r.source == "synthetic" for r in read_records(out))


def test_same_arguments_same_log(tmp_path: Path) -> None:
    for name in ("a", "b"):
        synthesize(bw, noisy, seeds=[5], episodes_per_seed=2, max_steps=6, anchor_every=None,
                   out_path=tmp_path / f"{name}.jsonl", seed=9)
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_anchoring_corrects_the_imagined_state(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = dict(seeds=[0, 1, 2, 3], episodes_per_seed=2, max_steps=10, policy="random", seed=1)
    free = synthesize(bw, noisy, anchor_every=None, out_path=tmp_path / "free.jsonl", **kwargs)
    anchored = synthesize(bw, noisy, anchor_every=1, out_path=tmp_path / "anch.jsonl", **kwargs)
    assert free.anchors == 0 and anchored.anchors > 0
    assert anchored.corrections > 0
    assert anchored.step_agreement >= free.step_agreement
    records = read_records(tmp_path / "anch.jsonl")
    # after an anchor every step starts from the real state the previous real step reached
    for ep in {r.episode for r in records}:
        steps = [r for r in records if r.episode == ep]
        seed = int(ep.split("/")[0].rsplit("-", 1)[1])
        env = bw(seed)
        state, _ = env.reset(seed=seed)
        for r in steps:
            assert r.state == sorted(state.facts)
            state = env.step(Action(r.action)).state
    assert (anchored.episodes, anchored.steps, anchored.confirmed, anchored.agreeing_steps) == \
        hand_check(tmp_path / "anch.jsonl")


def test_oracle_with_anchoring_never_corrects(tmp_path: Path) -> None:
    report = synthesize(bw, oracle, seeds=[0], episodes_per_seed=2, max_steps=6, anchor_every=2,
                        out_path=tmp_path / "s.jsonl")
    assert report.anchors > 0 and report.corrections == 0 and report.consistency == 1.0


class Flaky:
    """A blocksworld env whose step raises on the ``fail_at``-th call (counting every step)."""

    def __init__(self, inner: Any, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    @property
    def goal(self) -> Any:
        return self.inner.goal

    @property
    def task(self) -> Any:
        return self.inner.task

    def reset(self, *, seed: int | None = None) -> Any:
        return self.inner.reset(seed=seed)

    def candidate_actions(self, state: Any) -> Any:
        return self.inner.candidate_actions(state)

    def simulate(self, state: Any, action: Any) -> Any:
        return self.inner.simulate(state, action)

    def step(self, action: Any) -> Any:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("actuator jammed")
        return self.inner.step(action)


def test_environment_error_in_replay_names_seed_and_step(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    with pytest.raises(EnvironmentStepError, match=r"seed 4.*replay\), step 2.*actuator jammed"):
        synthesize(lambda s: Flaky(bw(s), fail_at=3), oracle, seeds=[4], max_steps=6, anchor_every=None,
                   out_path=out)
    kept = read_records(out)
    assert len(kept) == 6 and all(r.source == "synthetic" for r in kept)


def test_environment_error_while_building_is_named(tmp_path: Path) -> None:
    def boom(seed: int) -> Any:
        raise RuntimeError("no such rig")

    with pytest.raises(EnvironmentStepError, match=r"seed 11.*no such rig"):
        synthesize(boom, oracle, seeds=[11], out_path=tmp_path / "s.jsonl")


@pytest.mark.parametrize(("kwargs", "names"), [
    ({"seeds": []}, "seeds"),
    ({"seeds": [1, 1]}, "seeds must be distinct"),
    ({"seeds": [-1]}, "-1"),
    ({"seeds": "12"}, "'12'"),
    ({"episodes_per_seed": 0}, "episodes_per_seed .* 0"),
    ({"max_steps": 0}, "max_steps .* 0"),
    ({"max_steps": True}, "max_steps .* True"),
    ({"policy": "smart"}, "'smart'"),
    ({"anchor_every": 0}, "anchor_every .* 0"),
    ({"split": "dev"}, "'dev'"),
])
def test_bad_arguments_are_config_errors(tmp_path: Path, kwargs: dict[str, Any], names: str) -> None:
    args: dict[str, Any] = {"seeds": [0], "out_path": tmp_path / "s.jsonl", **kwargs}
    with pytest.raises(ConfigError, match=names):
        synthesize(bw, oracle, **args)
    assert not (tmp_path / "s.jsonl").exists()
