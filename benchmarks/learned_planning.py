"""Planning with a learned world model on held-out seeds, against the exact model.

For each seed, runs ``planner solve --env ENV --seed S --json`` twice as a user would (one
process each, model loading included): once with ``--model MODEL.gguf`` (the learned model)
and once with ``--oracle`` (the environment's own ``simulate``), and prints solved counts, the
learned plans' length over the exact model's, divergences and median seconds.

    python benchmarks/learned_planning.py --env examples/automation_cell.py:make_cells \\
        --model runs/cell/model-q8_0.gguf --seeds 2000-2049
    python benchmarks/learned_planning.py --env frozenlake-v0 --env-arg size=5 \\
        --model runs/frozenlake/model-q8_0.gguf --seeds 2000-2049
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def solve(env: str, seed: int, extra: list[str]) -> tuple[dict | None, float]:
    """The ``--json`` summary of one solve (``None`` if it printed none) and its wall seconds."""
    cmd = [sys.executable, "-m", "planner", "solve", "--env", env, "--seed", str(seed), "--json", *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), seconds
    except (IndexError, ValueError):
        print(f"seed {seed}: no JSON ({done.stderr.strip()[:200]})", file=sys.stderr)
        return None, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seeds", default="2000-2049", help="A-B, ends inclusive")
    parser.add_argument("--env-arg", action="append", default=[], help="key=value for the environment (repeat)")
    args = parser.parse_args()
    env_args = [a for item in args.env_arg for a in ("--env-arg", item)]
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    learned_solved = exact_solved = divergences = 0
    lengths: list[float] = []
    times: list[float] = []
    for seed in seeds:
        learned, seconds = solve(args.env, seed, [*env_args, "--model", args.model])
        exact, _ = solve(args.env, seed, [*env_args, "--oracle"])
        times.append(seconds)
        if exact and exact["solved"]:
            exact_solved += 1
        if learned and learned["solved"]:
            learned_solved += 1
            divergences += learned["divergences"]
            if exact and exact["solved"] and exact["steps"]:
                lengths.append(learned["steps"] / exact["steps"])
    n = len(seeds)
    print(f"{args.env} {' '.join(args.env_arg)} with {args.model}, seeds {args.seeds}")
    print("| model | solved | steps / exact model's | divergences | median s per solve |")
    print("|---|---|---|---|---|")
    ratio = f"{statistics.mean(lengths):.3f}" if lengths else "n/a"
    print(f"| learned | {learned_solved}/{n} ({learned_solved / n:.1%}) | {ratio} | {divergences} | "
          f"{statistics.median(times):.2f} |")
    print(f"| exact | {exact_solved}/{n} | 1.000 | 0 | |")


if __name__ == "__main__":
    main()
