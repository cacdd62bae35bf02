"""Real transitions out of the agent's episode logs, ready to train a world model on.

An episode log (``planner solve --log``, :class:`~planner.agent.Agent`'s ``log_path``) holds
one ``step`` record per real step: the real state before it, the action, whether the
environment applied it, the real state after it, the state the model had imagined, and
whether the two differed (``diverged``). :func:`fold_logs` turns those steps into
:class:`~planner.data.collect.TransitionRecord` s:

- every step of every episode, once, except steps already folded in earlier (``known``);
- a diverged step — the real outcome differed from the model's prediction, exactly what the
  model got wrong — :data:`DIVERGENCE_WEIGHT` times, so training sees it that much more often;
- in the model's own vocabulary only: a log whose facts, actions or object counts the model
  cannot write is refused with :class:`ExperienceError` naming every unknown word (nothing
  is skipped silently, nothing is written).

Records get ``split="train"``, ``source="plan"`` (``"probe"`` for the agent's probe steps),
``episode="log:<episode id>"``, ``step`` the step's index and ``problem`` ``<domain>-<seed>``.
Their objects are the environment's, as the planner bound the model to it (``objects_for``),
else the objects the episode names.

Logs are read as every log is (:func:`planner.io.iter_jsonl_numbered`): a torn last line is
skipped; a line that is not JSON, not an episode event, or a ``step`` record without its
fields raises :class:`~planner.io.CorruptLogError` naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from planner.agent import EpisodeEvent, _state_from_canonical
from planner.data.collect import TransitionRecord
from planner.errors import ConfigError, PlannerError
from planner.io import CorruptLogError, iter_jsonl_numbered
from planner.protocols import Environment
from planner.types import FactGoal, State, objects_of, parse_atom

__all__ = [
    "DIVERGENCE_WEIGHT", "ExperienceError", "FoldedExperience", "LoggedEpisode", "LoggedStep", "ObjectsFor",
    "environment_objects", "fold_logs", "read_episode_log",
]

DIVERGENCE_WEIGHT = 4
"""Times a diverged step is written into the training data (an agreeing step: once)."""

MAX_LISTED = 8
"""Vocabulary findings quoted per episode in an :class:`ExperienceError` before the rest are counted."""
MAX_EPISODES = 4
"""Episodes quoted in an :class:`ExperienceError` before the rest are counted."""


class ExperienceError(ConfigError):
    """Episode logs that cannot be folded into a model's training data: no real steps, or words
    outside the model's vocabulary (named, with the log and episode)."""


