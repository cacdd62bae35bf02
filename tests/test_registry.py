"""Environments by name or path: ``planner.make`` and ``planner.register``."""

from __future__ import annotations

import gc
import sys
import textwrap
from pathlib import Path

import pytest

import planner
from planner.env import registry
from planner.env.base import check_env
from planner.env.pddl import PDDLEnvironment
from planner.errors import ConfigError, DomainError, EnvironmentCheckError
from planner.types import Action

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def clean_registry(monkeypatch):
    """A private copy of the registry, so registrations in a test do not leak."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def write_module(tmp_path: Path, body: str, name: str = "envs.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


CELL_MODULE = """
    from dataclasses import dataclass

    from planner.env.base import StepResult
    from planner.types import Action, FactGoal, Prediction, State


    @dataclass(frozen=True)
    class Counter:  # a dataclass: loading needs the module in sys.modules
        limit: int
        start: int = 0

        @property
        def goal(self):
            return FactGoal(frozenset({f"(at {self.limit})"}))

        def reset(self, *, seed=None):
            return State.from_facts([f"(at {self.start})"]), {}

        def step(self, action):
            raise NotImplementedError

        def candidate_actions(self, state):
            return (Action("(inc)"),)


    def make_counter(seed, *, limit=3):
        return Counter(limit=limit, start=seed)


    def boom(seed, **kwargs):
        raise ValueError(f"bad size {kwargs.get('size')}")


    def not_an_env(seed):
        return 42


    class NumberGoal(Counter):
        goal = 1


    def bad_goal(seed):
        return NumberGoal(limit=1)


    def anything(seed, **kwargs):
        return Counter(limit=len(kwargs) + 1, start=seed)


    NOT_CALLABLE = 3
