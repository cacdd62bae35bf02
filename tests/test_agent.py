"""The agent loop: execution, divergence and replanning, episode logs that survive crashes."""

from __future__ import annotations

import json

import pytest

from planner.agent import Agent
from planner.config import PlannerConfig
from planner.errors import EnvironmentStepError
from planner.io import read_jsonl
from planner.world.cache import CachedWorldModel
from planner.world.oracle import NoisyWorldModel, OracleWorldModel


@pytest.mark.parametrize("algorithm", ["beam", "mcts"])
@pytest.mark.parametrize("mode", ["plan", "receding"])
def test_exact_model_solves_without_divergence(bw_env, algorithm, mode):
    env = bw_env(5, 1)
    cfg = PlannerConfig().updated(search={"algorithm": algorithm}, agent={"mode": mode})
    result = Agent(env, OracleWorldModel(env), config=cfg).run()
    assert result.solved and env.goal.satisfied(env.state)
    assert result.divergences == 0 and result.replans == 0
    assert len(result.steps) == len(env.optimal_plan())
    assert result.searches == (1 if mode == "plan" else len(result.steps))


@pytest.mark.parametrize("algorithm", ["beam", "mcts"])
def test_recovers_from_injected_model_errors(bw_env, algorithm):
    recovered = 0
    for seed in range(4):
        env = bw_env(5, seed)
        noisy = NoisyWorldModel(OracleWorldModel(env), error_rate=0.15, seed=seed, goal=env.goal)
        cfg = PlannerConfig().updated(search={"algorithm": algorithm})
        result = Agent(env, noisy, config=cfg).run()
        assert result.solved, (seed, result.stopped_by)
        assert result.replans == result.divergences
        for step in result.steps:
            assert step.diverged == (step.real != step.imagined or not step.applicable)
        recovered += result.divergences > 0
    assert recovered >= 2  # the injected errors did mislead the agent, and it recovered


def test_episode_log_records_every_step(bw_env, tmp_path):
    env = bw_env(4, 2)
    log = tmp_path / "logs" / "episode.jsonl"
    result = Agent(env, CachedWorldModel(OracleWorldModel(env)), log_path=log).run(seed=3)
    records = read_jsonl(log)
    kinds = [r["event"] for r in records]
    assert kinds[0] == "start" and kinds[1] == "plan" and kinds[-1] == "end"
    assert kinds.count("step") == len(result.steps)
    assert records[-1]["data"]["solved"] is True
    assert records[-1]["data"]["plan"] == [a.name for a in result.actions]
    # Appending: a second episode adds to the file and keeps the first.
    Agent(env, OracleWorldModel(env), log_path=log).run()
    assert len(read_jsonl(log)) == 2 * len(records)


def test_log_survives_environment_that_raises(bw_env, tmp_path):
    env = bw_env(5, 3)
    real_step = env.step
    calls = {"n": 0}

    def flaky(action):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("gripper jammed")
        return real_step(action)

    env.step = flaky  # type: ignore[method-assign]
    log = tmp_path / "ep.jsonl"
    with pytest.raises(EnvironmentStepError, match="gripper jammed"):
        Agent(env, OracleWorldModel(env), log_path=log).run()
    lines = log.read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert events == ["start", "plan", "step", "step", "error"]
    assert "gripper jammed" in json.loads(lines[-1])["data"]["error"]


def test_step_limit_and_no_plan(bw_env):
    env = bw_env(6, 0)
    cfg = PlannerConfig().updated(agent={"max_steps": 2})
    result = Agent(env, OracleWorldModel(env), config=cfg).run()
    assert not result.solved and len(result.steps) == 2 and result.stopped_by == "max_steps"

    class Blind:
        stats = OracleWorldModel(env).stats

        def predict(self, state, action):
            return env.simulate(state, action).__class__(applicable=False, next_state=state)

        def predict_many(self, state, actions):
            return [self.predict(state, a) for a in actions]

    result = Agent(bw_env(3, 0), Blind()).run()
    assert result.stopped_by == "no_plan" and not result.steps
