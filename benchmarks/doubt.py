"""What planning through doubted refusals costs and gives, on Blocksworld with a GGUF model.

For held-out problems (the test split's seeds), plays one episode per agent mode on the same
problem, in one process: ``off`` (no doubted refusals: probes only), ``stuck`` (through doubts
only when no plan is found), ``on`` (the defaults: shortcuts too). Prints per mode: problems
solved, mean real steps, mean model calls per episode, median episode seconds and doubted steps
(applied as imagined). A model that is rarely wrong (the shipped one) shows what doubt costs
where it is not needed.

    python benchmarks/doubt.py [--blocks 4-6] [--per-size 10] [--model PATH.gguf]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from planner.agent import Agent
from planner.config import PlannerConfig
from planner.data.collect import SPLIT_SEED_BASE
from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.world.doubt import AGENT_MODES
from planner.world.factory import default_model_path
from planner.world.llama import LlamaWorldModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", default="4-6", help="A-B, ends inclusive")
    parser.add_argument("--per-size", type=int, default=10)
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped Blocksworld model")
    args = parser.parse_args()
    lo, _, hi = args.blocks.partition("-")
    path = args.model or default_model_path("blocksworld")
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory() as tmp:
        for blocks in range(int(lo), int(hi or lo) + 1):
            for k in range(args.per_size):
                seed = SPLIT_SEED_BASE["test"] + k
                files = write_problem(Path(tmp) / f"{blocks}-{seed}", blocks, seed=seed)
                for mode, agent in AGENT_MODES.items():
                    env = PDDLEnvironment(*files)
                    model = LlamaWorldModel.for_environment(path, env, on_invalid="reject")
                    try:
                        started = time.perf_counter()
                        result = Agent(env, model, config=PlannerConfig.model_validate({"agent": agent})).run(seed=seed)
                        r = rows[mode]
                        r["seconds"].append(time.perf_counter() - started)
                        r["solved"].append(float(result.solved))
                        r["steps"].append(len(result.steps))
                        r["calls"].append(result.model_calls)
                        r["doubted"].append(result.doubted)
                        r["applied"].append(result.doubted_applied)
                    finally:
                        model.close()
    print(f"blocksworld, {args.blocks} blocks, {args.per_size} held-out problems per size, model: {path}")
    print("| doubt | solved | real steps (mean) | model calls (mean) | episode s (median) | doubted (applied) |")
    print("|---|---|---|---|---|---|")
    for mode, r in rows.items():
        print(f"| {mode} | {int(sum(r['solved']))}/{len(r['solved'])} | {statistics.mean(r['steps']):.2f} | "
              f"{statistics.mean(r['calls']):.0f} | {statistics.median(r['seconds']):.3f} | "
              f"{int(sum(r['doubted']))} ({int(sum(r['applied']))}) |")


if __name__ == "__main__":
    main()