"""


# -- names ---------------------------------------------------------------------------------------
def test_public_api_exports_make_and_register():
    assert planner.make is registry.make and planner.register is registry.register
    assert {"make", "register"} <= set(planner.__all__)


def test_builtins_are_registered_with_descriptions():
    names = registry.registered()
    assert {"blocksworld-v0", "pddl-v0", "frozenlake-v0"} <= set(names)
    assert all(spec.description for spec in names.values())
    assert list(names) == sorted(names)


def test_unknown_name_lists_registered_ones():
    with pytest.raises(ConfigError, match=r"unknown environment 'nope-v0'.*blocksworld-v0.*pddl-v0"):
        planner.make("nope-v0")


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_empty_or_non_text_name_is_refused(bad):
    with pytest.raises(ConfigError, match=r"registered id or PATH\.py:FACTORY"):
        planner.make(bad)


@pytest.mark.parametrize("seed", ["1", 1.5, True])
def test_seed_must_be_an_int(seed):
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        planner.make("blocksworld-v0", seed=seed)


# -- built-ins -----------------------------------------------------------------------------------
def test_blocksworld_blocks_and_seed():
    env = planner.make("blocksworld-v0", seed=3, blocks=4)
    assert isinstance(env, PDDLEnvironment)
    assert env.task.name == "bw-4-3" and len(env.task.objects) == 4


def test_equal_seeds_give_equal_resets_and_different_seeds_differ():
    a, b = planner.make("blocksworld-v0", seed=7), planner.make("blocksworld-v0", seed=7)
    assert a.reset(seed=0) == b.reset(seed=0) and a.goal == b.goal
    c = planner.make("blocksworld-v0", seed=8)
    assert (c.reset(seed=0)[0], c.goal) != (a.reset(seed=0)[0], a.goal)


def test_blocksworld_temporary_folder_lives_as_long_as_the_env():
    env = planner.make("blocksworld-v0", seed=1, blocks=3)
    folder = env.domain_path.parent
    assert folder.is_dir() and env.domain_path.is_file()
    del env
    gc.collect()
    assert not folder.exists()


def test_blocksworld_bad_size_is_a_config_error():
    with pytest.raises(ConfigError, match="n_blocks"):
        planner.make("blocksworld-v0", blocks=1)


def test_blocksworld_max_steps_truncates():
    env = planner.make("blocksworld-v0", seed=0, blocks=3, max_steps=1)
    state, _ = env.reset()
    result = env.step(env.candidate_actions(state)[0])
    assert result.truncated


def test_pddl_v0_reads_files(bw_files):
    domain, problem = bw_files(3, 2)
    env = planner.make("pddl-v0", domain=str(domain), problem=problem)
    assert env.task.name == "bw-3-2"


def test_pddl_v0_missing_file_passes_the_domain_error_through(tmp_path, bw_files):
    domain, _ = bw_files(3, 0)
    with pytest.raises(DomainError, match="problem file not found"):
        planner.make("pddl-v0", domain=domain, problem=tmp_path / "missing.pddl")


def test_pddl_v0_needs_its_arguments():
    with pytest.raises(ConfigError, match=r"pddl-v0: bad arguments.*domain"):
        planner.make("pddl-v0")


def test_unknown_keyword_argument_names_it_and_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"blocksworld-v0: bad arguments \(seed=0, size=3\).*'size'.*blocks"):
        planner.make("blocksworld-v0", size=3)


@pytest.mark.parametrize("name", ["blocksworld-v0", "pddl-v0", "frozenlake-v0"])
def test_check_env_passes_for_each_builtin(name, bw_files):
    kwargs = {}
    if name == "pddl-v0":
        domain, problem = bw_files(4, 1)
        kwargs = {"domain": domain, "problem": problem}
    if name == "frozenlake-v0":
        pytest.importorskip("gymnasium", reason="frozenlake-v0 needs gymnasium (the 'gym' extra)")
    env = planner.make(name, seed=2, **kwargs)
    check_env(env, seed=2)
    assert env.reset(seed=2) == planner.make(name, seed=2, **kwargs).reset(seed=2)


# -- register --------------------------------------------------------------------------------------
def test_register_and_make_by_name(clean_registry, bw_env):
    calls = []

    def factory(*, seed, blocks=3):
        calls.append((seed, blocks))
        return bw_env(blocks, seed)

    spec = planner.register("my-bw-v0", factory, description="mine")
    assert spec.name == "my-bw-v0" and registry.registered()["my-bw-v0"].description == "mine"
    env = planner.make("my-bw-v0", seed=5, blocks=4)
    assert calls == [(5, 4)] and len(env.task.objects) == 4
    planner.register("my-bw-v0", factory)  # the same factory again is fine


def test_register_refuses_another_factory_under_a_taken_id(clean_registry):
    with pytest.raises(ConfigError, match=r"'blocksworld-v0' is already registered.*replace=True"):
        planner.register("blocksworld-v0", lambda *, seed: None)
    spec = planner.register("blocksworld-v0", registry.make_pddl, replace=True)
    assert registry.registered()["blocksworld-v0"] is spec


@pytest.mark.parametrize(("name", "match"), [
    ("", "non-empty string"), ("my env", "without spaces"), ("a:b", "reads as a path"),
    ("env.py", "reads as a path"), (5, "non-empty string"),
])
def test_register_refuses_bad_ids(clean_registry, name, match):
    with pytest.raises(ConfigError, match=match):
        planner.register(name, registry.make_blocksworld)


def test_register_refuses_a_non_callable(clean_registry):
    with pytest.raises(ConfigError, match="'x-v0' must be callable, got int"):
        planner.register("x-v0", 3)  # type: ignore[arg-type]


def test_a_registered_factory_that_raises_is_wrapped(clean_registry):
    def broken(*, seed):
        raise RuntimeError("no robot connected")

    planner.register("broken-v0", broken)
    with pytest.raises(EnvironmentCheckError, match=r"broken-v0\(seed=4\) raised RuntimeError: no robot connected"):
        planner.make("broken-v0", seed=4)


# -- the path form ---------------------------------------------------------------------------------
def test_path_factory_gets_seed_and_kwargs(tmp_path):
    path = write_module(tmp_path, CELL_MODULE)
    env = planner.make(f"{path}:make_counter", seed=2, limit=9)
    assert env.limit == 9 and env.reset()[0].facts == {"(at 2)"}
    assert env.candidate_actions(env.reset()[0]) == (Action("(inc)"),)


def test_path_factory_accepting_any_kwargs(tmp_path):
    path = write_module(tmp_path, CELL_MODULE)
    assert planner.make(f"{path}:anything", a=1, b="x").limit == 3


def test_the_shipped_example_factory():
    env = planner.make(f"{EXAMPLES / 'automation_cell.py'}:make_cell", parts=3)
    check_env(env)
    assert len(env.goal.facts) == 3


def test_path_factory_errors_name_the_path(tmp_path):
    path = write_module(tmp_path, CELL_MODULE)
    cases = [
        (f"{tmp_path / 'missing.py'}:make", ConfigError, "environment file not found: .*missing.py"),
        (f"{tmp_path}/sub.py:make", ConfigError, "not found"),
        (f"{tmp_path / 'envs.txt'}:make", ConfigError, r"envs.txt is not a Python file"),
        (str(path), ConfigError, "name the factory too, as PATH.py:FACTORY"),
        (f"{path}:", ConfigError, "factory name '' is not a Python identifier"),
        (f"{path}:nope", ConfigError, r"has no 'nope'; callables defined there: .*make_counter"),
        (f"{path}:NOT_CALLABLE", ConfigError, r"NOT_CALLABLE is not callable \(it is a int\)"),
        (f"{path}:not_an_env", EnvironmentCheckError, r"returned a int without a callable reset\(\)"),
        (f"{path}:bad_goal", EnvironmentCheckError, "goal must have satisfied"),
    ]
    for text, error, match in cases:
        with pytest.raises(error, match=match):
            planner.make(text)


def test_path_folder_is_refused(tmp_path):
    (tmp_path / "pkg.py").mkdir()
    with pytest.raises(ConfigError, match="environment file is a folder"):
        planner.make(f"{tmp_path / 'pkg.py'}:make")


def test_path_factory_raising_names_call_and_last_traceback_line(tmp_path):
    path = write_module(tmp_path, CELL_MODULE)
    with pytest.raises(EnvironmentCheckError) as info:
        planner.make(f"{path}:boom", seed=1, size=3)
    (problem,) = info.value.problems
    assert f"{path}:boom(seed=1, size=3) raised ValueError: bad size 3" == problem
    assert isinstance(info.value.__cause__, ValueError)


def test_path_factory_bad_kwargs(tmp_path):
    path = write_module(tmp_path, CELL_MODULE)
    with pytest.raises(ConfigError, match=r"make_counter: bad arguments \(seed=0, width=2\).*accepts seed and limit"):
        planner.make(f"{path}:make_counter", width=2)


def test_module_raising_on_load(tmp_path):
    path = write_module(tmp_path, "import math\nraise ImportError('needs the robot SDK')\n", name="robot.py")
    with pytest.raises(EnvironmentCheckError, match=r"loading .*robot.py raised ImportError: needs the robot SDK"):
        planner.make(f"{path}:make")


def test_module_with_a_syntax_error(tmp_path):
    path = write_module(tmp_path, "def make(seed:\n", name="broken.py")
    with pytest.raises(EnvironmentCheckError, match=r"loading .*broken.py raised SyntaxError"):
        planner.make(f"{path}:make")


def test_split_path_form_keeps_colons_in_the_path():
    assert registry.split_path_form("C:/envs/cell.py:make") == (Path("C:/envs/cell.py"), "make")
    assert registry.is_path_form("cell.py") and registry.is_path_form("a:b")
    assert not registry.is_path_form("blocksworld-v0")


def test_frozenlake_without_gymnasium_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # makes `import gymnasium` fail
    assert "frozenlake-v0" in registry.registered()
    with pytest.raises(ConfigError, match=r"need gymnasium: pip install 'planner\[gym\]'"):
        planner.make("frozenlake-v0")
