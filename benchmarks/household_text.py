"""Household world model fidelity in facts and in text: next-state exact match, and
next-observation exact match of the text rendered from the predicted facts through the game's
grammar against the text rendered from the real ones (equal to the engine's own text: the
household tests check it step by step), per action.

    python benchmarks/household_text.py --model planner/models/household-q8_0.gguf \\
        --data runs/hh-data/test.jsonl --split test --limit 3000

The records name their games (``household-v0-<seed>``); each game is generated again from its
seed and ``--split`` and loaded in TextWorld's engine to render texts.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict

from planner.data.collect import read_records
from planner.env.household import make_household
from planner.errors import ConfigError
from planner.types import Action, FactGoal
from planner.world.llama import ProblemBinder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a household GGUF world model")
    parser.add_argument("--data", required=True, help="a transition log of household-v0 (planner collect/learn)")
    parser.add_argument("--split", default="test", help="the split the log's seeds were generated in")
    parser.add_argument("--limit", type=int, default=3000, help="the first N transitions")
    args = parser.parse_args()
    records = read_records(args.data, limit=args.limit)
    by_problem = defaultdict(list)
    for r in records:
        by_problem[r.problem].append(r)
    bind = ProblemBinder(args.model, mode="prefix", on_invalid="reject")
    n: Counter[str] = Counter()
    facts_ok: Counter[str] = Counter()
    text_ok: Counter[str] = Counter()
    unrenderable = 0
    started = time.perf_counter()
    try:
        for problem, rs in by_problem.items():
            seed = int(problem.rsplit("-", 1)[1])
            env = make_household(seed=seed, split=args.split, engine="textworld")
            env.reset()
            model = bind(rs[0].objects, FactGoal(frozenset(rs[0].goal)))
            for r in rs:
                verb = r.action.strip("()").split()[0]
                state, real = r.state_obj(), r.next_state_obj()
                pred = model.predict(state, Action(r.action))
                n[verb] += 1
                facts_ok[verb] += pred.next_state == real
                try:
                    text = env.render_text(state, Action(r.action), pred.next_state)
                except ConfigError:  # an impossible imagined fact (the agent at an item): no text
                    unrenderable += 1
                    continue
                text_ok[verb] += text == env.render_text(state, Action(r.action), real)
    finally:
        if bind.model is not None:
            bind.model.close()
    total = sum(n.values())
    print(f"household-v0 {args.split}: {total} transitions from {len(by_problem)} games of {args.data}, "
          f"model {args.model}, {time.perf_counter() - started:.0f} s")
    print("| action | transitions | next state exact | next text exact |")
    print("|---|---|---|---|")
    for verb in sorted(n):
        print(f"| {verb} | {n[verb]} | {facts_ok[verb] / n[verb]:.2%} | {text_ok[verb] / n[verb]:.2%} |")
    print(f"| all | {total} | {sum(facts_ok.values()) / total:.2%} | {sum(text_ok.values()) / total:.2%} |")
    print(f"predicted states the grammar cannot render (counted wrong): {unrenderable}")


if __name__ == "__main__":
    main()
