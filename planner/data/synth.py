"""Synthetic experience: trajectories imagined inside a world model, checked against reality.

For each environment seed, :func:`synthesize` resets the real environment once to get the
start state — the only real observation, unless anchoring is asked for — and rolls a policy
out inside the world model: at each imagined state it asks the model about every candidate
action (``model.predict_many(state, env.candidate_actions(state))``) and picks one the model
predicts to apply:

- ``"random"``: uniformly among them;
- ``"greedy"``: the one whose predicted next state has the highest ``env.goal.progress``,
  ties broken by a seeded random choice.

An imagined episode ends after ``max_steps`` steps, when the model predicts ``done``, when the
goal holds in the imagined state, or when the model predicts that no candidate applies. Each
imagined step is appended to the output log as a :class:`~planner.data.collect.TransitionRecord`
with ``source="synthetic"`` and an episode id ``<problem>/synthetic-<k>``, distinct from the
ids of real episodes (``…/random-0``, ``…/plan-0``, ``…/novelty-0``, …).

Anchoring (``anchor_every=k``): after every ``k`` imagined steps, the same actions are played
in the real environment and the imagined state is replaced by the real one; the report counts
the anchors and those that corrected the model (the imagined state differed from the real).
Records keep what the model predicted; the next record starts from the real state.

Finally every synthetic trajectory is replayed in the real environment from the same reset.
A step *agrees* when the real outcome (applicable, next state, done) equals the imagined one;
a trajectory is *confirmed* when all its steps agree. The consistency ratio is confirmed
trajectories over trajectories. The environment's ``reset(seed=…)`` must be deterministic.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict

from planner.data.collect import Split, TransitionRecord
from planner.data.explore import build_environment
from planner.env.base import StepResult
from planner.errors import ConfigError, EnvironmentStepError
from planner.io import JsonlLog
from planner.logs import get_logger
from planner.protocols import Environment, WorldModel
from planner.types import Action, FactGoal, Prediction, State, objects_of

log = get_logger(__name__)

Policy = Literal["random", "greedy"]
"""How an imagined step picks its action (see the module's description)."""

POLICIES: tuple[Policy, ...] = get_args(Policy)
SPLITS: tuple[Split, ...] = get_args(Split)

_T = TypeVar("_T")


class SynthReport(BaseModel):
    """What :func:`synthesize` wrote and how much of it the real environment confirmed.

    Attributes:
        episodes: synthetic trajectories written.
        steps: imagined steps written (records).
        confirmed: trajectories whose every step the real replay reproduced.
        consistency: ``confirmed / episodes`` (ratio in [0, 1]).
        agreeing_steps: steps whose real outcome equals the imagined one.
        step_agreement: ``agreeing_steps / steps`` (ratio in [0, 1]; 1.0 when no step was written).
        anchors: times the imagined state was checked against the real one (0 without anchoring).
        corrections: anchors at which the imagined state differed from the real one and was
            replaced by it.
        seconds: wall-clock seconds of the whole run (rollouts, anchoring and replays).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    episodes: int
    steps: int
    confirmed: int
    consistency: float
    agreeing_steps: int
    step_agreement: float
    anchors: int = 0
    corrections: int = 0
    seconds: float

    def line(self) -> str:
        """The report in one line, for a terminal."""
        anchored = f", {self.anchors} anchors ({self.corrections} corrected)" if self.anchors else ""
        return (f"{self.episodes} synthetic episodes, {self.steps} steps: {self.confirmed} confirmed "
                f"(consistency {self.consistency:.3f}), step agreement {self.step_agreement:.3f} "
                f"({self.agreeing_steps}/{self.steps}){anchored}, {self.seconds:.2f} s")


def _check_request(seeds: Sequence[int], episodes_per_seed: int, max_steps: int, policy: str,
                   anchor_every: int | None, split: str) -> None:
    """:class:`ConfigError` naming the first bad argument."""
    def whole(name: str, value: object, low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")

    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ConfigError(f"seeds must be a non-empty sequence of integers, got {seeds!r}")
    for s in seeds:
        whole("every seed", s, 0)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct, got {list(seeds)!r}")
    whole("episodes_per_seed", episodes_per_seed, 1)
    whole("max_steps", max_steps, 1)
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}; choose among {list(POLICIES)}")
    if anchor_every is not None:
        whole("anchor_every", anchor_every, 1)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose among {list(SPLITS)}")


class _Real:
    """The real environment of one seed, every call wrapped so that an error names where."""

    def __init__(self, env: Environment, seed: int) -> None:
        self.env, self.seed = env, seed

    def call(self, what: str, where: str, fn: Callable[[], _T]) -> _T:
        """``fn()``, or :class:`EnvironmentStepError` naming the seed and ``where``."""
        try:
            return fn()
        except Exception as exc:
            raise EnvironmentStepError(f"environment {what} raised at seed {self.seed}{where}: "
                                       f"{type(exc).__name__}: {exc}") from exc

    def reset(self, where: str) -> State:
        return self.call("reset", where, lambda: self.env.reset(seed=self.seed)[0])

    def candidates(self, state: State, where: str) -> list[Action]:
        return self.call("candidate_actions", where, lambda: list(self.env.candidate_actions(state)))

    def step(self, action: Action, where: str) -> StepResult:
        """The real outcome of ``action``."""
        return self.call("step", where, lambda: self.env.step(action))


def _choose(policy: str, options: Sequence[tuple[Action, Prediction]], env: Environment,
            rng: random.Random) -> tuple[Action, Prediction]:
    """The step ``policy`` takes among predicted-applicable ``options`` (never empty)."""
    if policy == "random":
        return rng.choice(list(options))
    scores = [env.goal.progress(pred.next_state) for _, pred in options]
    best = max(scores)
    return rng.choice([opt for opt, score in zip(options, scores) if score == best])


def synthesize(
    make_env: Callable[[int], Environment],
    model_for: Callable[[Environment], WorldModel],
    *,
    seeds: Sequence[int],
    episodes_per_seed: int = 1,
    max_steps: int = 20,
    policy: Policy = "random",
    anchor_every: int | None = None,
    out_path: str | Path,
    seed: int = 0,
    split: Split = "train",
    domain: str | None = None,
) -> SynthReport:
    """Imagine trajectories inside a world model, write them, and check them in reality.

    Args:
        make_env: builds the real environment of seed ``s`` (called once per seed; every
            rollout and replay starts from ``reset(seed=s)``, which must be deterministic).
        model_for: the world model to imagine with, for an environment built by ``make_env``.
        seeds: environment seeds (distinct integers >= 0).
        episodes_per_seed: synthetic trajectories per seed (>= 1).
        max_steps: most imagined steps per trajectory (>= 1).
        policy: ``"random"`` or ``"greedy"`` (see the module's description).
        anchor_every: replace the imagined state by the real one after every this many steps
            (``None``: never; the start state is then the only real observation).
        out_path: transition log (JSONL) the records are appended to, through
            :class:`~planner.io.JsonlLog`.
        seed: seeds the policy's random choices (same arguments, same log).
        split: the split written in every record.
        domain: the domain name written in every record (default: the PDDL domain's name when
            the environment has one, else ``"env"``); problems are ``<domain>-<seed>``.

    Returns a :class:`SynthReport`. Raises :class:`ConfigError` naming a bad argument (before
    anything is written) or a seed whose states are text, not facts, and
    :class:`EnvironmentStepError` naming the seed, episode and step when the real environment
    raises (building, reset, candidate actions, an anchoring or replay step); records written
    before that stay in the log. Errors of the world model propagate unchanged.
    """
    _check_request(seeds, episodes_per_seed, max_steps, policy, anchor_every, split)
    started = time.perf_counter()
    counts = {"episodes": 0, "steps": 0, "confirmed": 0, "agreeing": 0, "anchors": 0, "corrections": 0}
    with JsonlLog(out_path, fsync=False) as sink:
        for env_seed in seeds:
            env = build_environment(make_env, env_seed)
            model = model_for(env)
            real = _Real(env, env_seed)
            start = real.reset(" (start state)")
            if not start.is_symbolic:
                raise ConfigError(f"seed {env_seed}: reset() gave a text state ({start.text!r:.60}); "
                                  "synthesize needs symbolic states (facts)")
            name = domain or _domain_name(env)
            goal = sorted(env.goal.facts) if isinstance(env.goal, FactGoal) else []
            problem = f"{name}-{env_seed}"
            objects = objects_of([*start.facts, *goal], real.candidates(start, " (start state)"))
            fields = _Fields(problem=problem, domain=name, objects=tuple(objects), goal=tuple(goal), split=split)
            for k in range(episodes_per_seed):
                episode = f"{problem}/synthetic-{k}"
                records = _rollout(real, model, start, fields=fields, sink=sink.write, policy=policy,
                                   max_steps=max_steps, anchor_every=anchor_every, episode=episode,
                                   rng=random.Random(f"{seed}:{env_seed}:{k}"), counts=counts)
                agreeing = _replay(real, records, episode=episode)
                counts["episodes"] += 1
                counts["steps"] += len(records)
                counts["agreeing"] += agreeing
                counts["confirmed"] += agreeing == len(records)
    episodes, steps = counts["episodes"], counts["steps"]
    report = SynthReport(
        episodes=episodes, steps=steps, confirmed=counts["confirmed"],
        consistency=counts["confirmed"] / episodes, agreeing_steps=counts["agreeing"],
        step_agreement=counts["agreeing"] / steps if steps else 1.0, anchors=counts["anchors"],
        corrections=counts["corrections"], seconds=time.perf_counter() - started)
    log.info("synthesized", out=str(out_path), **report.model_dump())
    return report


@dataclass(frozen=True, slots=True)
class _Fields:
    """The record fields shared by every synthetic step of one seed."""

    problem: str
    domain: str
    objects: tuple[str, ...]
    goal: tuple[str, ...]
    split: Split

    def record(self, episode: str, step: int, state: State, action: Action, pred: Prediction) -> TransitionRecord:
        """The record of the imagined step ``step`` of ``episode``: ``action`` at ``state`` and
        what the model predicted for it."""
        return TransitionRecord(
            problem=self.problem, domain=self.domain, objects=list(self.objects), goal=list(self.goal),
            state=sorted(state.facts), action=action.name, applicable=pred.applicable,
            next_state=sorted(pred.next_state.facts), reward=pred.reward, done=pred.done, episode=episode,
            step=step, source="synthetic", split=self.split)


def _domain_name(env: Environment) -> str:
    """The PDDL domain's name of ``env`` when it has one, else ``"env"``."""
    name = getattr(getattr(env, "task", None), "domain_name", None)
    return name if isinstance(name, str) and name else "env"


def _rollout(real: _Real, model: WorldModel, start: State, *,
             fields: _Fields,
             sink: Callable[[TransitionRecord], None], policy: str, max_steps: int, anchor_every: int | None,
             episode: str, rng: random.Random, counts: dict[str, int]) -> list[TransitionRecord]:
    """One imagined trajectory, each step written to ``sink`` as it is taken."""
    env = real.env
    records: list[TransitionRecord] = []
    state = start
    pending: list[Action] = []  # actions imagined since the real environment was last brought along
    if anchor_every is not None:
        real.reset(f", {episode} (anchoring)")
    for step in range(max_steps):
        if env.goal.satisfied(state):
            break
        where = f", {episode}, step {step}"
        actions = real.candidates(state, where)
        preds = model.predict_many(state, actions)
        options = [(a, p) for a, p in zip(actions, preds) if p.applicable]
        if not options:
            log.debug("model predicts no applicable action", episode=episode, step=step)
            break
        action, pred = _choose(policy, options, env, rng)
        rec = fields.record(episode, step, state, action, pred)
        sink(rec)
        records.append(rec)
        state = pred.next_state
        pending.append(action)
        if pred.done:
            break
        if anchor_every is not None and (step + 1) % anchor_every == 0:
            actual = state
            for i, a in enumerate(pending):
                actual = real.step(a, f", {episode} (anchoring), step {step + 1 - len(pending) + i}").state
            pending.clear()
            counts["anchors"] += 1
            if actual != state:
                counts["corrections"] += 1
                log.info("anchored to the real state", episode=episode, step=step)
                state = actual
    return records


def _replay(real: _Real, records: Sequence[TransitionRecord], *, episode: str) -> int:
    """How many steps of the imagined trajectory ``records`` the real environment reproduces.

    A step agrees when the real (applicable, next state, done) equal the record's; once the
    real episode has ended (terminated or truncated), no later step agrees.
    """
    real.reset(f", {episode} (replay)")
    agreeing = 0
    for rec in records:
        where = f", {episode} (replay), step {rec.step}"
        result = real.step(Action(rec.action), where)
        same = (result.applicable == rec.applicable and result.state == rec.next_state_obj()
                and bool(result.terminated) == rec.done)
        agreeing += same
        if result.terminated or result.truncated:
            break
    return agreeing
