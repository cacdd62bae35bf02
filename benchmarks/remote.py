"""World-model predictions per second: in-process vs a llama.cpp server at 1, 4 and 16
concurrent requests, all figures measured in this one run on the same states.

The server is llama-cpp-python's (``planner serve``, started here on 127.0.0.1 with the same
GGUF and the same one llama.cpp thread); every served prediction is checked to equal the
in-process one. ``--busy N`` runs N CPU-bound processes beside the measurement, as a user's
own software would.

    python benchmarks/remote.py [--model planner/models/blocksworld-q8_0.gguf] [--states 12] [--busy 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import tempfile
import time
from pathlib import Path

from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.world.engine import available_cores
from planner.world.factory import default_model_path
from planner.world.llama import LlamaWorldModel
from planner.world.remote import RemoteWorldModel
from planner.world.serve import running_server


def _burn(stop: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x += i * i


def measure(model: LlamaWorldModel, env: PDDLEnvironment, states: list) -> tuple[float, int, list[str | None]]:
    """(predictions/s, predictions, raw answers) for ``predict_many`` over every state's candidates."""
    raws: list[str | None] = []
    start = time.perf_counter()
    for state in states:
        raws.extend(p.raw for p in model.predict_many(state, list(env.candidate_actions(state))))
    seconds = time.perf_counter() - start
    return len(raws) / seconds, len(raws), raws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--states", type=int, default=12)
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes running beside the measurement")
    args = parser.parse_args()
    path = args.model or default_model_path("blocksworld")
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.busy)]
    for b in burners:
        b.start()
    load = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = PDDLEnvironment(*write_problem(tmp, args.blocks, seed=7))
            states = env.random_walk(env.state, args.states - 1, random.Random(1))
            rows = []
            local = LlamaWorldModel.for_environment(path, env, n_threads=1)
            measure(local, env, states[:1])  # warm-up
            rate, count, expected = measure(local, env, states)
            rows.append(("in-process (batched siblings)", "-", rate, count, "-"))
            local.close()
            with running_server(path, n_threads=1) as url:
                for concurrency in (1, 4, 16):
                    remote = RemoteWorldModel.for_environment(path, env, url=url, concurrency=concurrency)
                    measure(remote, env, states[:1])
                    before = remote.client.requests
                    rate, count, raws = measure(remote, env, states)
                    same = "yes" if raws == expected else f"NO ({sum(a != b for a, b in zip(raws, expected))} differ)"
                    per = (remote.client.requests - before) / count
                    rows.append((f"server, {concurrency} concurrent", f"{per:.2f}", rate, count, same))
                    remote.close()
    finally:
        stop.set()
        for b in burners:
            b.join(timeout=5)
    cores = available_cores()
    print(f"model {path} ({path.stat().st_size / 1e6:.2f} MB), {args.blocks} blocks, {len(states)} states; "
          f"{cores} cores, load average {load[0]:.2f} at the start, {args.busy} busy process(es) beside")
    print("server: llama-cpp-python's, 127.0.0.1, one llama.cpp thread (it answers one request at a time)")
    print(f"{'world model':<32} {'requests/pred':>13} {'predictions/s':>14} {'vs in-process':>14} "
          f"{'predictions':>12} {'same answers':>13}")
    base = rows[0][2]
    for label, per, rate, count, same in rows:
        print(f"{label:<32} {per:>13} {rate:>14.1f} {rate / base:>13.3f}x {count:>12} {same:>13}")


if __name__ == "__main__":
    main()
