"""Household games: generation and engine costs, and the agent's plans against the built-in expert.

For each seed of each split, builds ``household-v0`` (the game generated from a scene of the
split, played by TextWorld's PDDL engine), asks the engine's built-in expert for its plan (its
``policy_commands`` at the start: Fast Downward replanning), plays one episode with the agent
and a world model (the exact model by default, or ``--model GGUF``), and prints per split:
games solved, the agent's plan length over the expert's, over the optimal plan's, divergences,
and the median times to generate a game, load it in the engine, and take one engine step.

    python benchmarks/household.py --seeds 0-19
    python benchmarks/household.py --seeds 0-19 --model planner/models/household-q8_0.gguf
    python benchmarks/household.py --seeds 0-49 --splits test --model planner/models/household-q8_0.gguf \
        --doubt off,stuck,on --verbose

``--doubt`` plays each game once per agent mode (rows side by side, measured in one run):
without doubted refusals, with them only when no plan is found, and with the defaults.
``--votes 1,3`` plays each of those once per vote count (the model asked under that many
numberings of the objects, :mod:`planner.world.votes`), side by side too.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import textworld

from planner.agent import Agent
from planner.config import PlannerConfig
from planner.env.household import SPLITS, HouseholdEnvironment, make_household
from planner.env.household.env import _textworld_env
from planner.world.doubt import AGENT_MODES
from planner.world.oracle import OracleWorldModel


def expert_length(env: HouseholdEnvironment) -> int:
    """Steps of the engine's own expert plan from the start."""
    tw = _textworld_env(env.game)
    tw.request_infos = textworld.EnvInfos(facts=True, won=True, feedback=True, policy_commands=True)
    state = tw.reset()
    return len(state["policy_commands"])


def mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f}" if values else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-19", help="A-B, ends inclusive, per split")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--model", default=None, help="a GGUF world model (default: the exact model)")
    parser.add_argument("--doubt", default="on", help="comma-separated agent modes, one row each: "
                        "off (no doubted refusals), stuck (only when no plan is found), on (the defaults)")
    parser.add_argument("--votes", default="1", help="comma-separated vote counts of the GGUF model, one row each")
    parser.add_argument("--vote-below", type=float, default=0.99, help="with votes: ask the other numberings "
                        "about answers less sure than this")
    parser.add_argument("--verbose", action="store_true", help="one line per episode")
    args = parser.parse_args()
    votes = [int(v) for v in args.votes.split(",")]
    if votes != [1] and not args.model:
        parser.error("--votes counts a GGUF model's answers: give --model")
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    modes = args.doubt.split(",")
    if unknown := [m for m in modes if m not in AGENT_MODES]:
        parser.error(f"unknown --doubt mode(s) {unknown}: choose from {', '.join(AGENT_MODES)}")
    rows: dict[tuple[str, str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for split in args.splits.split(","):
        for seed in seeds:
            started = time.perf_counter()
            planning = make_household(seed=seed, split=split, engine="planner")
            generate = time.perf_counter() - started
            for mode, vote in [(m, v) for m in modes for v in votes]:
                r = rows[(split, mode, vote)]
                r["generate"].append(generate)
                started = time.perf_counter()
                env = HouseholdEnvironment(planning.game)
                env.reset()
                r["load"].append(time.perf_counter() - started)
                expert = expert_length(env)
                if args.model:
                    from planner.world.factory import bind_environment_model

                    model = bind_environment_model(args.model, env, reset_seed=seed, votes=vote,
                                                   vote_below=args.vote_below)
                else:
                    model = OracleWorldModel(env)
                config = PlannerConfig.model_validate({"agent": AGENT_MODES[mode]})
                started = time.perf_counter()
                result = Agent(env, model, config=config).run(seed=seed)
                r["episode"].append(time.perf_counter() - started)
                r["solved"].append(float(result.solved))
                r["divergences"].append(result.divergences)
                r["doubted"].append(result.doubted)
                r["doubted_applied"].append(result.doubted_applied)
                if result.solved:
                    r["vs_expert"].append(len(result.steps) / expert)
                    r["vs_optimal"].append(len(result.steps) / env.game.optimal)
                if args.verbose:
                    print(f"{split} seed {seed} {mode} votes {vote}: solved={result.solved} steps={len(result.steps)} "
                          f"expert={expert} divergences={result.divergences} probes={result.probes} "
                          f"doubted={result.doubted} ({result.doubted_applied} applied) "
                          f"stopped_by={result.stopped_by} {r['episode'][-1]:.1f} s", flush=True)
                started = time.perf_counter()
                env.reset()
                for action in env.optimal_plan() or []:
                    env.step(action)
                r["engine_step"].append((time.perf_counter() - started) / max(1, env.game.optimal))
    print(f"household-v0, seeds {args.seeds} per split, model: {args.model or 'exact'}"
          + (f", votes asked again below {args.vote_below}" if votes != [1] else ""))
    print("| split | doubt | votes | solved | plan / expert | plan / optimal | divergences | doubted steps (applied) "
          "| episode s (median / mean) | generate s | engine load s | engine step ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (split, mode, vote), r in rows.items():
        n = len(r["solved"])
        print(f"| {split} | {mode} | {vote} | {int(sum(r['solved']))}/{n} | {mean(r['vs_expert'])} | "
              f"{mean(r['vs_optimal'])} | "
              f"{int(sum(r['divergences']))} | {int(sum(r['doubted']))} ({int(sum(r['doubted_applied']))}) | "
              f"{statistics.median(r['episode']):.1f} / {statistics.mean(r['episode']):.1f} | "
              f"{statistics.median(r['generate']):.2f} | "
              f"{statistics.median(r['load']):.2f} | {1e3 * statistics.median(r['engine_step']):.1f} |")


if __name__ == "__main__":
    main()
