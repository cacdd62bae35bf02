"""The same ``planner eval`` batch serially, on 2 local worker processes and on a local Ray.

Each row plays the same episodes (default: 16 generated Blocksworld problems of 6 blocks,
environment seeds 0-15, with the shipped GGUF world model) through
:func:`planner.scale.evaluate_batch` into a fresh results file, and reports wall time (worker
start-up, model loading and Ray's start included: what a user waits for), episodes per second
and the speed-up over the 1-worker row of the same run, plus the summed time inside the
episodes (it grows when workers compete for cores). It also checks that every row got the same
per-seed results (success, plan). One run, one table; the core count and the load average at
the start are printed with it, because this kind of machine is often shared and busy.

    python benchmarks/eval_scaling.py [--env blocksworld-v0] [--env-arg blocks=6] [--seeds 0-15]
                                      [--workers 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

from planner.cli import parse_env_args
from planner.config import PlannerConfig
from planner.env.registry import make
from planner.scale import EvalSettings, evaluate_batch, make_executor, resolve_model, seed_jobs
from planner.world.engine import available_cores


def outcomes(path: Path) -> dict[int, tuple[bool, tuple[str, ...]]]:
    """Per seed: solved, and the plan executed."""
    rows = [json.loads(line) for line in path.read_text().splitlines()[1:] if line.strip()]
    return {r["job"]: (r["success"], tuple(r["plan"])) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="blocksworld-v0")
    parser.add_argument("--env-arg", action="append", default=None, help="key=value (default: blocks=6)")
    parser.add_argument("--seeds", default="0-15", help="A-B, ends inclusive")
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel rows")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray row")
    args = parser.parse_args()
    env_args = parse_env_args(args.env_arg or ["blocks=6"])
    first, _, last = args.seeds.partition("-")
    seeds = range(int(first), int(last or first) + 1)

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores ({available_cores()} available to this process), load average at the "
          f"start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)")
    print("this machine is shared and may be busy with other work: compare the rows of one run, not across runs")
    config = resolve_model(PlannerConfig(), make(args.env, seed=seeds[0], **env_args))
    settings = EvalSettings(config=config, env=args.env, env_args=env_args)
    jobs = seed_jobs(seeds)
    print(f"batch: {args.env} {' '.join(f'{k}={v}' for k, v in env_args.items())}, seeds {args.seeds} "
          f"({len(jobs)} episodes), model {config.model.path}, planner solve's configuration, one llama.cpp thread "
          "per worker")

    plans: list[tuple[str, int, str | None]] = [("serial", 1, None), ("processes", args.workers, None)]
    if not args.no_ray:
        if importlib.util.find_spec("ray") is None:
            print("(no Ray row: the ray extra is not installed; pip install 'planner[ray]')")
        else:
            plans.append(("ray (local)", args.workers, "local"))

    rows = []
    results = []
    with tempfile.TemporaryDirectory(prefix="eval-scaling-") as scratch:
        for name, workers, ray in plans:
            path = Path(scratch) / f"{name.split()[0]}.jsonl"
            executor = make_executor(workers=workers, ray=ray)
            started = time.perf_counter()
            summary = evaluate_batch(settings, jobs, results=path, executor=executor)
            wall = time.perf_counter() - started
            results.append(outcomes(path))
            rows.append((name, workers, summary, wall))
    base = len(jobs) / rows[0][3]
    print()
    print("| executor | workers | solved | wall s | episodes/s | vs 1 worker | s inside episodes |")
    print("|---|---|---|---|---|---|---|")
    for name, workers, summary, wall in rows:
        rate = len(jobs) / wall
        print(f"| {name} | {workers} | {summary.solved}/{summary.jobs} | {wall:.1f} | {rate:.2f} | "
              f"{rate / base:.2f}x | {summary.episode_seconds:.1f} |")
    same = all(r == results[0] for r in results[1:])
    print(f"\nsame per-seed results (success, plan) in every row: {'yes' if same else 'NO'}")


if __name__ == "__main__":  # worker processes import this file again (spawn): run only in the parent
    main()
