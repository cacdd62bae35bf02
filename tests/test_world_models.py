"""Exact, noisy, cached and experience-corrected world models."""

from __future__ import annotations

import pytest

from planner.types import Transition
from planner.world.cache import CachedWorldModel
from planner.world.memory import ExperienceOverlay
from planner.world.oracle import NoisyWorldModel, OracleWorldModel


def test_oracle_matches_simulator_and_counts(bw_env):
    env = bw_env(4)
    model = OracleWorldModel(env)
    actions = list(env.candidate_actions(env.state))
    preds = model.predict_many(env.state, actions)
    assert [p.applicable for p in preds] == [env.simulate(env.state, a).applicable for a in actions]
    assert model.stats.predictions == len(actions)


def test_noisy_rate_and_consistency(bw_env):
    env = bw_env(5)
    noisy = NoisyWorldModel(OracleWorldModel(env), error_rate=0.3, seed=1)
    actions = list(env.candidate_actions(env.state))
    first = noisy.predict_many(env.state, actions)
    again = noisy.predict_many(env.state, actions)
    assert first == again  # consistently wrong, reproducible
    wrong = sum(not p.same_outcome(env.simulate(env.state, a)) for p, a in zip(first, actions))
    assert 0 < wrong < len(actions)
    assert NoisyWorldModel(OracleWorldModel(env), error_rate=0.0).predict_many(
        env.state, actions) == [env.simulate(env.state, a) for a in actions]
    with pytest.raises(ValueError, match="error_rate"):
        NoisyWorldModel(OracleWorldModel(env), error_rate=1.5)


def test_cache_hits_and_lru_bound(bw_env):
    env = bw_env(3)
    inner = OracleWorldModel(env)
    cache = CachedWorldModel(inner, maxsize=10)
    actions = list(env.candidate_actions(env.state))[:8]
    cache.predict_many(env.state, actions)
    cache.predict_many(env.state, actions)
    assert inner.stats.cache_hits == 8
    assert inner.stats.predictions == 16
    cache.predict_many(env.state, list(env.candidate_actions(env.state))[8:20])
    assert len(cache) == 10
    with pytest.raises(ValueError):
        CachedWorldModel(inner, maxsize=0)


def test_experience_overrides_model(bw_env):
    env = bw_env(3)
    wrong = NoisyWorldModel(OracleWorldModel(env), error_rate=1.0)
    overlay = ExperienceOverlay(wrong)
    action = env.candidate_actions(env.state)[0]
    truth = env.simulate(env.state, action)
    assert not overlay.predict(env.state, action).same_outcome(truth)
    overlay.record(Transition(env.state, action, truth.applicable, truth.next_state,
                              truth.reward, truth.done))
    assert overlay.predict(env.state, action).same_outcome(truth)
    assert overlay.predict_many(env.state, [action])[0].same_outcome(truth)


class _Counting:
    """An inner model that records each predict_many call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    @property
    def stats(self):
        return self.inner.stats

    def predict(self, state, action):
        self.calls.append([action])
        return self.inner.predict(state, action)

    def predict_many(self, state, actions):
        self.calls.append(list(actions))
        return self.inner.predict_many(state, actions)


@pytest.mark.parametrize("wrapper", ["cache", "overlay"])
def test_memo_wrappers_ask_the_inner_model_once_about_the_rest(bw_env, wrapper):
    env = bw_env(3)
    inner = _Counting(NoisyWorldModel(OracleWorldModel(env), error_rate=1.0))
    memo = CachedWorldModel(inner) if wrapper == "cache" else ExperienceOverlay(inner)
    actions = list(env.candidate_actions(env.state))[:4]
    truth = env.simulate(env.state, actions[1])
    if wrapper == "cache":
        memo.predict(env.state, actions[1])
    else:
        memo.record(Transition(env.state, actions[1], truth.applicable, truth.next_state, truth.reward, truth.done))
    inner.calls.clear()
    preds = memo.predict_many(env.state, [*actions, actions[0]])
    assert inner.calls == [[actions[0], actions[2], actions[3]]]  # one call, each unknown action once
    assert preds[4] is preds[0]
    assert preds[1].same_outcome(truth) == (wrapper == "overlay")  # the overlay's real outcome wins
    assert len(memo) == (4 if wrapper == "cache" else 1)  # the overlay keeps only real outcomes
