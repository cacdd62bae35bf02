"""How long ``planner train`` takes to read and encode a transition log, in one process and in
several (``--threads``), alone and beside processes that keep cores busy.

For each ``--processes`` count and each ``--busy`` count, reads the log ``--repeats`` times
(interleaved, so slow drift on a shared machine hits every setting alike) with
:func:`planner.training.reading.encode_log` and prints the median wall seconds, records a second
and the ratio to one process under the same load, all measured in this one run. The examples of
every setting are checked to be those of one process.

    python benchmarks/read_log.py --data runs/hh-data7/train.jsonl --init planner/models/household-q8_0.gguf \\
        [--processes 1,2] [--busy 0,1] [--repeats 3] [--records 200000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

from contention import spin  # benchmarks/ is on the path when this runs as a script

from planner.training.reading import encode_log
from planner.world.codec import domain_vocabulary
from planner.world.gguf_io import read_model_shape


def fingerprint(examples: list) -> int:
    """A hash of every field of every example (the settings must agree on it)."""
    arrays = ("goal", "state", "answer", "next_state", "goal_next", "goal_now", "fact_pool", "rank")
    return hash(tuple(hash((*(getattr(e, name).tobytes() for name in arrays), e.action, e.applicable, e.objects))
                      for e in examples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a transition log (JSONL)")
    parser.add_argument("--init", type=Path, required=True, help="GGUF world model whose schema encodes the log")
    parser.add_argument("--processes", default="1,2", help="reading processes to compare (the first is the base)")
    parser.add_argument("--busy", default="0,1", help="spinning processes beside the reading")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--records", type=int, default=0, help="read the first N lines only (0: all)")
    args = parser.parse_args()
    info, _ = read_model_shape(args.init)
    predicates, actions = dict(info.predicates), dict(info.actions)
    vocab = domain_vocabulary(predicates, actions, info.max_objects)
    counts = [int(x) for x in args.processes.split(",")]
    loads = [int(x) for x in args.busy.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        path = args.data
        if args.records:
            path = Path(scratch) / "head.jsonl"
            with open(args.data, "rb") as src, open(path, "wb") as dst:
                for i, line in enumerate(src):
                    if i >= args.records:
                        break
                    dst.write(line)
        size = path.stat().st_size
        seconds: dict[tuple[int, int], list[float]] = {(b, p): [] for b in loads for p in counts}
        prints: set[int] = set()
        records = 0
        for _ in range(args.repeats):
            for busy in loads:
                spinners = [mp.Process(target=spin, daemon=True) for _ in range(busy)]
                for s in spinners:
                    s.start()
                try:
                    for processes in counts:
                        start = time.perf_counter()
                        records, _, examples = encode_log(path, vocab, predicates, actions, info.max_objects,
                                                          processes=processes)
                        seconds[busy, processes].append(time.perf_counter() - start)
                        prints.add(fingerprint(examples))
                        del examples
                finally:
                    for s in spinners:
                        s.terminate()
                        s.join()
    assert len(prints) == 1, "the settings read different examples"
    print(f"{records} records, {size / 1e9:.2f} GB, {mp.cpu_count()} cores; median of {args.repeats} reads")
    print(f"{'busy cores':>10} {'processes':>10} {'seconds':>9} {'records/s':>10} {'× one':>7}")
    for busy in loads:
        base = statistics.median(seconds[busy, counts[0]])
        for processes in counts:
            s = statistics.median(seconds[busy, processes])
            print(f"{busy:>10} {processes:>10} {s:>9.1f} {records / s:>10.0f} {base / s:>7.2f}")


if __name__ == "__main__":
    main()
