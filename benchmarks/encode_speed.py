"""How long a training run spends reading and encoding its data before the first step.

Reads the first ``--limit`` records of a transition log (``load_records``) and encodes them for
a model's vocabulary (``encode_records``), as ``planner train`` does before it trains, and prints
seconds and records a second for each stage. On a GPU machine this comes before any GPU work,
so it is part of every lease.

    python benchmarks/encode_speed.py --data runs/hh-data4/train.jsonl \\
        --model planner/models/household-q8_0.gguf [--limit 300000]

To compare two versions of the code, run it on each (the same log, the same machine, one after
the other) and divide.
"""

from __future__ import annotations

import argparse
import time

from planner.training.data import encode_records, load_records
from planner.world.codec import domain_vocabulary
from planner.world.gguf_io import read_model_info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a transition log (JSONL)")
    parser.add_argument("--model", required=True, help="a GGUF world model whose vocabulary encodes the records")
    parser.add_argument("--limit", type=int, default=300_000, help="the first N records")
    args = parser.parse_args()
    info = read_model_info(args.model)
    vocab = domain_vocabulary(info.predicates, info.actions, info.max_objects)
    started = time.perf_counter()
    records = load_records(args.data, limit=args.limit)
    read = time.perf_counter() - started
    started = time.perf_counter()
    encode_records(records, vocab, info.predicates, info.actions, info.max_objects)
    encode = time.perf_counter() - started
    print(f"{len(records):,} records of {args.data}, vocabulary of {args.model}")
    print("| stage | s | records/s |")
    print("|---|---|---|")
    for stage, seconds in (("read", read), ("encode", encode), ("both", read + encode)):
        print(f"| {stage} | {seconds:.1f} | {len(records) / seconds:,.0f} |")


if __name__ == "__main__":
    main()
