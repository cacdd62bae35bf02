"""What a fact-delta model's prompt layout costs at run time: models of codec versions 1, 2 and 3
(``planner train --codec-version``) asked the same questions, all figures measured in this run.

Each model answers, for the first ``--states`` distinct states of a transition log, every
action the log tried there, as one batch (``predict_many``: the state's prompt once, then each
action's suffix — in versions 2 and 3 the suffix also carries facts that name the action's
arguments). The models take turns, ``--rounds`` times, so a busy machine slows them alike;
each row keeps a model's fastest round. Ratios are against the first model. With ``--busy N``
the rounds are run again beside ``N`` processes that each spin one core (as the user's own
software would), and those rows follow.

    python benchmarks/prompt_layouts.py --models planner/models/household-q8_0.gguf runs/v2/model-q8_0.gguf \\
        --data runs/hh-data/val.jsonl [--states 300] [--rounds 3] [--threads 1] [--busy 1]

A last line per later model whose version differs from the first model's reads ``version V /
version F: <X>x the time per prediction, <Y>x the prompt tokens`` (idle machine; F: the first's).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path

from contention import spin  # benchmarks/ is on the path when this runs as a script

from planner.data.collect import read_records
from planner.types import Action, FactGoal, State
from planner.world.gguf_io import read_model_info
from planner.world.llama import ProblemBinder


@dataclass(frozen=True)
class Question:
    objects: tuple[str, ...]
    goal: FactGoal
    state: State
    actions: tuple[Action, ...]
    expected: tuple[frozenset[str], ...]


@dataclass(frozen=True)
class Round:
    seconds: float
    predictions: int
    prompt_tokens: int
    generated_tokens: int
    exact: int


def questions(log: Path, limit: int) -> list[Question]:
    """The first ``limit`` distinct (problem, state) pairs of ``log`` with every action tried there."""
    groups: dict[tuple[str, frozenset[str]], list] = {}
    for r in read_records(log):
        key = (r.problem, frozenset(r.state))
        if key not in groups and len(groups) >= limit:
            continue
        group = groups.setdefault(key, [])
        if r.action not in {g.action for g in group}:
            group.append(r)
    out = []
    for rs in groups.values():
        first = rs[0]
        out.append(Question(objects=tuple(first.objects), goal=FactGoal(frozenset(first.goal)),
                            state=first.state_obj(), actions=tuple(Action(r.action) for r in rs),
                            expected=tuple(frozenset(r.next_state) for r in rs)))
    return out


def run(binder: ProblemBinder, qs: list[Question]) -> Round:
    seconds, predictions, prompt, generated, exact = 0.0, 0, 0, 0, 0
    for q in qs:
        model = binder(q.objects, q.goal)
        before = (model.stats.prompt_tokens, model.stats.generated_tokens)
        start = time.perf_counter()
        preds = model.predict_many(q.state, list(q.actions))
        seconds += time.perf_counter() - start
        predictions += len(preds)
        prompt += model.stats.prompt_tokens - before[0]
        generated += model.stats.generated_tokens - before[1]
        exact += sum(p.next_state.facts == e for p, e in zip(preds, q.expected, strict=True))
    return Round(seconds, predictions, prompt, generated, exact)


def fastest(binders: list[ProblemBinder], qs: list[Question], rounds: int, busy: int) -> list[Round]:
    """Each model's fastest of ``rounds`` rounds, the models taking turns, beside ``busy`` spinners."""
    spinners = [mp.Process(target=spin, daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    try:
        time.sleep(0.5 if busy else 0.0)
        best: list[Round | None] = [None] * len(binders)
        for _ in range(rounds):
            for i, binder in enumerate(binders):
                r = run(binder, qs)
                if best[i] is None or r.seconds < best[i].seconds:  # type: ignore[union-attr]
                    best[i] = r
        return [r for r in best if r is not None]
    finally:
        for p in spinners:
            p.terminate()
            p.join()


def table(models: list[Path], versions: list[int | None], rounds: list[Round], label: str) -> None:
    base = rounds[0]
    for path, version, r in zip(models, versions, rounds, strict=True):
        ms = 1000 * r.seconds / r.predictions
        print(f"{str(path)[-40:]:<40} {label:>5} {version!s:>5} {ms:8.3f} {r.seconds / base.seconds:6.2f} "
              f"{r.prompt_tokens / r.predictions:15.2f} {r.prompt_tokens / base.prompt_tokens:6.2f} "
              f"{r.generated_tokens / r.predictions:12.2f} {100 * r.exact / r.predictions:12.2f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, nargs="+", required=True)
    ap.add_argument("--data", type=Path, required=True, help="a transition log (JSONL) of the models' domain")
    ap.add_argument("--states", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: the planner's choice)")
    ap.add_argument("--busy", type=int, default=0, help="also measure beside this many processes spinning a core")
    args = ap.parse_args()
    qs = questions(args.data, args.states)
    versions = [read_model_info(m).codec_version for m in args.models]
    binders = [ProblemBinder(m, mode="batched", on_invalid="reject", n_threads=args.threads) for m in args.models]
    try:
        idle = fastest(binders, qs, args.rounds, 0)
        busy = fastest(binders, qs, args.rounds, args.busy) if args.busy else []
    finally:
        for binder in binders:
            if binder.model is not None:
                binder.model.close()
    print(f"{len(qs)} states, {idle[0].predictions} predictions of {args.data}; fastest of {args.rounds} rounds, "
          "models taking turns")
    print(f"{'model':<40} {'busy':>5} {'codec':>5} {'ms/pred':>8} {'x':>6} {'prompt tok/pred':>15} {'x':>6} "
          f"{'gen tok/pred':>12} {'next-state EM':>13}")
    table(args.models, versions, idle, "0")
    if busy:
        table(args.models, versions, busy, str(args.busy))
    for k in range(1, len(idle)):
        if versions[k] != versions[0]:
            print(f"version {versions[k]} / version {versions[0]}: {idle[k].seconds / idle[0].seconds:.2f}x the time "
                  f"per prediction, {idle[k].prompt_tokens / idle[0].prompt_tokens:.2f}x the prompt tokens"
                  + (f" (beside {args.busy} busy: {busy[k].seconds / busy[0].seconds:.2f}x)" if busy else ""))

if __name__ == "__main__":
    main()
