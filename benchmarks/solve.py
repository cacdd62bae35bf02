"""End-to-end solving with a GGUF world model (default: the shipped Blocksworld model).

For generated problems from held-out seeds (the test split's seed range, never trained on),
runs ``planner solve DOMAIN PROBLEM --json`` as a user would — one process per problem, model
loading included — and prints, per number of blocks: problems solved, mean plan length over
the optimal one (A* with LM-cut), median and worst seconds per problem (whole command), model
calls, divergences and rejected invalid answers.

    python benchmarks/solve.py [--blocks 3-6] [--per-size 25] [--model PATH.gguf] [-- extra solve flags]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from planner.data.collect import SPLIT_SEED_BASE
from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", default="3-6")
    parser.add_argument("--per-size", type=int, default=25)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("extra", nargs="*", help="extra flags for planner solve")
    args = parser.parse_args()
    lo, _, hi = args.blocks.partition("-")
    sizes = range(int(lo), int(hi or lo) + 1)
    rows = []
    all_times: list[float] = []
    solved_all = total_all = 0
    ratio_num = ratio_den = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            times, solved, plan_len, optimal, calls, divergences, invalid = [], 0, 0, 0, [], 0, 0
            for i in range(args.per_size):
                seed = SPLIT_SEED_BASE["test"] + 50_000 + i
                domain, problem = write_problem(tmp, n, seed=seed)
                best = len(PDDLEnvironment(domain, problem).optimal_plan() or [])
                cmd = [sys.executable, "-m", "planner", "solve", str(domain), str(problem), "--json", *args.extra]
                if args.model is not None:
                    cmd += ["--model", str(args.model)]
                start = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True)
                times.append(time.perf_counter() - start)
                try:
                    summary = json.loads(done.stdout.strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    print(f"{n} blocks seed {seed}: no JSON ({done.stderr.strip()[:200]})", file=sys.stderr)
                    continue
                calls.append(summary["model_calls"])
                divergences += summary["divergences"]
                invalid += summary.get("invalid_answers", 0)
                if summary["solved"]:
                    solved += 1
                    plan_len += summary["steps"]
                    optimal += best
            rows.append((n, solved, args.per_size, plan_len / optimal if optimal else float("nan"),
                         statistics.median(times), max(times), statistics.median(calls) if calls else 0,
                         divergences, invalid))
            all_times += times
            solved_all += solved
            total_all += args.per_size
            ratio_num += plan_len
            ratio_den += optimal
    print(f"{'blocks':>6} {'solved':>9} {'plan/optimal':>13} {'median s':>9} {'max s':>7} "
          f"{'median calls':>13} {'divergences':>12} {'invalid':>8}")
    for n, s, t, ratio, med, worst, mcalls, div, inv in rows:
        print(f"{n:>6} {s:>4}/{t:<4} {ratio:>13.3f} {med:>9.2f} {worst:>7.2f} {mcalls:>13.0f} {div:>12} {inv:>8}")
    print(f"all: solved {solved_all}/{total_all} ({solved_all / total_all:.1%}), plan/optimal "
          f"{ratio_num / max(ratio_den, 1):.3f}, median {statistics.median(all_times):.2f} s per problem")


if __name__ == "__main__":
    main()
