"""World-model throughput for one GGUF model, all figures measured in this one run.

Rows: (a) naive — KV cache cleared before every prediction; (b) prefix reuse — siblings one
after another, the goal+state prefix kept; (c) batched — all siblings of a state decoded
together; (d) batched behind the transition cache on a real search workload (beam search with
the model on generated problems). Plus llama.cpp's raw throughput for this model as a bound,
and batched vs one-at-a-time speed by number of siblings.

    python benchmarks/world_model.py [--model planner/models/blocksworld-q8_0.gguf] [--states 12]
                                     [--gpu-layers -1]

The last line reads ``prompt-token reduction: prefix <X>x, batched <Y>x; batched speedup <Z>x``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.errors import WorldModelError
from planner.search.beam import beam_search
from planner.search.policies import distance_value
from planner.search.problem import Budget, SearchProblem
from planner.types import State
from planner.world.cache import CachedWorldModel
from planner.world.factory import default_model_path
from planner.world.llama import LlamaWorldModel


def run_mode(model: LlamaWorldModel, env: PDDLEnvironment, states: list[State], *, batched: bool,
             siblings: int | None = None) -> tuple[float, float, int]:
    """(predictions/s, prompt tokens per prediction, predictions)."""
    model.stats.prompt_tokens = 0
    count, errors = 0, 0
    start = time.perf_counter()
    for state in states:
        actions = list(env.candidate_actions(state))[:siblings]
        if batched:
            try:
                count += len(model.predict_many(state, actions))
            except WorldModelError:
                errors += 1
        else:
            for a in actions:
                try:
                    model.predict(state, a)
                    count += 1
                except WorldModelError:
                    errors += 1
    seconds = time.perf_counter() - start
    return count / seconds, model.stats.prompt_tokens / max(count, 1), count


def raw_throughput(model: LlamaWorldModel) -> tuple[float, float]:
    """llama.cpp tokens/s: one 256-token batch (prompt speed) and 64 single-token decodes."""
    eng = model.engine
    model.decoder.clear()
    toks = [eng.bos] + [list(model.word_ids.values())[i % 50] for i in range(255)]
    start = time.perf_counter()
    eng.decode([(t, i, 0, i == len(toks) - 1) for i, t in enumerate(toks)])
    batch_tps = len(toks) / (time.perf_counter() - start)
    eng.clear()
    start = time.perf_counter()
    for i, t in enumerate(toks[:64]):
        eng.decode([(t, i, 0, True)])
    single_tps = 64 / (time.perf_counter() - start)
    model.decoder.clear()
    return batch_tps, single_tps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--states", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpu-layers", type=int, default=0,
                        help="layers offloaded to a GPU (CUDA or Metal builds of llama.cpp; -1 = all)")
    args = parser.parse_args()
    path = args.model or default_model_path("blocksworld")
    with tempfile.TemporaryDirectory() as tmp:
        env = PDDLEnvironment(*write_problem(tmp, args.blocks, seed=7))
        states = env.random_walk(env.state, args.states - 1, random.Random(1))
        n_cands = len(env.candidate_actions(env.state))

        def fresh(mode: str) -> LlamaWorldModel:
            return LlamaWorldModel.for_environment(path, env, mode=mode, n_threads=args.threads,
                                                   n_gpu_layers=args.gpu_layers, on_invalid="reject")

        rows = []
        for label, mode, batched in (("(a) naive", "naive", False), ("(b) prefix reuse", "prefix", False),
                                     ("(c) batched siblings", "batched", True)):
            m = fresh(mode)
            run_mode(m, env, states[:1], batched=batched)  # warm-up
            rows.append((label, *run_mode(m, env, states, batched=batched)))
            m.close()

        # (d) a real search workload: beam search with the batched model behind the cache.
        m = fresh("batched")
        cached = CachedWorldModel(m)
        start = time.perf_counter()
        preds = tokens = 0
        for seed in range(3):
            penv = PDDLEnvironment(*write_problem(tmp, args.blocks, seed=100 + seed))
            m.rebind(objects=penv.task.objects, goal=penv.goal)
            before = m.stats.snapshot()
            for _ in range(2):  # the agent replans from the same states: the cache answers
                problem = SearchProblem(model=cached, goal=penv.goal, actions=penv.candidate_actions,
                                        value=distance_value(penv.distance_heuristic("ff")))
                r = beam_search(problem, penv.state, Budget(beam_width=8))
                del r
            used = m.stats.since(before)
            preds += used.predictions
            tokens += used.prompt_tokens
        seconds = time.perf_counter() - start
        hits = m.stats.cache_hits
        rows.append(("(d) batched + cache, search", preds / seconds, tokens / max(preds, 1), preds))
        batch_tps, single_tps = raw_throughput(m)
        m.close()

        by_siblings = []
        for k in (1, 4, 8, 16, 32, n_cands):
            seq = fresh("prefix")
            bat = fresh("batched")
            run_mode(seq, env, states[:1], batched=False, siblings=k)
            run_mode(bat, env, states[:1], batched=True, siblings=k)
            s_rate = run_mode(seq, env, states, batched=False, siblings=k)[0]
            b_rate = run_mode(bat, env, states, batched=True, siblings=k)[0]
            by_siblings.append((k, s_rate, b_rate))
            seq.close()
            bat.close()

    offload = f"{args.gpu_layers} GPU layers" if args.gpu_layers else "CPU only"
    print(f"model {path} ({path.stat().st_size / 1e6:.2f} MB, {offload}), {args.blocks} blocks, {n_cands} candidate "
          f"actions per state, {len(states)} states")
    print(f"{'workload':<30} {'predictions/s':>14} {'prompt tok/pred':>16} {'predictions':>12}")
    for label, rate, tpp, count in rows:
        print(f"{label:<30} {rate:>14.0f} {tpp:>16.2f} {count:>12}")
    print(f"{'(d) cache hits':<30} {hits:>14}")
    print(f"llama.cpp raw: {batch_tps:.0f} tokens/s in one batch, {single_tps:.0f} tokens/s one token per call")
    print(f"{'siblings':>8} {'one at a time/s':>16} {'batched/s':>10} {'speedup':>8}")
    for k, s_rate, b_rate in by_siblings:
        print(f"{k:>8} {s_rate:>16.0f} {b_rate:>10.0f} {b_rate / s_rate:>7.2f}x")
    naive_tpp, prefix_tpp, batched_tpp = rows[0][2], rows[1][2], rows[2][2]
    speedup = rows[2][1] / rows[1][1]
    print(f"prompt-token reduction: prefix {naive_tpp / prefix_tpp:.1f}x, batched {naive_tpp / batched_tpp:.1f}x; "
          f"batched speedup {speedup:.2f}x")


if __name__ == "__main__":
    main()
