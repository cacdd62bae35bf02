"""Shared fixtures: generated Blocksworld problems on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment


@pytest.fixture
def bw_files(tmp_path: Path):
    """A factory writing a Blocksworld problem: ``bw_files(n, seed) -> (domain, problem)``."""

    def make(n: int, seed: int = 0) -> tuple[Path, Path]:
        return write_problem(tmp_path / "pddl", n, seed=seed)

    return make


@pytest.fixture
def bw_env(bw_files):
    """A factory for Blocksworld environments: ``bw_env(n, seed)``."""

    def make(n: int, seed: int = 0, **kwargs) -> PDDLEnvironment:
        return PDDLEnvironment(*bw_files(n, seed), **kwargs)

    return make
