"""A learned laboratory world model, per task: fidelity on held-out transitions and planning.

Fidelity: the held-out transition log (``planner learn``'s ``DIR/data/test.jsonl``) is split by
the task each seed plays (:func:`planner.env.lab.seed_task`) and scored per task with
``planner eval-model --strict`` (one process per task). Planning: for each seed of ``--plan``,
one ``planner solve --env lab-v0 --env-arg split=SPLIT --seed S --model MODEL --json`` as a user
runs it (model loading included; ``--time-limit`` seconds a search), against the length of
ScienceWorld's own gold path (its steps that change no fact left out). ScienceWorld has no
exact model fast enough to search with (its ``simulate`` replays from the start), so the gold
path is the reference.

    python benchmarks/lab_learned.py --model runs/lab/model-q8_0.gguf --data runs/lab/data/test.jsonl \\
        --plan 2000-2019
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from planner.data.collect import read_records
from planner.env.lab import TASKS, make_lab, seed_task
from planner.io import JsonlLog


def fidelity(model: str, data: Path, split: str) -> dict[str, dict]:
    """Per task: ``planner eval-model --strict --json``'s summary on that task's records."""
    by_task: dict[str, list] = defaultdict(list)
    for record in read_records(data):
        seed = int(record.problem.rsplit("-", 1)[1])
        by_task[seed_task(seed, split)].append(record)
    found: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task, records in sorted(by_task.items()):
            path = Path(tmp) / f"{task}.jsonl"
            with JsonlLog(path) as log:
                for r in records:
                    log.write(r)
            done = subprocess.run([sys.executable, "-m", "planner", "eval-model", model, "--data", str(path),
                                   "--strict", "--json"], capture_output=True, text=True, timeout=3600)
            try:
                found[task] = json.loads(done.stdout.strip().splitlines()[-1])
            except (IndexError, ValueError):
                print(f"{task}: eval-model gave no JSON ({done.stderr.strip()[:300]})", file=sys.stderr)
    return found


def gold_length(seed: int, split: str) -> int:
    env = make_lab(seed=seed, split=split)
    try:
        return len(env.gold_path())
    finally:
        env.close()


def solve(model: str, seed: int, split: str, time_limit: float) -> tuple[dict | None, float]:
    cmd = [sys.executable, "-m", "planner", "solve", "--env", "lab-v0", "--env-arg", f"split={split}", "--seed",
           str(seed), "--model", model, "--time-limit", str(time_limit), "--json"]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), seconds
    except (IndexError, ValueError):
        print(f"seed {seed}: no JSON ({done.stderr.strip()[:300]})", file=sys.stderr)
        return None, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, help="held-out transitions (planner learn's DIR/data/test.jsonl)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--plan", default=None, help="seeds A-B (ends inclusive) to plan on")
    parser.add_argument("--time-limit", type=float, default=2.0, help="seconds per search (default 2, as the "
                        "card of planner learn)")
    args = parser.parse_args()
    print(f"lab-v0 model {args.model}, split {args.split}")
    if args.data is not None:
        found = fidelity(args.model, args.data, args.split)
        print("| task | transitions | precondition | next-state exact match | multi-step consistency |")
        print("|---|---|---|---|---|")
        for task in sorted(TASKS):
            if task not in found:
                continue
            overall = found[task].get("overall", {})
            print(f"| {task} | {int(overall.get('transitions', 0)):,} | "
                  f"{overall.get('precondition_accuracy', float('nan')):.2%} | "
                  f"{overall.get('next_state_exact_match', float('nan')):.2%} | "
                  f"{found[task].get('multistep_consistency', float('nan')):.4f} |")
    if args.plan:
        lo, _, hi = args.plan.partition("-")
        rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        ends: dict[str, Counter[str]] = defaultdict(Counter)
        for seed in range(int(lo), int(hi or lo) + 1):
            task = seed_task(seed, args.split)
            gold = gold_length(seed, args.split)
            summary, seconds = solve(args.model, seed, args.split, args.time_limit)
            r = rows[task]
            r["seconds"].append(seconds)
            solved = bool(summary and summary.get("solved"))
            r["solved"].append(float(solved))
            ends[task][str(summary.get("stopped_by") if summary else "no summary")] += 1
            if summary:
                r["divergences"].append(summary.get("divergences", 0))
            if solved and gold:
                r["vs_gold"].append(summary["steps"] / gold)
        print("| task | solved | steps / gold path | divergences | how episodes ended | median s per solve |")
        print("|---|---|---|---|---|---|")
        for task in sorted(rows):
            r = rows[task]
            ratio = f"{statistics.mean(r['vs_gold']):.3f}" if r["vs_gold"] else "n/a"
            how = ", ".join(f"{k} {v}" for k, v in ends[task].most_common())
            print(f"| {task} | {int(sum(r['solved']))}/{len(r['solved'])} | {ratio} | "
                  f"{int(sum(r['divergences']))} | {how} | {statistics.median(r['seconds']):.1f} |")


if __name__ == "__main__":
    main()