class LoggedStep(BaseModel):
    """The fields of a ``step`` record that training reads (canonical state texts)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    index: StrictInt
    action: StrictStr
    state: StrictStr
    real: StrictStr
    imagined: StrictStr = ""
    applicable: StrictBool
    reward: StrictFloat | StrictInt = 0.0
    terminated: StrictBool = False
    truncated: StrictBool = False
    diverged: StrictBool = False
    probe: StrictBool = False


class _LoggedStart(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    state: StrictStr
    goal: StrictStr = ""
    seed: StrictInt | None = None


@dataclass(frozen=True)
class LoggedEpisode:
    """One episode of a log: where it started and its real steps (in index order).

    Attributes:
        log: the log file.
        episode: the episode id.
        seed: the seed the episode was reset with (``None``: not recorded).
        start: the real start state.
        goal: the goal's facts (empty when the goal was not a conjunction of facts).
        steps: the real steps, one per index.
    """

    log: Path
    episode: str
    seed: int | None
    start: State
    goal: tuple[str, ...]
    steps: tuple[LoggedStep, ...]


def _facts(text: str) -> State:
    """The symbolic state whose canonical text is ``text``."""
    return _state_from_canonical(text, like=State())


def _goal_facts(text: str) -> frozenset[str]:
    """The facts of a logged goal that is a conjunction of facts; empty for any other goal (a
    disjunction such as ``(or (and …) …)``, or a goal object's own text), as collection records
    a goal that is no :class:`~planner.types.FactGoal`."""
    if "(" not in text:
        return frozenset()
    facts = _facts(text).facts
    try:
        for fact in facts:
            parse_atom(fact)
    except (ConfigError, ValueError):
        return frozenset()
    return facts


def read_episode_log(path: str | Path) -> list[LoggedEpisode]:
    """The episodes of the episode log ``path`` that have a ``start`` record and real steps.

    Raises :class:`ExperienceError` for a missing file and :class:`CorruptLogError` naming
    the file and line of a record that is not an episode event or a malformed ``start`` or
    ``step`` record.
    """
    p = Path(path)
    if not p.is_file():
        raise ExperienceError(f"episode log {p} " + ("is not a file" if p.exists() else "not found"))
    starts: dict[str, _LoggedStart] = {}
    steps: dict[str, dict[int, LoggedStep]] = {}
    for number, data in iter_jsonl_numbered(p):
        try:
            event = EpisodeEvent.model_validate(data)
            if event.event == "start":
                starts.setdefault(event.episode, _LoggedStart.model_validate(event.data))
            elif event.event == "step":
                step = LoggedStep.model_validate(event.data)
                steps.setdefault(event.episode, {}).setdefault(step.index, step)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            raise CorruptLogError(f"{p}:{number}: not an episode event: {where}: {first['msg']}") from None
    episodes = []
    for episode, start in starts.items():
        mine = steps.get(episode)
        if not mine:
            continue
        goal = _goal_facts(start.goal)
        episodes.append(LoggedEpisode(log=p, episode=episode, seed=start.seed, start=_facts(start.state),
                                      goal=tuple(sorted(goal)), steps=tuple(mine[i] for i in sorted(mine))))
    return episodes


ObjectsFor = Callable[[LoggedEpisode], Sequence[str] | None]
"""The objects the model was bound to for an episode (``None``: unknown, take the episode's)."""


def environment_objects(make_env: Callable[[int], Environment]) -> ObjectsFor:
    """Objects as the planner bound a learned model (:func:`~planner.world.factory.bind_environment_model`):
    those named by the start state, the goal and the candidate actions of ``make_env(seed)``
    reset with the episode's seed; ``None`` when the seed is unknown or the environment starts
    elsewhere than the episode did (a log of another environment)."""

    def objects(ep: LoggedEpisode) -> Sequence[str] | None:
        if ep.seed is None:
            return None
        try:
            env = make_env(ep.seed)
            state, _ = env.reset(seed=ep.seed)
            if state != ep.start:
                return None
            goal = env.goal.facts if isinstance(env.goal, FactGoal) else frozenset()
            return objects_of([*state.facts, *goal], env.candidate_actions(state))
        except PlannerError:
            raise
        except Exception:
            return None

    return objects


def _records(ep: LoggedEpisode, *, domain: str, objects: Sequence[str]) -> list[tuple[TransitionRecord, bool]]:
    """(record, diverged) for each real step of ``ep``."""
    problem = f"{domain}-{ep.seed}" if ep.seed is not None else f"{domain}-{ep.episode}"
    out = []
    for s in ep.steps:
        rec = TransitionRecord(
            problem=problem, domain=domain, objects=list(objects), goal=list(ep.goal),
            state=sorted(_facts(s.state).facts), action=s.action, applicable=s.applicable,
            next_state=sorted(_facts(s.real).facts), reward=float(s.reward), done=s.terminated,
            episode=f"log:{ep.episode}", step=s.index, source="probe" if s.probe else "plan", split="train")
        out.append((rec, s.diverged))
    return out


@dataclass(frozen=True)
class FoldedExperience:
    """What :func:`fold_logs` made of episode logs.

    Attributes:
        records: the training records, a diverged step repeated ``weight`` times.
        episodes: episodes with new steps.
        steps: new real steps (each counted once).
        divergences: new diverged steps.
        known: steps skipped because they were folded in before.
        weight: times each diverged step is repeated in ``records``.
    """

    records: tuple[TransitionRecord, ...]
    episodes: int
    steps: int
    divergences: int
    known: int
    weight: int


def _vocabulary_problems(records: Iterable[TransitionRecord], *, predicates: dict[str, int],
                         actions: dict[str, int], max_objects: int) -> list[str]:
    """What the model cannot write of ``records``: unknown predicates and actions (name/arity),
    arities that differ, more objects than its placeholders; each finding once."""
    found: dict[str, None] = {}
    for r in records:
        try:
            for what, have, texts in (("predicate", predicates, [*r.state, *r.next_state, *r.goal]),
                                      ("action", actions, [r.action])):
                for text in texts:
                    name, args = parse_atom(text)
                    if name not in have:
                        found[f"unknown {what} {name}/{len(args)}"] = None
                    elif have[name] != len(args):
                        found[f"{what} {name} has {len(args)} arguments here but {have[name]} in the model"] = None
        except ConfigError as exc:
            found[str(exc)] = None
        if len(r.objects) > max_objects:
            found[f"{len(r.objects)} objects ({', '.join(r.objects)}), more than the model's {max_objects}"] = None
    return list(found)


def fold_logs(
    logs: Sequence[str | Path],
    *,
    domain: str,
    predicates: dict[str, int],
    actions: dict[str, int],
    max_objects: int,
    known: Collection[tuple[str, int]] = frozenset(),
    objects_for: ObjectsFor | None = None,
    weight: int = DIVERGENCE_WEIGHT,
) -> FoldedExperience:
    """The training records of the real steps in the episode logs ``logs``; see the module's
    description.

    Args:
        logs: episode logs (JSONL, :class:`~planner.agent.Agent`'s format).
        domain: the domain name written in the records (the model's).
        predicates, actions: the model's schemas (name → arity).
        max_objects: the model's placeholder objects.
        known: ``(record episode, step)`` pairs already in the training data (skipped, as is a
            step met twice in ``logs``).
        objects_for: the objects of an episode's problem (default: those the episode names).
        weight: times a diverged step is repeated (at least 1).

    Raises :class:`ExperienceError` when the logs hold no real step or use words the model
    does not know (every finding named with its log and episode), and
    :class:`~planner.io.CorruptLogError` for a malformed log.
    """
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise ConfigError(f"weight must be a whole number >= 1, got {weight!r}")
    episodes = [ep for log in logs for ep in read_episode_log(log)]
    if not episodes:
        raise ExperienceError(f"no real steps in {', '.join(map(str, logs))}: an episode log of planner solve "
                              "--log holds 'start' and 'step' records")
    pairs: list[tuple[TransitionRecord, bool]] = []
    problems: list[str] = []
    new_episodes = skipped = 0
    seen: set[tuple[str, int]] = set()  # a step given twice (the same log twice) counts once
    for ep in episodes:
        texts = [*ep.start.facts, *ep.goal, *(f for s in ep.steps for f in _facts(s.real).facts),
                 *(s.action for s in ep.steps)]
        named = {a for text in texts for a in _args(text)}
        bound = objects_for(ep) if objects_for is not None else None
        objects = sorted(set(bound or ()) | set(named))
        mine = _records(ep, domain=domain, objects=objects)
        fresh = [(r, d) for r, d in mine if (r.episode, r.step) not in known and (r.episode, r.step) not in seen]
        seen.update((r.episode, r.step) for r, _ in fresh)
        skipped += len(mine) - len(fresh)
        findings = _vocabulary_problems((r for r, _ in fresh), predicates=predicates, actions=actions,
                                        max_objects=max_objects)
        if findings:
            shown = ", ".join(findings[:MAX_LISTED]) + (f" and {len(findings) - MAX_LISTED} more"
                                                        if len(findings) > MAX_LISTED else "")
            problems.append(f"{ep.log} episode {ep.episode}: {shown}")
        new_episodes += bool(fresh)
        pairs.extend(fresh)
    if problems:
        more = len(problems) - MAX_EPISODES
        tail = f"; and {more} more episodes" if more > 0 else ""
        raise ExperienceError("the logs use words outside the model's vocabulary (it cannot learn new ones): "
                              + "; ".join(problems[:MAX_EPISODES]) + tail)
    records = [r for r, diverged in pairs for _ in range(weight if diverged else 1)]
    return FoldedExperience(records=tuple(records), episodes=new_episodes, steps=len(pairs),
                            divergences=sum(d for _, d in pairs), known=skipped, weight=weight)


def _args(text: str) -> tuple[str, ...]:
    """The arguments of a Lisp-form fact or action (none for text that is not one: the
    vocabulary check names it)."""
    try:
        return parse_atom(text)[1]
    except ConfigError:
        return ()
