"""PDDL environment semantics against pyperplan, the generator, and check_env."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.env.base import StepResult, check_env
from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
from planner.env.pddl import PDDLEnvironment, domain_schemas, ground_task, normalize_action, parse_domain
from planner.errors import (
    DomainError,
    EnvironmentCheckError,
    InapplicableActionError,
    UnknownActionError,
)
from planner.types import Action, State


def test_candidate_actions_are_all_groundings(bw_env):
    env = bw_env(4)
    names = {a.name for a in env.candidate_actions(env.state)}
    # 4 pick-up + 4 put-down + 16 stack + 16 unstack (type-correct, including x = y).
    assert len(names) == 40
    assert "(stack b1 b1)" in names and "(unstack b2 b3)" in names
    assert env.candidate_actions(State()) == env.candidate_actions(env.state)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 6), seed=st.integers(0, 10_000), walk=st.integers(0, 10_000))
def test_step_matches_pyperplan_operators(n, seed, walk):
    task = ground_task(DOMAIN_PDDL, generate_problem(n, seed=seed))
    ops = task.pyperplan_task.operators
    rng = random.Random(walk)
    from pathlib import Path
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as tmp:
        d, p = Path(tmp) / "d.pddl", Path(tmp) / "p.pddl"
        d.write_text(DOMAIN_PDDL)
        p.write_text(generate_problem(n, seed=seed))
        env = PDDLEnvironment(d, p)
        env.reset()
        facts = task.init.facts
        for _ in range(15):
            op = rng.choice(ops)
            result = env.step(Action(op.name))
            if op.applicable(facts):
                facts = op.apply(facts)
                assert result.applicable
            else:
                assert not result.applicable
                assert "missing" in result.info["reason"]
            assert result.state.facts == facts
            assert result.terminated == (task.goal.facts <= facts)
            if result.terminated:
                assert result.reward == 1.0
                break


def test_inapplicable_step_leaves_state_and_strict_raises(bw_env):
    env = bw_env(3)
    start, _ = env.reset()
    bad = next(a for a in env.candidate_actions(start) if not env.simulate(start, a).applicable)
    result = env.step(bad)
    assert isinstance(result, StepResult)
    assert result.state == start and not result.applicable and not result.terminated
    strict = bw_env(3, strict=True)
    strict.reset()
    with pytest.raises(InapplicableActionError, match="missing"):
        strict.step(bad)


def test_unknown_action_is_named(bw_env):
    env = bw_env(3)
    env.reset()
    with pytest.raises(UnknownActionError, match=r"\(fly b1\)"):
        env.step(Action("(fly b1)"))
    assert env.parse_action("  ( Pick-Up   B1 ) ").name == "(pick-up b1)"
    assert normalize_action("pick-up b1") == "(pick-up b1)"


def test_truncation_after_max_steps(bw_env):
    env = bw_env(3, max_steps=1)
    start, _ = env.reset()
    result = env.step(env.candidate_actions(start)[0])
    assert result.truncated or result.terminated


def test_missing_and_bad_pddl_files(tmp_path):
    with pytest.raises(DomainError, match="not found"):
        PDDLEnvironment(tmp_path / "nope.pddl", tmp_path / "p.pddl")
    (tmp_path / "d.pddl").write_text(DOMAIN_PDDL)
    (tmp_path / "p.pddl").write_text("(define (problem x) (:domain blocksworld) (:init")
    with pytest.raises(DomainError, match="invalid PDDL"):
        PDDLEnvironment(tmp_path / "d.pddl", tmp_path / "p.pddl")


def test_parse_domain_keeps_the_lifted_domain_and_names_bad_text():
    domain = parse_domain(DOMAIN_PDDL)
    assert domain.name == "blocksworld" and sorted(domain.actions) == ["pick-up", "put-down", "stack", "unstack"]
    task = ground_task(DOMAIN_PDDL, generate_problem(3, seed=0))
    assert sorted(task.domain.actions) == sorted(domain.actions) and task.domain_name == "blocksworld"
    assert domain_schemas(DOMAIN_PDDL)[2] == {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
    with pytest.raises(DomainError, match=r"invalid PDDL domain in my\.pddl"):
        parse_domain("(define (domain x) (:predicates (on ?x)", source="my.pddl")


def test_generator_is_deterministic_and_valid():
    assert generate_problem(5, seed=1) == generate_problem(5, seed=1)
    assert generate_problem(5, seed=1) != generate_problem(5, seed=2)
    task = ground_task(DOMAIN_PDDL, generate_problem(5, seed=1))
    assert len(task.objects) == 5
    assert not task.goal.satisfied(task.init)
    with pytest.raises(ValueError):
        generate_problem(0, seed=0)


def test_check_env_accepts_pddl(bw_env):
    check_env(bw_env(4))


class _BrokenEnv:
    goal = None

    def reset(self, *, seed=None):
        return "not a state", {}

    def step(self, action):
        return None

    def candidate_actions(self, state):
        return []


def test_check_env_lists_problems():
    with pytest.raises(EnvironmentCheckError) as info:
        check_env(_BrokenEnv())
    text = str(info.value)
    assert "goal must have" in text and "State" in text


def test_check_env_catches_nondeterministic_reset(bw_env):
    env = bw_env(3)
    counter = iter(range(100))
    original = env.reset

    def reset(*, seed=None):
        state, info = original(seed=seed)
        return State(state.facts | {f"(noise {next(counter)})"}), info

    env.reset = reset  # type: ignore[method-assign]
    with pytest.raises(EnvironmentCheckError, match="not deterministic"):
        check_env(env)
