"""Laboratory tasks (lab-v0): simulator costs, state sizes, gold paths, reproducibility.

For each supported ScienceWorld task and each seed, builds ``lab-v0`` (one JVM at a time,
plus a second one for replays), and measures:

- reset and step times (seconds, medians; steps of the gold path and of a random walk);
- facts and candidate actions per state (mean and max over the gold path's states);
- the gold path's length (ScienceWorld's gold path without its steps that change no fact),
  whether every gold action is among the candidates at its state, and whether the goal agrees
  with ScienceWorld's completion at every state of the gold path and of the random walk;
- replay determinism: the fraction of ``--replays`` replays of the gold path (on the second
  simulator) whose every state equals the first play's;
- ``simulate`` (replay-based) against real steps along a random walk of ``--walk`` candidate
  actions: the fraction of steps where both agree on applicability and next state.

    python benchmarks/lab.py --seeds 0-1 --replays 5 --walk 8
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from planner.env.lab import TASKS, make_lab


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}" if values else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-1", help="A-B, ends inclusive")
    parser.add_argument("--split", default="train")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--replays", type=int, default=5, help="replays of each gold path")
    parser.add_argument("--walk", type=int, default=8, help="random-walk steps checked against simulate")
    args = parser.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    header = ("task", "reset s", "step s", "facts", "cands", "gold len", "gold cands", "goal agrees",
              "replay same", "simulate agrees")
    rows = []
    for name in args.tasks.split(","):
        r: dict[str, list[float]] = {k: [] for k in ("reset", "step", "facts", "cands", "gold", "complete",
                                                      "agree", "replay", "simulate")}
        for seed in seeds:
            env = make_lab(seed=seed, split=args.split, task=name)
            try:
                gold = env.gold_path()
                started = time.perf_counter()
                state, _ = env.reset()
                r["reset"].append(time.perf_counter() - started)
                states = [state]
                for action in gold:
                    cands = env.candidate_actions(state)
                    r["facts"].append(len(state.facts))
                    r["cands"].append(len(cands))
                    r["complete"].append(float(action in cands))
                    started = time.perf_counter()
                    result = env.step(action)
                    r["step"].append(time.perf_counter() - started)
                    r["agree"].append(float(env.goal.satisfied(result.state) == result.terminated))
                    state = result.state
                    states.append(state)
                r["gold"].append(len(gold))
                same = 0
                for _ in range(args.replays):
                    same += env.replay(gold) == states
                r["replay"].append(same / max(args.replays, 1))
                rng = random.Random(seed)
                state, _ = env.reset()
                for _ in range(args.walk):
                    action = rng.choice(list(env.candidate_actions(state)))
                    predicted = env.simulate(state, action)
                    started = time.perf_counter()
                    result = env.step(action)
                    r["step"].append(time.perf_counter() - started)
                    r["simulate"].append(float(predicted.applicable == result.applicable
                                               and predicted.next_state == result.state))
                    r["agree"].append(float(env.goal.satisfied(result.state) == result.terminated))
                    state = result.state
                    if result.terminated or result.truncated:
                        state, _ = env.reset()
            finally:
                env.close()
        rows.append((name, median(r["reset"]), median(r["step"]),
                     f"{statistics.mean(r['facts']):.0f} (max {max(r['facts']):.0f})",
                     f"{statistics.mean(r['cands']):.0f} (max {max(r['cands']):.0f})",
                     f"{statistics.mean(r['gold']):.1f}", f"{statistics.mean(r['complete']):.0%}",
                     f"{statistics.mean(r['agree']):.0%}", f"{statistics.mean(r['replay']):.0%}",
                     f"{statistics.mean(r['simulate']):.0%}"))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"lab-v0, split {args.split}, seeds {args.seeds}, {args.replays} replays, {args.walk}-step random walks")
    for row in [header, *rows]:
        print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths)))


if __name__ == "__main__":
    main()
