"""A text-only world learned end to end: TextWorld cooking games (``cooking-v0``) → text
transitions → a tiny Llama model on the text-observation codec → next-observation exact match
on held-out games with llama.cpp, per command, beside the figure published for a fine-tuned
7-billion-parameter model on TextWorld (70.6%).

    python benchmarks/text_world.py --out runs/cooking [--train-games 0-79] [--test-games 0-19] \
        [--minutes 25] [--go 1] [--branches 4]

Held-out games are ``split=test`` seeds: other layouts, recipes, placements and sampled
descriptions, with TextWorld's training food names (an unseen name is out of a word-level
vocabulary's reach; the table counts such observations). Collected transitions are kept under
``OUT/data`` and reused by a later run with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from planner.env.registry import make
from planner.io import atomic_write_text
from planner.training.text import TextTrainConfig, collect, evaluate_text, read_transitions, train_text
from planner.world.text_model import TextObservationModel

PUBLISHED = 70.6
"""Next-observation exact match reported for TextWorld after fine-tuning a 7B model on 4 GPUs."""


def span(text: str) -> range:
    a, _, b = text.partition("-")
    return range(int(a), int(b or a) + 1)


def gather(path: Path, split: str, games: range, args: argparse.Namespace) -> None:
    if path.exists():
        return
    tmp = path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    start = time.perf_counter()
    n = collect(lambda g: make("cooking-v0", seed=g, split=split, go=args.go), games, tmp,
                branches=args.branches, max_steps=args.max_steps,
                progress=lambda g, k: print(f"  {split} game {g}: {k} transitions", flush=True))
    tmp.rename(path)
    print(f"{split}: {n} transitions from {len(games)} games in {time.perf_counter() - start:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/cooking"))
    parser.add_argument("--train-games", default="0-79")
    parser.add_argument("--test-games", default="0-19")
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--go", type=int, default=1)
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    data = args.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    gather(data / "train.jsonl", "train", span(args.train_games), args)
    gather(data / "test.jsonl", "test", span(args.test_games), args)
    train = read_transitions(data / "train.jsonl")
    test = read_transitions(data / "test.jsonl")
    summary = train_text(train, args.out / "model", domain="cooking-v0",
                         config=TextTrainConfig(minutes=args.minutes, threads=args.threads),
                         progress=lambda s, loss: print(f"  step {s} loss {loss:.4f}", flush=True) if s % 100 == 0
                         else None)
    model = TextObservationModel(args.out / "model" / "model-q8_0.gguf", n_threads=1)
    held_out = evaluate_text(model, test)
    seen = evaluate_text(model, train[:: max(1, len(train) // len(test))][: len(test)])
    model.close()
    print()
    print(f"cooking-v0 go={args.go}: {len(train)} training transitions ({args.train_games}, split=train), "
          f"{len(test)} held-out ({args.test_games}, split=test)")
    print(f"model: {summary['params'] / 1e6:.2f} M parameters, {len(summary['words'])} words, "
          f"{summary['steps']} steps in {summary['train_seconds']:.0f} s, "
          f"{summary['left_out']} training transitions left out (context)")
    print(f"held-out games ({held_out.seconds:.1f} s with llama.cpp):")
    print(held_out.table())
    print(f"training games (same count): {100 * seen.exact_rate:.2f}% exact")
    print(f"published (7B model fine-tuned on TextWorld): {PUBLISHED}%")
    report = {"args": {k: str(v) for k, v in vars(args).items()},
              "summary": {k: v for k, v in summary.items() if k != "words"},
              "held_out": {"exact": held_out.exact, "transitions": held_out.transitions,
                           "done_right": held_out.done_right, "unknown": held_out.unknown_answer_words,
                           "by_verb": held_out.by_verb},
              "training_sample_exact": seen.exact_rate}
    atomic_write_text(args.out / "report.json", json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
