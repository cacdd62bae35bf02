"""Embed the agent in your own environment, written in plain Python (no PDDL).

A small automation cell: a robot moves parts from an input conveyor to a machine, the machine
processes them, an inspection station checks them, and good parts go to the output bin. The
machine and the inspection station hold one part at a time.

The environment implements the Environment protocol (reset / step / candidate_actions / goal)
and, because it is a simulator we wrote, ``simulate`` too — so the exact model can stand in
for a learned one. Run:

    python examples/automation_cell.py
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from planner.agent import Agent
from planner.config import PlannerConfig
from planner.env.base import StepResult, check_env
from planner.errors import ConfigError
from planner.types import Action, FactGoal, Prediction, State
from planner.world.oracle import OracleWorldModel

STATIONS = ("conveyor", "machine", "inspection", "bin")


class AutomationCell:
    def __init__(self, parts: Sequence[str] = ("p1", "p2")) -> None:
        self.parts = tuple(parts)
        self.goal = FactGoal(frozenset(f"(at {p} bin)" for p in self.parts))
        self._actions = tuple(
            [Action(f"(move {p} {a} {b})") for p in self.parts for a in STATIONS for b in STATIONS
             if a != b]
            + [Action(f"(process {p})") for p in self.parts]
            + [Action(f"(inspect {p})") for p in self.parts]
        )
        self.state = self._initial()

    def _initial(self) -> State:
        return State.from_facts([f"(at {p} conveyor)" for p in self.parts]
                                + ["(free machine)", "(free inspection)"])

    # -- Environment protocol -----------------------------------------------------------
    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        self.state = self._initial()
        return self.state, {}

    def candidate_actions(self, state: State) -> Sequence[Action]:
        return self._actions

    def step(self, action: Action) -> StepResult:
        pred = self.simulate(self.state, action)
        self.state = pred.next_state
        return StepResult(pred.next_state, pred.reward, pred.done, False,
                          applicable=pred.applicable)

    # -- Simulator protocol: the rules of the cell ----------------------------------------
    def simulate(self, state: State, action: Action) -> Prediction:
        f = state.facts
        op, args = action.operator, action.args
        add: set[str] = set()
        delete: set[str] = set()
        ok = False
        if op == "move":
            part, src, dst = args
            ok = (f"(at {part} {src})" in f
                  and (dst not in ("machine", "inspection") or f"(free {dst})" in f)
                  and (dst != "inspection" or f"(processed {part})" in f)
                  and (dst != "bin" or f"(passed {part})" in f)
                  and (src != "machine" or f"(processed {part})" in f))
            delete = {f"(at {part} {src})"} | ({f"(free {dst})"} if dst in ("machine", "inspection") else set())
            add = {f"(at {part} {dst})"} | ({f"(free {src})"} if src in ("machine", "inspection") else set())
        elif op == "process":
            (part,) = args
            ok = f"(at {part} machine)" in f and f"(processed {part})" not in f
            add = {f"(processed {part})"}
        elif op == "inspect":
            (part,) = args
            ok = f"(at {part} inspection)" in f and f"(passed {part})" not in f
            add = {f"(passed {part})"}
        if not ok:
            return Prediction(applicable=False, next_state=state)
        nxt = State((f - delete) | add)
        done = self.goal.satisfied(nxt)
        return Prediction(applicable=True, next_state=nxt, reward=1.0 if done else 0.0, done=done)


def make_cell(seed: int = 0, *, parts: int = 2) -> AutomationCell:
    """A cell with ``parts`` parts named p1, p2, …; ``seed`` is accepted for ``planner.make``
    and ignored (the cell is deterministic). Use it as ``--env examples/automation_cell.py:make_cell``."""
    if isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= 9:
        raise ConfigError(f"parts must be a whole number in 1..9, got {parts!r}")
    return AutomationCell(tuple(f"p{i + 1}" for i in range(parts)))


def make_cells(seed: int = 0, *, min_parts: int = 1, max_parts: int = 4) -> AutomationCell:
    """A family of cells for learning and held-out evaluation: the seed picks how many parts
    (``min_parts``..``max_parts``) and their names (from p1..p9), so different seeds are
    different problems. Use it as ``--env examples/automation_cell.py:make_cells``."""
    import random

    if not 1 <= min_parts <= max_parts <= 9:
        raise ConfigError(f"need 1 <= min_parts <= max_parts <= 9, got {min_parts!r}..{max_parts!r}")
    rng = random.Random(seed)
    count = rng.randint(min_parts, max_parts)
    names = sorted(rng.sample([f"p{i}" for i in range(1, 10)], count))
    return AutomationCell(tuple(names))


def main() -> None:
    env = AutomationCell(("p1", "p2"))
    check_env(env)  # fails loudly if the protocol is broken
    config = PlannerConfig().updated(search={"algorithm": "beam", "heuristic": "goal"})
    result = Agent(env, OracleWorldModel(env), config=config).run()
    print(f"solved: {result.solved} in {len(result.steps)} steps")
    for step in result.steps:
        print(f"  {step.index + 1:>2}. {step.action}")


if __name__ == "__main__":
    main()
