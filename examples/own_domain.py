"""Make a world model for your own PDDL domain: collect, train, export, evaluate, plan.

The domain here is a small "gripper" world (a robot with two grippers carries balls between
rooms); replace DOMAIN and make_problem with yours. Needs the `train` extra (PyTorch):

    pip install -e ".[train]"
    python examples/own_domain.py --steps 3000      # about 10 minutes on 2 cores

With few steps the model is inaccurate; the agent still reaches the goal more often than
not because every real step is checked and divergences trigger a replan.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from planner.agent import Agent
from planner.config import PlannerConfig
from planner.data.collect import collect_pddl
from planner.data.fidelity import evaluate, read_records
from planner.env.pddl import PDDLEnvironment, domain_schemas, parse_domain
from planner.training.export import finish_model
from planner.training.train import TrainConfig, train
from planner.world.gguf_io import LlamaShape
from planner.world.llama import LlamaWorldModel, ProblemBinder
from planner.world.signature import domain_signature

DOMAIN = """\
(define (domain gripper)
  (:requirements :strips :typing)
  (:types room ball gripper)
  (:predicates (at-robby ?r - room) (at ?b - ball ?r - room) (free ?g - gripper) (carry ?b - ball ?g - gripper))
  (:action move :parameters (?from ?to - room)
    :precondition (at-robby ?from)
    :effect (and (at-robby ?to) (not (at-robby ?from))))
  (:action pick :parameters (?b - ball ?r - room ?g - gripper)
    :precondition (and (at ?b ?r) (at-robby ?r) (free ?g))
    :effect (and (carry ?b ?g) (not (at ?b ?r)) (not (free ?g))))
  (:action drop :parameters (?b - ball ?r - room ?g - gripper)
    :precondition (and (carry ?b ?g) (at-robby ?r))
    :effect (and (at ?b ?r) (free ?g) (not (carry ?b ?g)))))
"""


def make_problem(seed: int) -> str:
    rng = random.Random(seed)
    balls = [f"ball{i}" for i in range(1, rng.randint(1, 3) + 1)]
    rooms = ["rooma", "roomb"]
    init = [f"(at-robby {rng.choice(rooms)})", "(free left)", "(free right)"]
    init += [f"(at {b} {rng.choice(rooms)})" for b in balls]
    goal = [f"(at {b} {rng.choice(rooms)})" for b in balls]
    return (f"(define (problem gripper-{seed}) (:domain gripper)\n"
            f"  (:objects {' '.join(rooms)} - room {' '.join(balls)} - ball left right - gripper)\n"
            f"  (:init {' '.join(init)})\n  (:goal (and {' '.join(goal)})))\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/gripper"))
    parser.add_argument("--problems", type=int, default=60)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    out = args.out
    (out / "pddl").mkdir(parents=True, exist_ok=True)
    domain = out / "pddl" / "domain.pddl"
    domain.write_text(DOMAIN)
    files = []
    for seed in range(args.problems):
        path = out / "pddl" / f"p{seed}.pddl"
        path.write_text(make_problem(seed))
        files.append(path)
    n_test = max(1, args.problems // 5)

    # 1. collect real transitions, split by problem
    for name in ("train.jsonl", "test.jsonl"):
        (out / "data" / name).unlink(missing_ok=True)
    stats = collect_pddl(out / "data", domain=domain, problems=files, seed=0, episodes=6,
                         split_of=lambda i: "test" if i >= args.problems - n_test else "train")
    print({k: v.transitions for k, v in stats.items()}, "transitions collected")

    # 2. train, export GGUF, quantize with llama.cpp, compare Q8_0 with F32
    name, predicates, actions = domain_schemas(DOMAIN)
    config = TrainConfig(steps=args.steps, batch_size=32, warmup=min(200, args.steps // 5),
                         shape=LlamaShape(dim=96, n_layers=3, n_heads=3, ffn_dim=384, context=64),
                         max_objects=7, checkpoint_every=max(50, args.steps // 10), eval_every=10**9)
    summary = train(train_path=out / "data" / "train.jsonl", val_path=None, out_dir=out / "model",
                    predicates=predicates, actions=actions, domain=name, config=config, resume=False,
                    signature=domain_signature(parse_domain(DOMAIN)).to_json())
    report = finish_model(out / "model", data_path=out / "data" / "test.jsonl", sample=200)
    print(f"trained {summary['params']} parameters in {summary['train_seconds']:.0f} s; "
          f"Q8_0 agrees with F32 on {report['agreement']:.1%}")

    # 3. fidelity on held-out problems
    model_path = Path(report["q8_0"])
    bind = ProblemBinder(model_path, mode="prefix", on_invalid="reject")
    report = evaluate(read_records(out / "data" / "test.jsonl"), bind)
    report.invalid_rejected = bind.model.stats.invalid if bind.model is not None else 0
    print(report.table())

    # 4. plan a held-out problem with the new model
    env = PDDLEnvironment(domain, files[-1])
    model = LlamaWorldModel.for_environment(model_path, env, on_invalid="reject")
    cfg = PlannerConfig().updated(search={"heuristic": "ff"}, agent={"max_steps": 40})
    result = Agent(env, model, config=cfg).run()
    print(f"held-out problem solved: {result.solved} in {len(result.steps)} steps, "
          f"{result.divergences} divergences, {result.replans} replans, "
          f"{model.stats.invalid} invalid answers rejected")


if __name__ == "__main__":
    main()
