"""The same solves alone and beside busy processes: does the planner collapse under load?

Users run the planner beside their own software. llama.cpp's worker threads spin-wait for each
other, so a thread count that fills every core stalls whenever another process wants one. For
each thread setting this script runs the same ``planner solve … --json`` commands (shipped
GGUF model, model load included, one process per problem) on an idle machine and again beside
``--busy`` processes that each spin one core, interleaving the settings so slow drift on a
shared machine hits them alike, and prints the median wall seconds and their ratio (busy /
idle) in one table.

    python benchmarks/contention.py [--blocks 5,6] [--seeds 3] [--busy 1] [--settings default,1,2]

``default`` passes no ``--threads`` (the planner chooses); a number passes ``--threads N``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from planner.env.blocksworld import write_problem


def spin() -> None:  # pragma: no cover - runs in a child process until killed
    """Keep one core busy, as another program on the user's machine would."""
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def solve_seconds(domain: Path, problem: Path, setting: str) -> tuple[float, bool]:
    """Wall seconds of one ``planner solve`` command and whether it solved the problem."""
    cmd = [sys.executable, "-m", "planner.cli", "solve", str(domain), str(problem), "--json"]
    if setting != "default":
        cmd += ["--threads", setting]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    try:
        solved = bool(json.loads(done.stdout.strip().splitlines()[-1])["solved"])
    except (IndexError, ValueError, KeyError):
        print(f"no JSON from {' '.join(cmd)}: {done.stderr.strip()[:200]}", file=sys.stderr)
        solved = False
    return seconds, solved


def measure(problems: list[tuple[Path, Path]], settings: list[str], busy: int) -> dict[str, list[float]]:
    """Seconds per setting over ``problems``, with ``busy`` spinning processes running."""
    spinners = [mp.Process(target=spin, daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    try:
        time.sleep(0.5 if busy else 0.0)
        times: dict[str, list[float]] = {s: [] for s in settings}
        for domain, problem in problems:
            for setting in settings:  # interleaved: drift on a shared machine hits all alike
                seconds, solved = solve_seconds(domain, problem, setting)
                if not solved:
                    print(f"not solved: {problem.name} with threads={setting}", file=sys.stderr)
                times[setting].append(seconds)
        return times
    finally:
        for p in spinners:
            p.kill()
            p.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", default="5,6", help="comma-separated block counts")
    parser.add_argument("--seeds", type=int, default=3, help="problems per block count")
    parser.add_argument("--busy", type=int, default=1, help="spinning processes beside the planner")
    parser.add_argument("--settings", default="default,1,2", help="thread settings to compare")
    args = parser.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        problems = [write_problem(Path(tmp), int(n), seed=1000 + s)
                    for n in args.blocks.split(",") for s in range(args.seeds)]
        idle = measure(problems, settings, busy=0)
        loaded = measure(problems, settings, busy=args.busy)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{len(problems)} solves per cell (blocks {args.blocks}), {cores} cores, "
          f"{args.busy} busy process(es) in the loaded run; median wall seconds per solve (whole command)")
    print(f"| threads | idle s | beside {args.busy} busy s | busy / idle | idle / default idle |")
    print("|---|---|---|---|---|")
    base = statistics.median(idle[settings[0]])
    for s in settings:
        a, b = statistics.median(idle[s]), statistics.median(loaded[s])
        print(f"| {s} | {a:.2f} | {b:.2f} | {b / a:.2f}x | {a / base:.2f}x |")


if __name__ == "__main__":
    main()
