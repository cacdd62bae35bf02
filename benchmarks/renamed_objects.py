"""Does a world model read the facts, or where its objects' names happen to sort? Next-state
exact match on a transition log as recorded and with every problem's objects renamed so that
they sort in another order (the same facts, the same transitions; ``xi`` stands for another
object), per action.

    python benchmarks/renamed_objects.py --model planner/models/household-q8_0.gguf \\
        --data runs/hh-data/test.jsonl --renamings 3

The runtime numbers a problem's objects ``x1 … xn`` in the sorted order of their names. A
model that learned a rule from the facts scores the same under any renaming; one that learned
an accident of naming (in the household games ``desk_1`` sorts just before ``desklamp_1``)
scores worse. Renaming ``k`` puts the prefix ``oNN_`` before each name, ``NN`` from a
permutation seeded by ``k`` and the problem (renaming 0 is the log as recorded; a problem of
few objects may draw the names' own order).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict

from planner.data.collect import TransitionRecord, read_records
from planner.types import Action, FactGoal, State
from planner.world.llama import ProblemBinder


def renaming(objects: list[str], problem: str, k: int) -> dict[str, str]:
    """Object → new name for renaming ``k`` of ``problem`` (``k == 0``: the names as they are)."""
    names = sorted(objects)
    if k == 0:
        return {o: o for o in names}
    order = list(range(len(names)))
    random.Random(f"{k}/{problem}").shuffle(order)
    width = len(str(len(names)))  # o07_… sorts before o10_… whatever the count
    return {o: f"o{order[i]:0{width}d}_{o}" for i, o in enumerate(names)}


def _atom(text: str, new: dict[str, str]) -> str:
    name, *args = text.strip("()").split()
    return "(" + " ".join([name, *(new[a] for a in args)]) + ")"


def score(binder: ProblemBinder, records: list[TransitionRecord], k: int) -> tuple[Counter[str], Counter[str]]:
    """(transitions, next states predicted exactly) per action under renaming ``k``."""
    by_problem: dict[str, list[TransitionRecord]] = defaultdict(list)
    for r in records:
        by_problem[r.problem].append(r)
    n: Counter[str] = Counter()
    ok: Counter[str] = Counter()
    for problem, rs in by_problem.items():
        new = renaming(rs[0].objects, problem, k)
        model = binder([new[o] for o in rs[0].objects], FactGoal(frozenset(_atom(g, new) for g in rs[0].goal)))
        for r in rs:
            state = State.from_facts([_atom(f, new) for f in r.state])
            real = State.from_facts([_atom(f, new) for f in r.next_state])
            verb = r.action.strip("()").split()[0]
            n[verb] += 1
            ok[verb] += model.predict(state, Action(_atom(r.action, new))).next_state == real
    return n, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a GGUF world model")
    parser.add_argument("--data", required=True, help="a transition log of the model's domain")
    parser.add_argument("--renamings", type=int, default=3, help="renamings besides the names as recorded")
    parser.add_argument("--limit", type=int, default=None, help="the first N transitions")
    args = parser.parse_args()
    if args.renamings < 0:
        parser.error(f"--renamings must be 0 or more, got {args.renamings}")
    records = read_records(args.data, limit=args.limit)
    if not records:
        parser.error(f"no transition records in {args.data}")
    binder = ProblemBinder(args.model, mode="prefix", on_invalid="reject")
    started = time.perf_counter()
    results = []
    try:
        for k in range(args.renamings + 1):
            results.append(score(binder, records, k))
    finally:
        if binder.model is not None:
            binder.model.close()
    n = results[0][0]
    total = sum(n.values())
    print(f"{args.model} on {total} transitions of {args.data}, {time.perf_counter() - started:.0f} s")
    heads = ["as recorded", *(f"renamed {k}" for k in range(1, args.renamings + 1))]
    print("| action | transitions | " + " | ".join(heads) + " |")
    print("|---|---" + "|---" * len(heads) + "|")
    for verb in sorted(n):
        print(f"| {verb} | {n[verb]} | " + " | ".join(f"{ok[verb] / n[verb]:.2%}" for _, ok in results) + " |")
    print(f"| **all** | {total} | " + " | ".join(f"**{sum(ok.values()) / total:.2%}**" for _, ok in results) + " |")
    wrong = [total - sum(ok.values()) for _, ok in results]
    print(f"wrong next states: {', '.join(map(str, wrong))}; renamed mean {sum(wrong[1:]) / max(1, len(wrong) - 1):.1f}"
          f" vs {wrong[0]} as recorded")


if __name__ == "__main__":
    main()
