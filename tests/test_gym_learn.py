"""A real Gymnasium environment learned from interaction alone and planned with the learned model.

FrozenLake on random 4×4 maps: the seed picks the map, the map's holes are facts of the state,
and the test seeds' maps were never trained on. ``planner.learn.learn`` explores through
``reset`` and ``step`` only, trains a GGUF world model, and the agent then plans with it
against the real Gymnasium environment (figures for larger runs:
``benchmarks/learned_planning.py --env frozenlake-v0 --env-arg size=5``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gymnasium", reason="the gym extra is not installed")
pytest.importorskip("torch", reason="the train extra (PyTorch) is not installed")

import planner
from planner.agent import Agent
from planner.learn import LearnReport, learn
from planner.world.factory import bind_environment_model

SIZE = 4
TEST_SEEDS = range(5000, 5010)
STEPS = 1000


def make_lake(seed: int) -> planner.Environment:
    return planner.make("frozenlake-v0", seed=seed, size=SIZE)


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> LearnReport:
    out = tmp_path_factory.mktemp("lake")
    return learn(make_lake, out_dir=out, seeds={"train": range(0, 150), "test": TEST_SEEDS}, steps=STEPS,
                 episodes_per_seed=2, max_steps=30, domain_name="frozenlake", threads=2)


def test_the_learned_model_predicts_held_out_maps(learned: LearnReport) -> None:
    assert learned.schema.predicates == {"at": 2, "hole": 2}
    assert learned.schema.actions == {"left": 0, "down": 0, "right": 0, "up": 0}
    assert learned.fidelity.overall["next_state_exact_match"] >= 0.97
    assert Path(learned.card).read_text().count("frozenlake") >= 1


def test_the_agent_plans_held_out_maps_with_the_learned_model(learned: LearnReport) -> None:
    solved = 0
    for seed in TEST_SEEDS:
        env = make_lake(seed)
        model = bind_environment_model(learned.model, env, reset_seed=seed)
        try:
            result = Agent(env, model).run(seed=seed)
        finally:
            model.close()  # type: ignore[attr-defined]
        solved += result.solved
    assert solved >= 8, f"solved {solved} of {len(TEST_SEEDS)} held-out maps"
