"""Long plans without a domain heuristic: beam search and MCTS through the agent, exact model.

The fast tests use small instances (7–16-step plans); the ``slow`` ones the 22–43-step
instances of the benchmark (``benchmarks/long_horizon.py``). The cases MCTS does not meet yet
are strict expected failures: they document the gap measured by the benchmark (on
``assembly-2x4-s2`` the goal fraction stays flat beyond what 2,000 simulations reach, so the
first searches end without a goal and the agent moves one step at a time before a plan is
found: 49 steps where beam search finds 43) and turn into failures the moment MCTS meets
them, so they must then be unmarked.
"""

from __future__ import annotations

from typing import Any

import pytest
from long_horizon_envs import AssemblyLine, Hanoi, long_instances, short_instances, shortest_plan_length

from planner.agent import Agent, EpisodeResult
from planner.config import PlannerConfig
from planner.env.base import check_env
from planner.search.mcts import mcts
from planner.search.policies import goal_fraction_value, heuristic_value
from planner.search.problem import Budget, SearchProblem
from planner.search.result import SearchResult
from planner.search.tree import SearchTree
from planner.types import State
from planner.world.oracle import OracleWorldModel


class _Recording(Agent):
    """An agent that keeps every search result."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.results: list[SearchResult] = []

    def plan(self, state: State, *, tree: SearchTree | None = None) -> SearchResult:
        result = super().plan(state, tree=tree)
        self.results.append(result)
        return result


def _episode(factory: Any, algorithm: str) -> tuple[EpisodeResult, list[SearchResult]]:
    env = factory()
    agent = _Recording(env, OracleWorldModel(env), config=PlannerConfig().updated(search={"algorithm": algorithm}))
    return agent.run(), agent.results


def _check_both(factory: Any) -> None:
    results = {a: _episode(factory, a) for a in ("beam", "mcts")}
    for algorithm, (episode, _) in results.items():
        assert episode.solved, f"{algorithm} did not solve it ({episode.stopped_by})"
    best = min(len(episode.steps) for episode, _ in results.values())
    for algorithm, (episode, _) in results.items():
        assert len(episode.steps) <= 1.10 * best, f"{algorithm}: {len(episode.steps)} steps, best {best}"
    episode, searches = results["mcts"]
    for search in searches:
        assert len(set(search.plan.states)) == len(search.plan.states)  # a plan never revisits a state
    # The episode may: while the value is flat and no search has found the goal, the agent
    # moves one step at a time (the most visited first action), and may step back.


_MCTS_WANDERS = pytest.mark.xfail(
    strict=True, reason="MCTS short of beam where the value stays flat too long (benchmarks/long_horizon.py)")
_SHORT_GAPS: set[str] = set()
_LONG_GAPS: set[str] = set()


def _cases(instances: list[tuple[str, Any]], gaps: set[str]) -> list[Any]:
    return [pytest.param(n, marks=_MCTS_WANDERS) if n in gaps else n for n, _ in instances]


@pytest.mark.parametrize("name", _cases(short_instances(), _SHORT_GAPS))
def test_beam_and_mcts_solve_small_instances_within_ten_percent(name):
    _check_both(dict(short_instances())[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", _cases(long_instances(), _LONG_GAPS))
def test_beam_and_mcts_solve_long_instances_within_ten_percent(name):
    _check_both(dict(long_instances())[name])


@pytest.mark.parametrize("factory", [lambda: AssemblyLine(2, 2, seed=3), lambda: Hanoi(4, seed=1)])
def test_environments_follow_the_protocol_and_have_no_heuristic(factory):
    env = factory()
    check_env(env)
    assert not hasattr(env, "distance_heuristic")
    assert heuristic_value(env, "auto") is goal_fraction_value


def test_known_plan_lengths():
    assert shortest_plan_length(Hanoi(3)) == 7
    assert shortest_plan_length(Hanoi(4)) == 15
    assert shortest_plan_length(AssemblyLine(1, 2, seed=0)) == 11


@_MCTS_WANDERS
def test_mcts_that_exhausts_the_space_returns_a_shortest_plan():
    """The transpositions of the Tower of Hanoi offer many detours to every state: an MCTS that
    follows only shortest known routes and closes finished subtrees stops once it has explored
    everything that could give a shorter plan, and that plan is optimal."""
    env = Hanoi(4)
    result = mcts(SearchProblem.from_env(env, OracleWorldModel(env)), env.state, Budget(simulations=5000))
    assert result.plan.reaches_goal
    assert len(result.plan) == 15
    assert result.stats.stopped_by == "exhausted"
    assert result.stats.simulations < 5000


def test_mcts_with_a_flat_value_keeps_pushing_its_frontier():
    """With the goal fraction flat at 0 until the first part is delivered (11 steps away),
    simulations should not keep revisiting finished subtrees: if every simulation expands a
    node, closes one, or reaches the goal, 300 of them find the plan."""
    env = AssemblyLine(1, 2, seed=0)
    result = mcts(SearchProblem.from_env(env, OracleWorldModel(env)), env.state, Budget(simulations=300))
    assert result.plan.reaches_goal
    assert len(result.plan) == 11
