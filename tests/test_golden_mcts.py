"""Golden trees: the exact MCTS tree of a fixed 3-block problem, stored as JSON.

Any change to selection (UCT, PUCT), expansion, priors, backup or rewards changes some visit
count or value, and this test fails. After an intended change, regenerate and review the diff:

    PLANNER_REGEN_GOLDEN=1 python -m pytest tests/test_golden_mcts.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import Budget, PDDLEnvironment, SearchProblem, SearchResult, SelectionPolicy, mcts
from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
from planner.search.policies import greedy, puct, uct
from planner.world.oracle import OracleWorldModel

GOLDEN = Path(__file__).resolve().parent / "golden"
REGENERATE = os.environ.get("PLANNER_REGEN_GOLDEN") == "1"

# The Sussman anomaly: c on a, b on the table; goal a on b on c (optimal plan: 6 actions).
SUSSMAN = """\
(define (problem sussman)
  (:domain blocksworld)
  (:objects a b c)
  (:init (on c a) (ontable a) (ontable b) (clear c) (clear b) (handempty))
  (:goal (and (on a b) (on b c))))
"""

CASES: dict[str, tuple[SelectionPolicy, int, int]] = {  # selection, simulations, seed
    "uct": (uct(), 60, 0),
    "uct-explore": (uct(c=0.5), 60, 1),
    "puct": (puct(), 60, 0),
}


def _r(x: float) -> float:
    return round(x, 9)


def snapshot(result: SearchResult) -> dict[str, Any]:
    """The whole tree as plain data: per node its state, visits, value; per edge its action,
    visits, value (rounded to 1e-9), nodes sorted by state."""
    nodes = []
    for node in sorted(result.tree, key=lambda n: n.state.canonical()):
        nodes.append({
            "state": node.state.canonical(),
            "terminal": node.terminal,
            "expanded": node.expanded,
            "visits": node.visits,
            "value": _r(node.mean_value),
            "estimate": _r(node.estimate),
            "edges": [
                {"action": e.action.name, "child": e.child.state.canonical(), "visits": e.visits,
                 "value": _r(e.mean_value), "reward": _r(e.reward), "prior": _r(e.prior)}
                for e in node.edges
            ],
        })
    return {
        "plan": [a.name for a in result.plan.actions],
        "plan_value": _r(result.plan.value),
        "reaches_goal": result.plan.reaches_goal,
        "simulations": result.stats.simulations,
        "expansions": result.stats.expansions,
        "stopped_by": result.stats.stopped_by,
        "nodes": nodes,
    }


def _sussman(tmp_path: Path) -> PDDLEnvironment:
    (tmp_path / "domain.pddl").write_text(DOMAIN_PDDL)
    (tmp_path / "sussman.pddl").write_text(SUSSMAN)
    return PDDLEnvironment(tmp_path / "domain.pddl", tmp_path / "sussman.pddl")


@pytest.mark.parametrize("case", sorted(CASES))
def test_mcts_tree_matches_golden(tmp_path, case):
    selection, simulations, seed = CASES[case]
    env = _sussman(tmp_path)
    result = mcts(SearchProblem.from_env(env, OracleWorldModel(env)), env.state, Budget(simulations=simulations),
                  selection=selection, seed=seed)
    got = snapshot(result)
    path = GOLDEN / f"mcts-sussman-{case}.json"
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    assert got["nodes"] == expected["nodes"]
    assert got == expected


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 4), problem_seed=st.integers(0, 200), sims=st.integers(1, 80),
       sel=st.sampled_from(["uct", "puct", "greedy"]), seed=st.integers(0, 3))
def test_equal_seeds_give_equal_trees(tmp_path_factory, n, problem_seed, sims, sel, seed):
    folder = tmp_path_factory.mktemp("bw")
    (folder / "d.pddl").write_text(DOMAIN_PDDL)
    (folder / "p.pddl").write_text(generate_problem(n, seed=problem_seed))
    env = PDDLEnvironment(folder / "d.pddl", folder / "p.pddl")
    make = {"uct": lambda: uct(c=0.5), "puct": puct, "greedy": greedy}[sel]
    first, second = (
        snapshot(mcts(SearchProblem.from_env(env, OracleWorldModel(env)), env.state, Budget(simulations=sims),
                      selection=make(), seed=seed))
        for _ in range(2)
    )
    assert first == second
