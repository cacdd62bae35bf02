"""Write your own selection and value policies: they are plain functions.

A value policy maps (state, goal) to [0, 1]; a selection policy picks one edge among the
expanded node's edges. Here: a value that rewards goal facts and an empty hand, and a
selection rule that scales UCB's exploration by the model's confidence in each prediction.
Their signatures are ``planner.ValuePolicy`` and ``planner.SelectionPolicy``. Run:

    python examples/custom_policy.py
"""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Sequence

from planner import (
    Budget,
    Edge,
    Goal,
    Node,
    OracleWorldModel,
    PDDLEnvironment,
    SearchProblem,
    SelectionPolicy,
    State,
    ValuePolicy,
    mcts,
)
from planner.env.blocksworld import write_problem


def goal_facts_and_holding(state: State, goal: Goal) -> float:
    """Fraction of goal facts reached, with a small bonus for an empty hand."""
    bonus = 0.05 if "(handempty)" in state.facts else 0.0
    return min(1.0, 0.95 * goal.progress(state) + bonus)


def confident_ucb(node: Node, edges: Sequence[Edge], rng: random.Random) -> Edge:
    """UCB1 with exploration scaled by the model's confidence in each prediction."""
    log_n = math.log(max(node.visits, 1))

    def score(e: Edge) -> float:
        # mean_value is the mean return, or the edge's one-step estimate before its first visit.
        return e.mean_value + 0.05 * e.prediction.confidence * math.sqrt(log_n / (1 + e.visits))

    best = max(score(e) for e in edges)
    return rng.choice([e for e in edges if score(e) == best])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = PDDLEnvironment(*write_problem(tmp, 5, seed=2))
        value: ValuePolicy = goal_facts_and_holding
        selection: SelectionPolicy = confident_ucb
        problem = SearchProblem.from_env(env, OracleWorldModel(env), value=value)
        result = mcts(problem, env.state, Budget(simulations=3000), selection=selection)
        print(f"plan of {len(result.plan)} actions (optimal: {len(env.optimal_plan() or [])}), "
              f"reaches goal: {result.plan.reaches_goal}")
        print(f"{result.stats.nodes} nodes, {result.stats.model_calls} model calls, "
              f"{result.stats.wall_seconds:.2f} s")
        for action in result.plan.actions:
            print(" ", action)


if __name__ == "__main__":
    main()
