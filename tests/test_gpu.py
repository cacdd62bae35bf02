"""The GPU path: the same predictions with every layer offloaded as on the CPU.

Runs only where llama.cpp was built with a GPU backend (CUDA, Metal) and skips with that
reason elsewhere; on a CPU-only build, asking for GPU layers is accepted, logged, and ignored.
"""

from __future__ import annotations

import random

import pytest

from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.world.engine import gpu_offload_supported
from planner.world.factory import default_model_path
from planner.world.llama import LlamaWorldModel

MODEL = default_model_path("blocksworld")


def _env(tmp_path, blocks: int = 5, seed: int = 3) -> PDDLEnvironment:
    return PDDLEnvironment(*write_problem(tmp_path, blocks, seed=seed))


def test_gpu_layers_on_a_cpu_build_are_ignored_not_fatal(tmp_path):
    if gpu_offload_supported():
        pytest.skip("this llama.cpp build offloads to a GPU")
    env = _env(tmp_path)
    model = LlamaWorldModel.for_environment(MODEL, env, n_gpu_layers=-1)
    try:
        assert model.engine.gpu_layers == 0
        action = next(iter(env.candidate_actions(env.state)))
        assert model.predict(env.state, action).next_state is not None
    finally:
        model.close()


@pytest.mark.skipif(not gpu_offload_supported(), reason="llama.cpp was built without a GPU backend (CUDA, Metal)")
def test_offloaded_model_predicts_as_the_cpu_model(tmp_path):
    env = _env(tmp_path)
    states = env.random_walk(env.state, 15, random.Random(0))
    cpu = LlamaWorldModel.for_environment(MODEL, env, n_gpu_layers=0)
    gpu = LlamaWorldModel.for_environment(MODEL, env, n_gpu_layers=-1)
    try:
        assert gpu.engine.gpu_layers == -1
        compared = 0
        for state in states:
            actions = list(env.candidate_actions(state))
            for a, b in zip(cpu.predict_many(state, actions), gpu.predict_many(state, actions)):
                assert (a.applicable, a.next_state, a.done) == (b.applicable, b.next_state, b.done)
                assert a.confidence == pytest.approx(b.confidence, rel=1e-2, abs=1e-3)
                compared += 1
        assert compared > 100
    finally:
        cpu.close()
        gpu.close()
