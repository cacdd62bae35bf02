"""Search throughput with the exact world model.

For MCTS and beam search on generated 4-, 6- and 8-block Blocksworld problems, prints nodes
per second and the fraction of wall time spent outside the model (the search's own cost),
averaged over a few seeds, all measured in this one run.

    python benchmarks/search.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from planner import Budget, OracleWorldModel, PDDLEnvironment, SearchProblem, beam_search, mcts
from planner.env.blocksworld import write_problem
from planner.search.policies import distance_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--simulations", type=int, default=2000)
    parser.add_argument("--beam-width", type=int, default=16)
    args = parser.parse_args()
    budget = Budget(simulations=args.simulations, beam_width=args.beam_width)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (4, 6, 8):
            for algo in ("mcts", "beam"):
                nps, outside, calls, length, opt = [], [], [], [], []
                for seed in range(args.seeds):
                    env = PDDLEnvironment(*write_problem(Path(tmp), n, seed=seed))
                    problem = SearchProblem.from_env(env, OracleWorldModel(env),
                                                     value=distance_value(env.distance_heuristic("ff")))
                    search = mcts if algo == "mcts" else beam_search
                    r = search(problem, env.state, budget)
                    nps.append(r.stats.nodes_per_second)
                    outside.append(r.stats.outside_model_fraction)
                    calls.append(r.stats.model_calls / r.stats.wall_seconds)
                    length.append(len(r.plan) if r.plan.reaches_goal else float("nan"))
                    opt.append(len(env.optimal_plan() or []))
                rows.append((n, algo, statistics.mean(nps), statistics.mean(calls),
                             statistics.mean(outside), sum(length) / sum(opt)))
    print(f"{'blocks':>6} {'search':>6} {'nodes/s':>10} {'predictions/s':>14} "
          f"{'outside model':>14} {'plan/optimal':>13}")
    for n, algo, nps_, calls_, out_, ratio in rows:
        print(f"{n:>6} {algo:>6} {nps_:>10.0f} {calls_:>14.0f} {out_:>13.1%} {ratio:>13.3f}")


if __name__ == "__main__":
    main()
