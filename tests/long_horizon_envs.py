"""Plain-Python environments with long plans and no domain heuristic, for search tests.

Each one implements the :class:`~planner.protocols.Environment` protocol and ``simulate``, so
``OracleWorldModel(env)`` is exact. None has ``distance_heuristic``: the value policy
``"auto"`` falls back to the goal fraction, which stays flat over long stretches of their plans.
Facts are PDDL-style strings (``"(at p1 s2)"``); goals are :class:`~planner.types.FactGoal`.

- :class:`AssemblyLine`: parts go through stations in order, carried one at a time by a robot
  that walks a line of locations (plans of 11–50 steps).
- :class:`Hanoi`: the Tower of Hanoi from a random legal configuration (an n-disk tower from
  one peg to another takes ``2**n - 1`` moves).

:func:`shortest_plan_length` finds the optimal plan length by breadth-first search (the state
spaces are small), so tests and the benchmark compare plans against the optimum.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from planner.env.base import StepResult
from planner.types import Action, FactGoal, Prediction, State


class _Simulated:
    """Shared plumbing: ``reset``, ``step`` and ``candidate_actions`` around ``simulate``."""

    goal: FactGoal
    _start: State
    _actions: tuple[Action, ...]

    def __init__(self) -> None:
        self.state = self._start

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        """Back to this instance's start state (``seed`` is ignored: the constructor's seed
        chose the instance)."""
        self.state = self._start
        return self.state, {}

    def candidate_actions(self, state: State) -> Sequence[Action]:
        return self._actions

    def step(self, action: Action) -> StepResult:
        pred = self.simulate(self.state, action)
        if pred.applicable:
            self.state = pred.next_state
        info = {} if pred.applicable else {"reason": f"{action} does not apply"}
        return StepResult(self.state, pred.reward, pred.done, False, info=info, applicable=pred.applicable)

    def simulate(self, state: State, action: Action) -> Prediction:
        nxt = self._apply(state.facts, action)
        if nxt is None:
            return Prediction(applicable=False, next_state=state)
        after = State(nxt)
        done = self.goal.satisfied(after)
        return Prediction(applicable=True, next_state=after, reward=1.0 if done else 0.0, done=done)

    def _apply(self, facts: frozenset[str], action: Action) -> frozenset[str] | None:
        raise NotImplementedError


class AssemblyLine(_Simulated):
    """A line of locations ``in, s1, ..., sK, out``; a robot walks between neighbours and
    carries one part at a time. Every part must be processed at ``s1``, then ``s2``, ...,
    then ``sK`` (a station holds one part), then be put down at ``out``. Goal: every part at
    ``out``.

    Actions: ``(go r A B)`` to a neighbouring location, ``(pick P L)``, ``(drop P L)``,
    ``(process P S)``. Facts: ``(robot-at L)``, ``(holding P)``, ``(hand-empty)``,
    ``(at P L)``, ``(free S)``, ``(stage P I)`` (stations done so far, ``I`` in ``0..K``).

    Args:
        parts: how many parts (each starts at ``in`` with no station done).
        stations: how many stations ``K``.
        seed: shuffles part names, so seeds with equal sizes differ in their facts and order
            of candidate actions; ``None`` keeps ``p1..pN``.
        head_start: for each part, stations already done (the part then waits at the station
            it was last processed at, or at ``in`` when 0); default all 0.
    """

    def __init__(self, parts: int = 2, stations: int = 3, *, seed: int | None = None,
                 head_start: Sequence[int] | None = None) -> None:
        names = [f"p{i + 1}" for i in range(parts)]
        if seed is not None:
            random.Random(seed).shuffle(names)
        self.parts = tuple(names)
        self.k = stations
        self.locations = ("in", *(f"s{i + 1}" for i in range(stations)), "out")
        self.goal = FactGoal(frozenset(f"(at {p} out)" for p in self.parts))
        done = list(head_start) if head_start is not None else [0] * parts
        facts = {"(robot-at in)", "(hand-empty)"}
        busy: set[str] = set()
        for p, d in zip(self.parts, done):
            where = "in" if d == 0 else f"s{d}"
            if where != "in":
                busy.add(where)
            facts |= {f"(at {p} {where})", f"(stage {p} {d})"}
        facts |= {f"(free {s})" for s in self.locations[1:-1] if s not in busy}
        self._start = State(frozenset(facts))
        neighbours = list(zip(self.locations, self.locations[1:]))
        self._actions = tuple(
            [Action(f"(go r {a} {b})") for a, b in neighbours]
            + [Action(f"(go r {b} {a})") for a, b in neighbours]
            + [Action(f"({op} {p} {loc})") for p in self.parts for loc in self.locations for op in ("pick", "drop")]
            + [Action(f"(process {p} {s})") for p in self.parts for s in self.locations[1:-1]]
        )
        super().__init__()

    def _stage(self, facts: frozenset[str], part: str) -> int:
        return next(i for i in range(self.k + 1) if f"(stage {part} {i})" in facts)

    def _apply(self, facts: frozenset[str], action: Action) -> frozenset[str] | None:
        op, args = action.operator, action.args
        if op == "go":
            _, a, b = args
            if f"(robot-at {a})" not in facts:
                return None
            return (facts - {f"(robot-at {a})"}) | {f"(robot-at {b})"}
        if op == "pick":
            p, loc = args
            if not {f"(robot-at {loc})", f"(at {p} {loc})", "(hand-empty)"} <= facts:
                return None
            freed = {f"(free {loc})"} if loc.startswith("s") else set()
            return (facts - {f"(at {p} {loc})", "(hand-empty)"}) | {f"(holding {p})"} | freed
        if op == "drop":
            p, loc = args
            if not {f"(robot-at {loc})", f"(holding {p})"} <= facts:
                return None
            if loc.startswith("s") and f"(free {loc})" not in facts:
                return None
            if loc == "out" and self._stage(facts, p) != self.k:
                return None
            taken = {f"(free {loc})"} if loc.startswith("s") else set()
            return (facts - {f"(holding {p})"} - taken) | {f"(at {p} {loc})", "(hand-empty)"}
        if op == "process":
            p, s = args
            stage = self._stage(facts, p)
            if f"(at {p} {s})" not in facts or s != f"s{stage + 1}":
                return None
            return (facts - {f"(stage {p} {stage})"}) | {f"(stage {p} {stage + 1})"}
        return None


class Hanoi(_Simulated):
    """The Tower of Hanoi: disks ``d1`` (smallest) to ``dN`` on pegs ``pa, pb, pc``.

    Facts: ``(on D X)`` (disk ``D`` directly on disk or peg ``X``), ``(clear X)``. Action
    ``(move D FROM TO)``: a clear disk onto a clear peg or a clear larger disk. Goal: the whole
    tower on the target peg. From one peg's full tower the optimal plan is ``2**N - 1`` moves.

    Args:
        disks: how many disks ``N``.
        seed: ``None``: the tower starts on ``pa`` and goes to ``pc``. Otherwise each disk
            starts on a peg drawn at random (a legal configuration: larger disks lower) and the
            target peg is drawn too.
    """

    PEGS = ("pa", "pb", "pc")

    def __init__(self, disks: int = 5, *, seed: int | None = None) -> None:
        self.disks = tuple(f"d{i + 1}" for i in range(disks))
        if seed is None:
            where = ["pa"] * disks
            target = "pc"
        else:
            rng = random.Random(seed)
            where = [rng.choice(self.PEGS) for _ in self.disks]
            target = rng.choice(self.PEGS)
        self.target = target
        self.goal = FactGoal(frozenset(
            [f"(on {self.disks[-1]} {target})"]
            + [f"(on {self.disks[i]} {self.disks[i + 1]})" for i in range(disks - 1)]))
        facts: set[str] = set()
        for peg in self.PEGS:
            tower = [d for d, w in zip(self.disks, where) if w == peg][::-1]  # largest first
            below = peg
            for d in tower:
                facts.add(f"(on {d} {below})")
                below = d
            facts.add(f"(clear {below})")
        self._start = State(frozenset(facts))
        self._actions = tuple(Action(f"(move {d} {a} {b})") for d in self.disks
                              for a in (*self.PEGS, *self.disks) for b in (*self.PEGS, *self.disks)
                              if a != b and d not in (a, b) and self._smaller(d, a) and self._smaller(d, b))
        super().__init__()

    def _smaller(self, disk: str, other: str) -> bool:
        return other in self.PEGS or int(disk[1:]) < int(other[1:])

    def _apply(self, facts: frozenset[str], action: Action) -> frozenset[str] | None:
        d, a, b = action.args
        if not {f"(on {d} {a})", f"(clear {d})", f"(clear {b})"} <= facts:
            return None
        return (facts - {f"(on {d} {a})", f"(clear {b})"}) | {f"(on {d} {b})", f"(clear {a})"}


def shortest_plan_length(env: Any, *, limit: int = 200_000) -> int | None:
    """The fewest actions from ``env``'s start state to its goal (breadth-first search through
    ``env.simulate``), or ``None`` when the goal is unreachable within ``limit`` states."""
    start, _ = env.reset()
    if env.goal.satisfied(start):
        return 0
    depth = {start: 0}
    queue = deque([start])
    while queue and len(depth) < limit:
        state = queue.popleft()
        for action in env.candidate_actions(state):
            pred = env.simulate(state, action)
            if not pred.applicable or pred.next_state in depth:
                continue
            if env.goal.satisfied(pred.next_state):
                return depth[state] + 1
            depth[pred.next_state] = depth[state] + 1
            queue.append(pred.next_state)
    return None


# The instances the benchmark and the slow tests use: (name, factory), 20–50-step optimal plans.
def long_instances() -> list[tuple[str, Any]]:
    """Named factories of long-horizon instances (optimal plans of 20–50 steps)."""
    out: list[tuple[str, Any]] = []
    for seed, (parts, stations) in enumerate([(2, 3), (3, 2), (2, 4), (2, 2), (4, 1)]):
        out.append((f"assembly-{parts}x{stations}-s{seed}",
                    lambda p=parts, k=stations, s=seed: AssemblyLine(p, k, seed=s)))
    out.append(("hanoi-5", lambda: Hanoi(5)))
    for seed in (0, 1, 2, 3, 8):
        out.append((f"hanoi-5-s{seed}", lambda s=seed: Hanoi(5, seed=s)))
    return out


def short_instances() -> list[tuple[str, Any]]:
    """Named factories of small instances (plans of 7–15 steps) for the fast tests."""
    return [
        ("assembly-1x2", lambda: AssemblyLine(1, 2, seed=0)),
        ("assembly-2x1", lambda: AssemblyLine(2, 1, seed=1)),
        ("hanoi-3", lambda: Hanoi(3)),
    ]
