"""Fidelity of a world model against recorded real transitions.

One-step metrics, per number of objects and overall:

- **precondition accuracy** — the applicability verdict matches reality;
- **effect exact match** — among really applicable transitions, the predicted next state is
  exactly the real one;
- **next-state exact match** — over all transitions (an inapplicable action must leave the
  state unchanged);
- **done accuracy** — the predicted ``done`` matches reality.

Multi-step consistency: each recorded episode's action sequence is rolled out inside the
model alone from the episode's first state; the imagined success (goal reached at the end)
is compared with the real one. Also reported: the fraction of episodes whose whole imagined
trajectory equals the real one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from planner.data.collect import TransitionRecord, read_records
from planner.types import Action, FactGoal
from planner.world.base import WorldModel

__all__ = ["Binder", "FidelityReport", "evaluate", "read_records"]

Binder = Callable[[list[str], FactGoal], WorldModel]


@dataclass
class _Counts:
    n: int = 0
    pre: int = 0
    applicable: int = 0
    effect: int = 0
    next_state: int = 0
    done: int = 0

    def add(self, other: _Counts) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def row(self) -> dict[str, float]:
        def frac(a: int, b: int) -> float:
            return a / b if b else float("nan")

        return {"transitions": self.n, "precondition_accuracy": frac(self.pre, self.n),
                "effect_exact_match": frac(self.effect, self.applicable),
                "next_state_exact_match": frac(self.next_state, self.n),
                "done_accuracy": frac(self.done, self.n)}


@dataclass
class FidelityReport:
    by_objects: dict[int, dict[str, float]] = field(default_factory=dict)
    overall: dict[str, float] = field(default_factory=dict)
    episodes: int = 0
    multistep_consistency: float = float("nan")
    trajectory_exact_match: float = float("nan")
    errors: int = 0
    invalid_rejected: int = 0
    seconds: float = 0.0
    votes: int = 1
    vote_below: float | None = None
    split_votes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"by_objects": {str(k): v for k, v in sorted(self.by_objects.items())},
                "overall": self.overall, "episodes": self.episodes,
                "multistep_consistency": self.multistep_consistency,
                "trajectory_exact_match": self.trajectory_exact_match,
                "model_errors": self.errors, "invalid_rejected": self.invalid_rejected,
                "seconds": self.seconds, "votes": self.votes,
                **({"vote_below": self.vote_below} if self.votes > 1 else {}), "split_votes": self.split_votes}

    def table(self) -> str:
        head = f"{'objects':>7} {'transitions':>11} {'precond':>9} {'effect EM':>9} {'next EM':>9} {'done':>9}"
        lines = [head]
        rows = [(str(k), v) for k, v in sorted(self.by_objects.items())] + [("all", self.overall)]
        for key, r in rows:
            lines.append(f"{key:>7} {r['transitions']:>11} {r['precondition_accuracy']:>9.4%} "
                         f"{r['effect_exact_match']:>9.4%} {r['next_state_exact_match']:>9.4%} "
                         f"{r['done_accuracy']:>9.4%}")
        lines.append(f"multi-step consistency {self.multistep_consistency:.4f} over {self.episodes} episodes "
                     f"(whole trajectory exact: {self.trajectory_exact_match:.4f})")
        lines.append(f"answers invalid after retries: {self.invalid_rejected} read as 'not applicable', "
                     f"{self.errors} raised (counted wrong)")
        if self.votes > 1:
            lines.append(f"asked under {self.votes} numberings of the objects (again below confidence "
                         f"{self.vote_below}): they disagreed on {self.split_votes} predictions (the majority "
                         f"answered)")
        return "\n".join(lines)


def evaluate(
    records: Iterable[TransitionRecord],
    bind: Binder,
    *,
    max_episodes: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> FidelityReport:
    """Score a world model on ``records``. ``bind(objects, goal)`` returns the model for a
    problem (a model may be re-bound rather than reloaded)."""
    import time

    from planner.errors import UnknownActionError, VocabularyError, WorldModelError

    # an answer that cannot be read, or a problem or action the model cannot write: scored wrong
    unanswerable = (WorldModelError, VocabularyError, UnknownActionError)

    start = time.perf_counter()
    recs = list(records)
    by_problem: dict[str, list[TransitionRecord]] = defaultdict(list)
    for r in recs:
        by_problem[r.problem].append(r)
    counts: dict[int, _Counts] = defaultdict(_Counts)
    report = FidelityReport()
    consistent = exact = episodes = 0
    for problem_records in by_problem.values():
        first = problem_records[0]
        goal = FactGoal(frozenset(first.goal))
        model = bind(first.objects, goal)
        for r in problem_records:
            c = counts[len(r.objects)]
            c.n += 1
            c.applicable += r.applicable
            state, real_next = r.state_obj(), r.next_state_obj()
            try:
                pred = model.predict(state, Action(r.action))
            except unanswerable:
                report.errors += 1
                continue
            c.pre += pred.applicable == r.applicable
            c.done += pred.done == r.done
            c.next_state += pred.next_state == real_next
            c.effect += r.applicable and pred.applicable and pred.next_state == real_next
            if progress is not None:
                progress(1)
        by_episode: dict[str, list[TransitionRecord]] = defaultdict(list)
        for r in problem_records:
            by_episode[r.episode].append(r)
        for ep in by_episode.values():
            if max_episodes is not None and episodes >= max_episodes:
                break
            ep.sort(key=lambda r: r.step)
            episodes += 1
            imagined = ep[0].state_obj()
            same = True
            try:
                for r in ep:
                    imagined = model.predict(imagined, Action(r.action)).next_state
                    same = same and imagined == r.next_state_obj()
            except unanswerable:
                report.errors += 1
                same = False
            real_success = goal.satisfied(ep[-1].next_state_obj())
            consistent += goal.satisfied(imagined) == real_success
            exact += same
    total = _Counts()
    for key, c in counts.items():
        report.by_objects[key] = c.row()
        total.add(c)
    report.overall = total.row()
    report.episodes = episodes
    report.multistep_consistency = consistent / episodes if episodes else float("nan")
    report.trajectory_exact_match = exact / episodes if episodes else float("nan")
    report.seconds = time.perf_counter() - start
    return report
