"""Long plans without a domain heuristic: beam search against MCTS, exact model, one run.

For each long-horizon instance of ``tests/long_horizon_envs.py`` (optimal plans of 22–43
steps, found here by breadth-first search), the agent plays one episode with the exact world
model and the default configuration (value ``"auto"``, which is the goal fraction for these
environments), once with beam search and once with MCTS. The table shows, per algorithm:
solved, real steps taken (the executed plan length), the ratio to the best of the two, model
calls and seconds; then the ratio to the optimum and totals.

    python benchmarks/long_horizon.py [--only NAME-PREFIX] [--simulations N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from planner.agent import Agent
from planner.config import PlannerConfig
from planner.world.oracle import OracleWorldModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from long_horizon_envs import long_instances, shortest_plan_length


def run(factory, algorithm: str, simulations: int | None) -> dict[str, float]:
    """One episode; returns solved (0/1), steps, model calls, seconds (wall clock)."""
    env = factory()
    search = {"algorithm": algorithm, "simulations": simulations}
    config = PlannerConfig().updated(search=search)
    start = time.perf_counter()
    result = Agent(env, OracleWorldModel(env), config=config).run()
    return {"solved": float(result.solved), "steps": float(len(result.steps)),
            "calls": float(result.model_calls), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help="run only instances whose name starts with this")
    parser.add_argument("--simulations", type=int, default=None, help="MCTS simulations (default: config)")
    args = parser.parse_args()
    header = (f"{'instance':<18}{'opt':>4} | {'beam':>5}{'steps':>6}{'/best':>6}{'calls':>8}{'s':>6} | "
              f"{'mcts':>5}{'steps':>6}{'/best':>6}{'calls':>8}{'s':>6}")
    print(header)
    print("-" * len(header))
    totals = {a: {"solved": 0.0, "within": 0.0, "calls": 0.0, "seconds": 0.0, "over_opt": []} for a in ("beam", "mcts")}
    n = 0
    for name, factory in long_instances():
        if not name.startswith(args.only):
            continue
        n += 1
        opt = shortest_plan_length(factory())
        got = {a: run(factory, a, args.simulations) for a in ("beam", "mcts")}
        solved_steps = [g["steps"] for g in got.values() if g["solved"]]
        best = min(solved_steps) if solved_steps else float("nan")
        cells = []
        for a in ("beam", "mcts"):
            g = got[a]
            ratio = g["steps"] / best if g["solved"] else float("nan")
            t = totals[a]
            t["solved"] += g["solved"]
            t["within"] += float(g["solved"] and ratio <= 1.10)
            t["calls"] += g["calls"]
            t["seconds"] += g["seconds"]
            if g["solved"] and opt:
                t["over_opt"].append(g["steps"] / opt)  # type: ignore[union-attr]
            cells.append(f"{'yes' if g['solved'] else 'NO':>5}{g['steps']:>6.0f}{ratio:>6.2f}{g['calls']:>8.0f}"
                         f"{g['seconds']:>6.1f}")
        print(f"{name:<18}{opt or -1:>4} | {cells[0]} | {cells[1]}")
    print()
    for a in ("beam", "mcts"):
        t = totals[a]
        over = t["over_opt"]
        mean_over = sum(over) / len(over) if over else float("nan")  # type: ignore[arg-type]
        print(f"{a}: solved {t['solved']:.0f}/{n}, within 10% of best {t['within']:.0f}/{n}, "
              f"mean steps/optimal {mean_over:.3f}, model calls {t['calls']:.0f}, {t['seconds']:.1f} s")


if __name__ == "__main__":
    main()
