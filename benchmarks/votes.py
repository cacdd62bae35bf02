"""What voting over object numberings buys and costs: next-state exact match, wrong next states
per action, and the model's time per prediction, on a transition log, for each vote count,
measured in one run.

    python benchmarks/votes.py --model planner/models/household-q8_0.gguf \\
        --data runs/hh-data/test.jsonl --votes 1,3,5 --vote-below 0.99,1

Each record's recorded state and action are asked of the model as ``planner eval-model`` asks
them (one prediction at a time, the answer held consistent with the state), under ``--votes N``
numberings of the problem's objects (:mod:`planner.world.votes`), the others asked only about
answers the first gives with a confidence below each ``--vote-below`` (1: about every answer).
The time ratio is the model's seconds over those of the first row, from this run. To see the
cost beside other work, run it again next to a busy loop (``python3 -c 'while True: pass' &``).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from planner.data.collect import TransitionRecord, read_records
from planner.types import Action, FactGoal
from planner.world.llama import ProblemBinder


@dataclass(frozen=True)
class Score:
    """One vote count's results: wrong next states per action, wrong preconditions, the
    model's seconds, and predictions whose numberings disagreed."""

    wrong: Counter[str]
    precondition: int
    seconds: float
    split: int


def score(model_path: str, records: list[TransitionRecord], votes: int, below: float) -> Score:
    """The model asked about every record under ``votes`` numberings (``below``: see
    :class:`~planner.world.llama.LlamaWorldModel`'s ``vote_below``)."""
    by_problem: dict[str, list[TransitionRecord]] = defaultdict(list)
    for r in records:
        by_problem[r.problem].append(r)
    bind = ProblemBinder(model_path, mode="prefix", on_invalid="reject", votes=votes, vote_below=below)
    wrong: Counter[str] = Counter()
    precondition = 0
    try:
        for rs in by_problem.values():
            model = bind(rs[0].objects, FactGoal(frozenset(rs[0].goal)))
            for r in rs:
                pred = model.predict(r.state_obj(), Action(r.action))
                verb = r.action.strip("()").split()[0]
                wrong[verb] += pred.next_state != r.next_state_obj()
                precondition += pred.applicable != r.applicable
        assert bind.model is not None
        stats = bind.model.stats
        return Score(wrong, precondition, stats.seconds, stats.split_votes)
    finally:
        if bind.model is not None:
            bind.model.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a GGUF world model")
    parser.add_argument("--data", required=True, help="a transition log of the model's domain")
    parser.add_argument("--votes", default="1,3,5", help="comma-separated vote counts (1 first for the ratios)")
    parser.add_argument("--vote-below", default="0.99,1", help="comma-separated confidences below which the "
                        "other numberings are asked (one row each, for each vote count above 1)")
    parser.add_argument("--limit", type=int, default=None, help="the first N transitions")
    args = parser.parse_args()
    counts = [int(v) for v in args.votes.split(",")]
    belows = [float(b) for b in args.vote_below.split(",")]
    runs = [(v, b) for v in counts for b in (belows if v > 1 else belows[:1])]
    records = read_records(args.data, limit=args.limit)
    if not records:
        parser.error(f"no transition records in {args.data}")
    started = time.perf_counter()
    results = {(v, b): score(args.model, records, v, b) for v, b in runs}
    total = len(records)
    verbs = sorted({r.action.strip("()").split()[0] for r in records})
    n = Counter(r.action.strip("()").split()[0] for r in records)
    print(f"{args.model} on {total} transitions of {args.data}, {time.perf_counter() - started:.0f} s")
    print("| votes | asked again below | next state | wrong | precondition | numberings disagreed "
          "| model ms / prediction | time / first row |")
    print("|---|---|---|---|---|---|---|---|")
    base = results[runs[0]].seconds
    for (v, b), res in results.items():
        bad = sum(res.wrong.values())
        print(f"| {v} | {b if v > 1 else '—'} | {1 - bad / total:.2%} | {bad} | {1 - res.precondition / total:.2%} "
              f"| {res.split} | {1e3 * res.seconds / total:.1f} | {res.seconds / base:.2f}× |")
    print()
    print("wrong next states per action")
    print("| action | transitions | " + " | ".join(f"{v} ({b})" if v > 1 else "1" for v, b in runs) + " |")
    print("|---|---" + "|---" * len(runs) + "|")
    for verb in verbs:
        print(f"| {verb} | {n[verb]} | " + " | ".join(str(results[r].wrong[verb]) for r in runs) + " |")


if __name__ == "__main__":
    main()
