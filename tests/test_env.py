"""PDDL environment semantics against pyperplan, the generator, and check_env."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.env.base import StepResult, check_env
from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
from planner.env.pddl import PDDLEnvironment, domain_schemas, ground_task, normalize_action, parse_domain
from planner.errors import (
    ConfigError,
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


# -- problems checked against their domain ---------------------------------------------------------
BASE_PROBLEM = generate_problem(3, seed=0)
INIT, GOAL = "(:init ", "(:goal (and "


@pytest.mark.parametrize(
    ("section", "atom", "why"),
    [
        (INIT, "(glows b1)", "names predicate glows, which the domain does not declare"),
        (INIT, "(on b1)", "has 1 argument(s); predicate on takes 2"),
        (INIT, "(handempty b1)", "has 1 argument(s); predicate handempty takes 0"),
        (INIT, "(on b1 b7)", "names object b7, which is neither in :objects nor a domain constant"),
        (GOAL, "(glows b1)", "names predicate glows, which the domain does not declare"),
        (GOAL, "(on b1 b2 b3)", "has 3 argument(s); predicate on takes 2"),
        (GOAL, "(on b1 b7)", "names object b7, which is neither in :objects nor a domain constant"),
    ],
)
def test_problem_atoms_are_checked_against_the_domain(tmp_path, section, atom, why):
    (tmp_path / "d.pddl").write_text(DOMAIN_PDDL)
    problem = tmp_path / "p.pddl"
    problem.write_text(BASE_PROBLEM.replace(section, section + atom + " "))
    with pytest.raises(DomainError) as info:
        PDDLEnvironment(tmp_path / "d.pddl", problem)
    message = str(info.value)
    assert message == f"invalid PDDL in {problem}: {section.split()[0].lstrip('(')} atom {atom} {why}"


@pytest.mark.parametrize(("goal", "part"), [("(and (not (on b1 b2)))", "(not (on b1 b2))"),
                                           ("(and (on ?x b1))", "(on ?x b1)"),
                                           ("(or (on b1 b2) (clear b1))", "(or (on b1 b2) (clear b1))")])
def test_a_goal_that_is_not_a_conjunction_of_ground_atoms_is_named(goal, part):
    text = BASE_PROBLEM.replace("(:goal (and (on b2 b3) (ontable b1) (ontable b3)))", f"(:goal {goal})")
    with pytest.raises(DomainError, match=re.escape(f"invalid PDDL in p.pddl: :goal part {part} is not a ground atom")):
        ground_task(DOMAIN_PDDL, text, source="p.pddl")


def test_domain_constants_may_appear_in_problem_atoms():
    domain = DOMAIN_PDDL.replace("(:predicates", "(:constants table)\n  (:predicates")
    task = ground_task(domain, BASE_PROBLEM.replace(INIT, INIT + "(clear table) "))
    assert "(clear table)" in task.init.facts


def test_a_problem_for_another_domain_is_named():
    with pytest.raises(DomainError, match="the problem is for domain logistics, not blocksworld"):
        ground_task(DOMAIN_PDDL, BASE_PROBLEM.replace("(:domain blocksworld)", "(:domain logistics)"))


def test_a_cyclic_type_hierarchy_is_refused():
    domain = """(define (domain t) (:requirements :strips :typing) (:types a - b b - a)
      (:predicates (p ?x - a)) (:action act :parameters (?x - a) :precondition (p ?x) :effect (not (p ?x))))"""
    with pytest.raises(DomainError, match="type a is its own ancestor"):
        ground_task(domain, "(define (problem q) (:domain t) (:objects o - a) (:init (p o)) (:goal (and (p o))))")


# -- messages quoting input stay short --------------------------------------------------------------
HUGE = "x" * 5_000_000


@pytest.mark.parametrize(
    ("domain", "problem"),
    [
        (DOMAIN_PDDL, BASE_PROBLEM.replace(INIT, f"{INIT}(clear {HUGE}) ")),
        (DOMAIN_PDDL, BASE_PROBLEM.replace(INIT, f"{INIT}({HUGE} b1) ")),
        (DOMAIN_PDDL, BASE_PROBLEM.replace(GOAL, f"{GOAL}(on b1 {HUGE}) ")),
        (DOMAIN_PDDL, BASE_PROBLEM.replace("(:domain blocksworld)", f"(:domain {HUGE})")),
        (DOMAIN_PDDL, BASE_PROBLEM.replace(":init", f":{HUGE}")),
        (DOMAIN_PDDL.replace("(define (domain blocksworld)", f"(define (domain {HUGE})"),
         BASE_PROBLEM.replace("(:domain blocksworld)", f"(:domain {HUGE})").replace(INIT, f"{INIT}(clear {HUGE}) ")),
        (DOMAIN_PDDL.replace("(:requirements :strips)", f"(:requirements :strips) (:types {HUGE} - {HUGE})"),
         BASE_PROBLEM),
    ],
    ids=["object", "predicate", "goal-object", "domain-name", "keyword", "both", "types"],
)
def test_messages_quoting_a_huge_single_line_file_are_bounded(tmp_path, domain, problem):
    (tmp_path / "d.pddl").write_text(" ".join(domain.split()))
    (tmp_path / "p.pddl").write_text(" ".join(problem.split()))  # one line of about 5 MB
    with pytest.raises(DomainError) as info:
        PDDLEnvironment(tmp_path / "d.pddl", tmp_path / "p.pddl")
    message = str(info.value)
    assert "\n" not in message and len(message) < 1000, message[:2000]


# -- problems too large to ground ------------------------------------------------------------------
def _blocks_problem(n_blocks: int) -> str:
    """A Blocksworld problem with ``n_blocks`` blocks in one tower (beyond the generator's bound)."""
    from planner.env.blocksworld import tower_facts

    blocks = [f"b{i}" for i in range(1, n_blocks + 1)]
    return (f"(define (problem big) (:domain blocksworld) (:objects {' '.join(blocks)}) "
            f"(:init {' '.join(tower_facts([blocks]))}) (:goal (and (on b1 b2))))")


def test_the_largest_blocksworld_problem_under_the_bound_grounds():
    from planner.env.pddl import MAX_GROUND_ACTIONS

    task = ground_task(DOMAIN_PDDL, _blocks_problem(223))  # 2n + 2n² = 99,904 ground actions
    assert len(task.operators) == 99_904 <= MAX_GROUND_ACTIONS


@pytest.mark.parametrize(("objects", "estimate"), [(224, "100,800"), (200_000, "80,000,400,000")])
def test_problems_too_large_to_ground_are_refused_quickly(tmp_path, objects, estimate):
    import time

    (tmp_path / "d.pddl").write_text(DOMAIN_PDDL)
    problem = tmp_path / "p.pddl"
    if objects == 224:
        problem.write_text(_blocks_problem(objects))
    else:
        names = " ".join(f"o{i}" for i in range(objects))
        problem.write_text(f"(define (problem big) (:domain blocksworld) (:objects {names}) (:init (handempty)) "
                           "(:goal (and (holding o1))))")
    start = time.perf_counter()
    with pytest.raises(DomainError) as info:
        PDDLEnvironment(tmp_path / "d.pddl", problem)
    assert time.perf_counter() - start < 60
    assert str(info.value) == (f"problem too large in {problem}: grounding its {objects:,} objects would build about "
                               f"{estimate} ground actions, more than the 100,000 allowed")


def test_static_precondition_scans_are_bounded():
    domain = ("(define (domain s) (:requirements :strips) (:predicates (block ?x) (done ?x)) "
              "(:action act :parameters (?x) :precondition (and (block ?x)) :effect (and (done ?x))))")
    objects = " ".join(f"o{i}" for i in range(10_000))

    def problem(n_init: int) -> str:
        init = " ".join(f"(block o{i})" for i in range(n_init))
        return f"(define (problem p) (:domain s) (:objects {objects}) (:init {init}) (:goal (and (done o1))))"

    with pytest.raises(DomainError, match=r"about 20,010,000 initial-state scans for static preconditions"):
        ground_task(domain, problem(2001))
    assert len(ground_task(domain, problem(20)).operators) == 20


def test_ground_atoms_are_bounded():
    effects = " ".join(f"(q{i} ?x)" for i in range(30))
    domain = (f"(define (domain a) (:requirements :strips) (:predicates {effects}) "
              f"(:action act :parameters (?x) :precondition (and) :effect (and {effects})))")
    objects = " ".join(f"o{i}" for i in range(70_000))
    with pytest.raises(DomainError, match=r"about 2,100,000 ground precondition and effect atoms"):
        ground_task(domain, f"(define (problem p) (:domain a) (:objects {objects}) (:init) (:goal (and (q0 o1))))")


def test_the_generator_is_bounded_before_writing_anything(tmp_path):
    from planner.env.blocksworld import MAX_BLOCKS, write_problem
    from planner.errors import ConfigError

    assert MAX_BLOCKS == 50
    ground_task(DOMAIN_PDDL, generate_problem(MAX_BLOCKS, seed=0))
    for n in (51, 150, 200_000):
        with pytest.raises(ConfigError, match=f"got {n}"):
            write_problem(tmp_path / "out", n, seed=0)
    assert not (tmp_path / "out").exists()


def test_write_problem_never_replaces_other_content(tmp_path):
    from planner.env.blocksworld import write_problem
    from planner.io import FileWriteError

    domain, problem = write_problem(tmp_path, 3, seed=0)
    assert write_problem(tmp_path, 3, seed=0) == (domain, problem)  # the same text: kept as is
    problem.write_text("my own edits")
    with pytest.raises(FileWriteError, match=re.escape(f"cannot write {problem}: it exists with other content")):
        write_problem(tmp_path, 3, seed=0)
    assert problem.read_text() == "my own edits"
    domain.write_text("(define (domain mine))")
    with pytest.raises(FileWriteError, match=re.escape(f"cannot write {domain}")):
        write_problem(tmp_path, 4, seed=0)
    assert domain.read_text() == "(define (domain mine))" and not (tmp_path / "bw-4-0.pddl").exists()


def test_mixed_family_cycles_sizes_and_starts_from_single_towers_and_the_table():
    from planner.env.blocksworld import make_mixed, mixed_problem

    shapes = {"one-tower": 0, "table": 0}
    for seed in range(60):
        n, text = mixed_problem(seed)
        assert n == 3 + seed % 6
        init = text.split("(:init")[1].split("(:goal")[0]
        ontable = init.count("(ontable")
        shapes["one-tower"] += ontable == 1
        shapes["table"] += ontable == n
    assert shapes["one-tower"] >= 5 and shapes["table"] >= 3
    env = make_mixed(seed=4, min_blocks=5, max_blocks=5)
    assert len(env.task.objects) == 5 and not env.goal.satisfied(env.state)
    with pytest.raises(ConfigError, match="min_blocks"):
        mixed_problem(0, min_blocks=6, max_blocks=5)


def test_an_empty_pddl_file_is_named(tmp_path):
    (tmp_path / "d.pddl").write_text(DOMAIN_PDDL)
    (tmp_path / "p.pddl").write_text("  \n")
    with pytest.raises(DomainError, match=r"problem file .*p\.pddl is empty"):
        PDDLEnvironment(tmp_path / "d.pddl", tmp_path / "p.pddl")
