"""IPC domain families (planner.env.ipc): registered environments solved end to end with the
exact model, optimal plan lengths, generators, shipped domain files, pddl-v0 over a folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import planner
from planner.agent import Agent
from planner.env import adl
from planner.env.base import check_env
from planner.env.ipc import FAMILIES, briefcase, domain_file, gripper, logistics, optimal_plan_length
from planner.env.pddl import PDDLEnvironment
from planner.errors import ConfigError, DomainError
from planner.world.oracle import OracleWorldModel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
IPC_ENVS = ["gripper-v0", "logistics-v0", "briefcase-v0"]
needs_reader = pytest.mark.skipif(not adl.rich_grounder_installed(),
                                  reason="briefcase-v0 needs unified-planning (the 'pddl' extra)")


def _make(name: str, **kwargs) -> PDDLEnvironment:
    if name == "briefcase-v0" and not adl.rich_grounder_installed():
        pytest.skip("briefcase-v0 needs unified-planning (the 'pddl' extra)")
    env = planner.make(name, **kwargs)
    assert isinstance(env, PDDLEnvironment)
    return env


@pytest.mark.parametrize("name", IPC_ENVS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_family_is_solved_end_to_end_by_the_exact_model(name, seed):
    env = _make(name, seed=seed)
    optimal = optimal_plan_length(env)
    result = Agent(env, OracleWorldModel(env)).run()
    assert result.solved and env.goal.satisfied(env.state)
    assert result.divergences == 0
    assert optimal <= len(result.steps) <= optimal + 2, (name, seed, len(result.steps), optimal)


@pytest.mark.parametrize(("name", "ground_actions", "lengths"), [
    ("gripper-v0", 36, [11, 8, 8]),
    ("logistics-v0", 68, [6, 7, 7]),
    ("briefcase-v0", 14, [5, 3, 5]),
])
def test_default_sizes_ground_actions_and_optimal_lengths(name, ground_actions, lengths):
    envs = [_make(name, seed=seed) for seed in range(3)]
    assert [len(env.candidate_actions(env.state)) for env in envs] == [ground_actions] * 3
    assert [optimal_plan_length(env) for env in envs] == lengths
    assert [len(env.optimal_plan() or []) for env in envs] == lengths


@pytest.mark.parametrize("name", IPC_ENVS)
def test_check_env_and_seeds(name):
    env = _make(name, seed=4)
    check_env(env, seed=4, max_steps=8)
    again = _make(name, seed=4)
    assert env.reset(seed=0) == again.reset(seed=0) and env.goal == again.goal
    assert {(_make(name, seed=s).task.init, _make(name, seed=s).goal) for s in range(1, 6)}.__len__() > 1


def test_the_families_use_the_grounder_they_say():
    assert _make("gripper-v0").task.is_strips and _make("logistics-v0").task.is_strips
    assert "typing" in Path(domain_file("logistics")).read_text()
    if adl.rich_grounder_installed():
        assert ":conditional-effects" in _make("briefcase-v0").task.features


# -- gripper -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("balls", [1, 2, 3, 4, 5])
def test_gripper_closed_form_equals_a_star(balls):
    for seed in range(4):
        env = gripper.make_gripper(seed=seed, balls=balls)
        plan = env.optimal_plan()
        assert plan is not None
        assert gripper.closed_form_length(env.task.init.facts, env.task.goal.facts) == len(plan), (balls, seed)


def test_gripper_seed_zero_is_the_competition_problem():
    text = gripper.generate_problem(4, seed=0)
    assert "(at-robby rooma)" in text and "(:goal (and (at ball1 roomb) (at ball2 roomb) (at ball3 roomb) " \
                                           "(at ball4 roomb)))" in text
    # 2n + 2⌈n/2⌉ - 1 actions for n balls
    for n in (1, 4, 7, 20, 200):
        env = gripper.make_gripper(balls=n)
        assert optimal_plan_length(env) == 2 * n + 2 * -(-n // 2) - 1
    assert len(gripper.make_gripper(balls=200).task.operators) == 4 + 8 * 200
    assert gripper.optimal_plan_length_of(0, 0) == 0 and gripper.optimal_plan_length_of(1, 3) == 12


def test_gripper_closed_form_refuses_other_shapes():
    env = gripper.make_gripper(balls=2)
    init = env.task.init.facts
    assert gripper.closed_form_length(init - {"(free left)"}, env.goal.facts) is None
    assert gripper.closed_form_length(init, {"(at-robby roomb)"}) is None


# -- sizes and keywords --------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "kwargs", "match"), [
    ("gripper-v0", {"balls": 0}, r"balls must be a whole number in 1\.\.200, got 0"),
    ("gripper-v0", {"balls": "4"}, r"balls must be a whole number in 1\.\.200, got '4'"),
    ("logistics-v0", {"cities": 11}, r"cities must be a whole number in 1\.\.10, got 11"),
    ("logistics-v0", {"airplanes": 0}, r"airplanes must be a whole number in 1\.\.5, got 0"),
    ("briefcase-v0", {"locations": 1}, r"locations must be a whole number in 2\.\.30, got 1"),
    ("briefcase-v0", {"portables": True}, r"portables must be a whole number in 1\.\.30, got True"),
    ("gripper-v0", {"rooms": 3}, r"gripper-v0: bad arguments .*'rooms'.*balls"),
])
def test_bad_sizes_are_config_errors(name, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        planner.make(name, **kwargs)


def test_keywords_set_the_size():
    assert len(_make("gripper-v0", balls=6).task.objects) == 2 + 2 + 6
    env = _make("logistics-v0", seed=3, cities=3, locations=3, packages=4, airplanes=2)
    assert sum(o.startswith("pkg") for o in env.task.objects) == 4 and "loc3-2" in env.task.objects
    if adl.rich_grounder_installed():
        env = _make("briefcase-v0", locations=5, portables=4)
        assert len(env.task.objects) == 9
    assert _make("gripper-v0", max_steps=1).max_steps == 1


# -- shipped files ---------------------------------------------------------------------------------
def test_domain_files_ship_with_the_package():
    for family in FAMILIES:
        assert domain_file(family).is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "env/ipc/*.pddl" in data["tool"]["setuptools"]["package-data"]["planner"]
    extras = data["project"]["optional-dependencies"]
    assert any(r.startswith("unified-planning>=") for r in extras["pddl"])
    assert set(extras["pddl"]) <= set(extras["dev"])
    with pytest.raises(ConfigError, match="unknown IPC family 'sokoban'"):
        domain_file("sokoban")


def test_problems_are_written_to_a_folder_removed_with_the_env():
    import gc

    env = gripper.make_gripper(seed=1)
    folder = env.problem_path.parent
    assert folder.is_dir() and env.domain_path.read_text() == domain_file("gripper").read_text()
    del env
    gc.collect()
    assert not folder.exists()


def test_generators_are_deterministic():
    assert logistics.generate_problem(seed=5) == logistics.generate_problem(seed=5)
    assert logistics.generate_problem(seed=5) != logistics.generate_problem(seed=6)
    assert briefcase.generate_problem(seed=5) == briefcase.generate_problem(seed=5)


# -- pddl-v0 over several problem files --------------------------------------------------------------
@pytest.fixture
def gripper_folder(tmp_path) -> Path:
    (tmp_path / "domain.pddl").write_text(domain_file("gripper").read_text())
    for n in (1, 2, 3):
        (tmp_path / f"p{n}.pddl").write_text(gripper.generate_problem(n, seed=0))
    return tmp_path


def test_pddl_v0_problems_folder_and_glob(gripper_folder):
    domain = gripper_folder / "domain.pddl"
    names = [planner.make("pddl-v0", seed=s, domain=domain, problems=gripper_folder).task.name for s in range(4)]
    assert names == ["gripper-1-0", "gripper-2-0", "gripper-3-0", "gripper-1-0"]
    glob = str(gripper_folder / "p[23].pddl")
    assert planner.make("pddl-v0", seed=0, domain=domain, problems=glob).task.name == "gripper-2-0"


def test_pddl_v0_problems_errors(gripper_folder):
    domain = gripper_folder / "domain.pddl"
    with pytest.raises(ConfigError, match=r"exactly one of problem=PATH and problems=DIR\|GLOB, got neither"):
        planner.make("pddl-v0", domain=domain)
    with pytest.raises(ConfigError, match="got both"):
        planner.make("pddl-v0", domain=domain, problem=gripper_folder / "p1.pddl", problems=gripper_folder)
    with pytest.raises(ConfigError, match=r"problems='.*q\*\.pddl' names no problem file"):
        planner.make("pddl-v0", domain=domain, problems=str(gripper_folder / "q*.pddl"))


@needs_reader
def test_pddl_v0_reads_a_rich_domain(tmp_path):
    (tmp_path / "d.pddl").write_text(domain_file("briefcase").read_text())
    (tmp_path / "p.pddl").write_text(briefcase.generate_problem(seed=2))
    env = planner.make("pddl-v0", domain=tmp_path / "d.pddl", problem=tmp_path / "p.pddl")
    assert not env.task.is_strips and optimal_plan_length(env) == 5


def test_unsolvable_problem_is_named(tmp_path):
    (tmp_path / "d.pddl").write_text(domain_file("gripper").read_text())
    text = gripper.generate_problem(1, seed=0).replace("(free left) (free right) ", "")
    (tmp_path / "p.pddl").write_text(text)
    with pytest.raises(DomainError, match="problem gripper-1-0 has no plan"):
        optimal_plan_length(PDDLEnvironment(tmp_path / "d.pddl", tmp_path / "p.pddl"))


# -- the command -----------------------------------------------------------------------------------
def test_planner_solve_env_gripper_with_the_exact_model(tmp_path):
    out = subprocess.run([sys.executable, "-m", "planner", "solve", "--env", "gripper-v0", "--seed", "1", "--oracle"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "gripper-4-1: solved in 8 steps" in out.stdout
