"""IPC domains learned from interaction: fidelity, planning success and plan length against optimal.

For each family (``gripper-v0``, ``logistics-v0`` typed, ``briefcase-v0`` with conditional
effects), a model learned by ``planner learn`` (one folder per family under ``--runs``) is
measured on fresh held-out seeds: fidelity on transitions collected from those seeds (as
``planner eval-model --env`` does), then one planning episode per seed with the learned model
(``planner solve --env … --model …``'s episode), whose plan length is compared with the optimal
plan length (``planner.env.ipc.optimal_plan_length``, exact search). One run, one table.

    planner learn --env gripper-v0 --out runs/ipc/gripper-v0 --minutes 6
    planner learn --env logistics-v0 --out runs/ipc/logistics-v0 --minutes 6
    planner learn --env briefcase-v0 --out runs/ipc/briefcase-v0 --minutes 6
    python benchmarks/learned_ipc.py --runs runs/ipc --seeds 3000-3019
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from planner.data.collect import read_records
from planner.data.explore import collect_from_env
from planner.data.fidelity import evaluate
from planner.data.planning_eval import evaluate_planning
from planner.env.ipc import optimal_plan_length
from planner.env.registry import make
from planner.world.llama import ProblemBinder

FAMILIES = ("gripper-v0", "logistics-v0", "briefcase-v0")


def measure(family: str, model: Path, seeds: range) -> dict[str, float | str]:
    """Fidelity and planning figures of ``model`` on ``family``'s ``seeds``."""
    def make_env(seed: int) -> Any:  # a PDDLEnvironment of the family
        return make(family, seed=seed)

    with tempfile.TemporaryDirectory() as tmp:
        collect_from_env(make_env, out_dir=tmp, seeds={"test": seeds}, episodes_per_seed=2, max_steps=40,
                         domain=family, seed=7)
        records = read_records(Path(tmp) / "test.jsonl")
    bind = ProblemBinder(model, mode="prefix", on_invalid="raise")  # strict: an invalid answer is an error
    try:
        fidelity = evaluate(records, bind).overall
    finally:
        if bind.model is not None:
            bind.model.close()
    planning = evaluate_planning(make_env, model, seeds=seeds)
    opt = {ep.seed: optimal_plan_length(make_env(ep.seed)) for ep in planning.episodes if ep.solved}
    ratios = [len(ep.plan) / opt[ep.seed] for ep in planning.episodes if ep.solved]
    return {
        "family": family, "transitions": float(len(records)),
        "next": fidelity.get("next_state_exact_match", float("nan")),
        "pre": fidelity.get("precondition_accuracy", float("nan")),
        "solved": float(sum(ep.solved for ep in planning.episodes)), "seeds": float(len(seeds)),
        "ratio": statistics.mean(ratios) if ratios else float("nan"),
        "optimal": float(sum(len(ep.plan) == opt[ep.seed] for ep in planning.episodes if ep.solved)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/ipc", help="folder holding one `planner learn` folder per family")
    parser.add_argument("--seeds", default="3000-3019", help="held-out seeds A-B (ends inclusive)")
    parser.add_argument("--only", default="", help="run only families starting with this")
    args = parser.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    print("| family | test transitions | next-state EM (strict) | precondition | solved | "
          "plan / optimal (solved) | optimal plans |")
    print("|---|---|---|---|---|---|---|")
    for family in FAMILIES:
        if not family.startswith(args.only):
            continue
        model = Path(args.runs) / family / "model-q8_0.gguf"
        if not model.is_file():
            print(f"| {family} | no model at {model} | | | | | |")
            continue
        m = measure(family, model, seeds)
        print(f"| {family} | {m['transitions']:.0f} | {m['next']:.2%} | {m['pre']:.2%} | "
              f"{m['solved']:.0f}/{m['seeds']:.0f} | {m['ratio']:.3f} | {m['optimal']:.0f}/{m['solved']:.0f} |")


if __name__ == "__main__":
    main()
