"""The agent loop: plan → act → observe → compare → replan.

The agent plans with the world model only, executes the plan in the real environment, and
compares every real state with the state the model imagined for that step. A difference (or a
real step that did not apply) is a divergence: it is recorded and the agent replans from the
real state. When no plan can be found from a real state, the agent first searches again
treating the refusals the model doubts (``agent.doubt``) as applicable, with the outcome the
model writes for them: executing that plan settles each doubt for real. When that finds no plan
either, it *probes*: it tries for real the actions the model doubts it was right to refuse, then
those it judges applicable, one real step at a time within a bounded budget, so a model that
wrongly refuses an action (or every action) cannot strand it.

Every event is appended to a JSONL episode log as it happens: ``start``; ``plan`` for each
search; ``act`` before each real step and ``step`` after it (so a step that was started but
never finished is visible); ``resume`` when an interrupted episode is continued; ``error``
when the environment raises; and ``end`` on every exit path — including an interrupt
(``stopped_by: "interrupted"``) or a failing model (``stopped_by: "error"``).
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, ValidationError

from planner.config import PlannerConfig
from planner.env.base import Environment, StepResult
from planner.errors import ConfigError, EnvironmentStepError, PlannerError
from planner.io import FileWriteError, JsonlLog, read_jsonl
from planner.logs import get_logger
from planner.protocols import SelectionPolicy, ValuePolicy
from planner.search.beam import beam_search
from planner.search.mcts import mcts
from planner.search.policies import heuristic_value, puct, uct
from planner.search.problem import Budget, SearchProblem
from planner.search.result import SearchResult
from planner.search.tree import SearchTree
from planner.types import Action, Prediction, State, Transition
from planner.world.base import WorldModel
from planner.world.doubt import DoubtingWorldModel, DoubtWatch, applied_outcomes, apply_probability
from planner.world.memory import ExperienceOverlay

log = get_logger(__name__)

class ResumeError(PlannerError, ValueError):
    """An episode log cannot be resumed: no such episode, already ended, or the environment
    no longer replays it the way it was recorded."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One real step and how it compared with the imagined one.

    Attributes:
        index: 0-based step number in the episode.
        action: the action executed.
        state: the real state before the step.
        imagined: the state the world model predicted after the step.
        real: the real state after the step.
        applicable: whether the real environment applied the action.
        reward: the real reward.
        terminated, truncated: as the environment reported them.
        diverged: the real state differs from the imagined one (or the action did not apply).
        probe: the step was a probe out of a state with no plan, not a step of a plan.
        doubted: the step was planned although the model refused it (a doubted refusal, see
            ``agent.doubt``).
        observation: the text the environment answered (its ``info["observation"]``, as text
            worlds give it), else ``None``.
    """

    index: int
    action: Action
    state: State
    imagined: State
    real: State
    applicable: bool
    reward: float
    terminated: bool
    truncated: bool
    diverged: bool
    probe: bool = False
    observation: str | None = None
    doubted: bool = False


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """What happened in one episode.

    Attributes:
        solved: the real environment reached the goal (checked against the real state).
        steps: every real step, in order (probes and replayed steps included).
        searches: search calls made (the first plan included).
        replans: searches caused by a divergence.
        divergences: real steps that differed from the imagined ones.
        model_calls, cache_hits, prompt_tokens, generated_tokens: summed over all searches.
        invalid_answers: model answers rejected as invalid after retries.
        split_votes: predictions whose object numberings disagreed (a model asked under several,
            ``model.votes``; the majority answered).
        model_seconds: seconds inside the world model.
        search_seconds: seconds of search outside the model.
        wall_seconds: the whole episode (this run of it, when resumed).
        stopped_by: ``"goal"``, ``"max_steps"``, ``"truncated"``, ``"no_plan"``,
            ``"max_replans"``, ``"interrupted"`` or ``"error"``.
        last_search: the final search's result (its tree can be exported).
        probes: real probe steps taken because no plan was found.
        doubted: real steps the model had refused, taken on doubt (``agent.doubt``): in a plan
            through doubted refusals, found where the model's own search found none or a longer
            one (``doubted_applied`` of them applied as imagined).
        episode_id: the id of the episode in the log.
        resumed_steps: steps replayed from a log before this run continued the episode.
        error: the error that ended the episode, for ``stopped_by == "error"``.
        verified: planned actions matching ``agent.verify`` the model confirmed, then executed.
        refused: planned actions matching ``agent.verify`` not executed: the model, asked
            again, did not predict the imagined outcome with enough confidence.
    """

    solved: bool
    steps: tuple[StepRecord, ...]
    searches: int
    replans: int
    divergences: int
    model_calls: int
    cache_hits: int
    prompt_tokens: int
    generated_tokens: int
    model_seconds: float
    search_seconds: float
    wall_seconds: float
    stopped_by: str
    last_search: SearchResult | None
    invalid_answers: int = 0
    split_votes: int = 0
    probes: int = 0
    episode_id: str = ""
    resumed_steps: int = 0
    error: str | None = None
    verified: int = 0
    refused: int = 0
    doubted: int = 0
    doubted_applied: int = 0

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(s.action for s in self.steps)


class EpisodeInterrupted(KeyboardInterrupt):
    """Raised by :meth:`Agent.run` on an interrupt (Ctrl-C, or SIGTERM turned into one by the
    command) after the ``end`` record is written; ``result`` is the episode so far."""

    def __init__(self, result: EpisodeResult) -> None:
        super().__init__("episode interrupted")
        self.result = result


class EpisodeEvent(BaseModel):
    """One line of the episode log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["start", "plan", "act", "step", "resume", "end", "error", "verify"]
    episode: str
    time: float
    data: dict[str, Any]


def new_episode_id() -> str:
    """A unique episode id: ``ep-<UTC time to the second>-<12 random hex digits>``."""
    return f"ep-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}"


def make_value_policy(config: PlannerConfig, env: Any) -> ValuePolicy:
    """The value policy named by ``config.search.heuristic`` for ``env``: ``"auto"`` (the
    environment's domain heuristic where it has one, the goal fraction otherwise), ``"goal"``, or
    a heuristic of ``env.distance_heuristic`` (PDDL: ``"ff"``, ``"add"``, ``"max"``, ``"lmcut"``)."""
    return heuristic_value(env, config.search.heuristic, discount=config.search.discount)


_TOTALS = ("model_calls", "cache_hits", "prompt_tokens", "generated_tokens", "model_seconds", "search_seconds")


@dataclass
class _Episode:
    """The running state of one episode (mutable; the agent's private bookkeeping)."""

    id: str
    sink: JsonlLog | None
    state: State
    started: float
    invalid_before: int
    split_before: int = 0
    steps: list[StepRecord] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_TOTALS, 0))
    searches: int = 0
    replans: int = 0
    divergences: int = 0
    probes: int = 0
    resumed_steps: int = 0
    tree: SearchTree | None = None
    last: SearchResult | None = None
    plan: tuple[Action, ...] = ()
    imagined: tuple[State, ...] = ()
    cursor: int = 0
    tried: set[tuple[State, Action]] = field(default_factory=set)
    verified: int = 0
    doubts: dict[tuple[State, Action], float] = field(default_factory=dict)
    """(state, action) of the current plan that the model refused, with its p(apply)."""
    doubted: int = 0
    doubted_applied: int = 0
    outcomes: dict[tuple[State, Action], Prediction] = field(default_factory=dict)
    """What the model wrote for doubted refusals, held to "applies" (asked once an episode)."""
    doubt_run: int = 0
    """Real steps of the current plan through doubted refusals since its last settled doubt."""
    doubt_waste: int = 0
    """Real steps spent on plans through doubted refusals whose doubt did not pay off."""
    stuck: bool = False
    """The current plan through doubted refusals was searched because the model's own search
    found no plan reaching the goal (not as a shortcut)."""

    def emit(self, event: str, **data: Any) -> None:
        """Append a record; after the log fails once it is not written again (the failure
        ends the episode, and the records before it stay)."""
        if self.sink is None:
            return
        try:
            self.sink.write(EpisodeEvent(event=event, episode=self.id,  # type: ignore[arg-type]
                                         time=time.time(), data=data))
        except FileWriteError:
            self.sink = None
            raise


class Agent:
    """Plans with a world model and acts in a real environment.

    Args:
        env: the real environment.
        model: the world model used for every imagined step. The agent puts its own real
            experience in front of it: a (state, action) whose real outcome differed from the
            prediction is answered from that outcome afterwards.
        config: search and agent settings.
        value: value policy (default: from ``config.search.heuristic``).
        selection: MCTS selection policy (default: from ``config.search``).
        log_path: JSONL episode log to append to (``None``: no log).
        on_step: called after each real step (e.g. to show progress).
        max_probes: most real steps per episode spent on doubts that did not pay off — probes,
            and the steps of a plan through doubted refusals up to a doubted step that did not
            apply as imagined (0: none, and no such plans; default ``config.agent.max_probes``).
    """

    def __init__(
        self,
        env: Environment,
        model: WorldModel,
        *,
        config: PlannerConfig | None = None,
        value: ValuePolicy | None = None,
        selection: SelectionPolicy | None = None,
        log_path: str | Path | None = None,
        on_step: Callable[[StepRecord], None] | None = None,
        max_probes: int | None = None,
    ) -> None:
        self.env = env
        self.experience = ExperienceOverlay(model)
        self.config = config or PlannerConfig()
        # The agent's model: its experience in front of ``model``, watched for answers a doubt
        # could overturn (a search for a shortcut through doubts needs one to have been met).
        self._watch = DoubtWatch(self.experience, threshold=self.config.agent.doubt or 1.0)
        self.model: WorldModel = self._watch
        self._applied = applied_outcomes(model)  # what a doubted answer would do (None: cannot doubt)
        self.value = value or make_value_policy(self.config, env)
        s = self.config.search
        if selection is None:
            factory = uct if s.selection == "uct" else puct
            selection = factory(c=s.exploration)
        self.selection = selection
        self.log_path = Path(log_path) if log_path is not None else None
        self.on_step = on_step
        if max_probes is None:
            max_probes = self.config.agent.max_probes
        if isinstance(max_probes, bool) or not isinstance(max_probes, int) or max_probes < 0:
            raise ConfigError(f"max_probes must be a whole number >= 0, got {max_probes!r}")
        self.max_probes = max_probes
        self._verify = tuple(re.compile(p) for p in self.config.agent.verify)
        self._refused: set[tuple[State, Action]] = set()  # (state, action) pairs refused this episode

    def plan(self, state: State, *, tree: SearchTree | None = None) -> SearchResult:
        """Search from ``state`` with the configured algorithm and the agent's model (``tree``:
        an earlier search's tree to reuse; the search works on a copy of it). Searches through
        doubted refusals do not come here."""
        return self._plan(state, tree=tree)

    def _plan(self, state: State, *, tree: SearchTree | None = None, model: WorldModel | None = None,
              max_depth: int | None = None) -> SearchResult:
        """:meth:`plan` with another model than the agent's, or a shorter horizon than
        ``search.max_depth``."""
        s = self.config.search
        problem = SearchProblem(model=self.model if model is None else model, goal=self.env.goal, actions=self._actions,
                                value=self.value, discount=s.discount)
        budget = Budget(simulations=s.simulations, max_expansions=s.max_expansions,
                        max_depth=min(s.max_depth, max_depth or s.max_depth),
                        time_limit_s=s.time_limit_s, beam_width=s.beam_width)
        if s.algorithm == "beam":
            return beam_search(problem, state, budget, tree=tree, seed=s.seed)
        return mcts(problem, state, budget, selection=self.selection, tree=tree, seed=s.seed)

    def _actions(self, state: State) -> tuple[Action, ...]:
        """The environment's candidate actions at ``state``, checked: an environment that raises
        or answers anything but Actions is named (:class:`EnvironmentStepError`)."""
        try:
            actions = tuple(self.env.candidate_actions(state))
        except (Exception, SystemExit) as exc:
            raise EnvironmentStepError(f"environment candidate_actions() raised {type(exc).__name__}: {exc}") from exc
        bad = next((a for a in actions if not isinstance(a, Action)), None)
        if bad is not None:
            raise EnvironmentStepError(f"environment candidate_actions() must return Actions, got {bad!r:.120}")
        if self._refused:
            actions = tuple(a for a in actions if (state, a) not in self._refused)
        return actions

    # -- one episode ----------------------------------------------------------------------------
    def run(self, *, seed: int | None = None, episode: str | None = None,
            resume: str | Path | None = None) -> EpisodeResult:
        """Play one episode, or continue the interrupted one recorded in the log ``resume``.

        Every exit path writes an ``end`` record. Raises :class:`EpisodeInterrupted` on an
        interrupt, :class:`EnvironmentStepError` if the environment raises, and any error of
        the world model — each after the ``end`` record is written.
        """
        sink_path = Path(resume) if resume is not None else self.log_path
        self._refused = set()
        self._watch.seen = False
        sink = JsonlLog(sink_path) if sink_path is not None else None
        try:
            if resume is not None:
                ep = self._resume(Path(resume), sink, seed=seed)
            else:
                ep = self._start(sink, seed=seed, episode=episode)
            return self._play(ep)
        finally:
            if sink is not None:
                with contextlib.suppress(OSError):  # a log that failed has said so already
                    sink.close()

    def _start(self, sink: JsonlLog | None, *, seed: int | None, episode: str | None) -> _Episode:
        started = time.perf_counter()
        invalid_before = self.model.stats.invalid
        state, info = _checked_reset(self.env, seed)
        ep = _Episode(id=episode or new_episode_id(), sink=sink, state=state, started=started,
                      invalid_before=invalid_before, split_before=self.model.stats.split_votes)
        ep.emit("start", state=state.canonical(), goal=str(self.env.goal), seed=seed,
                config=self.config.model_dump(mode="json"), info=_jsonable(info))
        return ep

    def _play(self, ep: _Episode) -> EpisodeResult:
        stopped_by = "max_steps"
        try:
            stopped_by = self._loop(ep)
        except KeyboardInterrupt:
            raise EpisodeInterrupted(self._end(ep, "interrupted")) from None
        except Exception as exc:
            result = self._end(ep, "error", error=f"{type(exc).__name__}: {exc}")
            if isinstance(exc, PlannerError):
                exc.episode_result = result  # type: ignore[attr-defined]  # the partial episode, for reports
            raise
        return self._end(ep, stopped_by)

    def _loop(self, ep: _Episode) -> str:
        """Plan, act and replan until the episode ends; return why it ended."""
        cfg = self.config.agent
        need_plan, after_divergence, redoubt = True, False, False
        while not self.env.goal.satisfied(ep.state):
            if len(ep.steps) >= cfg.max_steps:
                return "max_steps"
            if need_plan:
                if after_divergence and ep.replans >= cfg.max_replans:
                    return "max_replans"
                found = self._make_plan(ep, replan=after_divergence, redoubt=redoubt)
                need_plan = after_divergence = redoubt = False
                if not found:
                    moved = self._probe(ep)
                    if moved is None:
                        return "no_plan"
                    if moved.terminated or moved.truncated:
                        break
                    need_plan = True
                    continue
            if self._verify and not self._verified(ep, ep.plan[ep.cursor], ep.imagined[ep.cursor + 1]):
                ep.tree = None  # its edges still lead through the refused action
                need_plan = after_divergence = True
                continue
            action = ep.plan[ep.cursor]
            record = self._act(ep, action, ep.imagined[ep.cursor + 1], doubted=(ep.state, action) in ep.doubts)
            if record.terminated or self.env.goal.satisfied(ep.state):
                break
            if record.truncated:
                return "truncated"
            ep.cursor += 1
            if record.diverged:
                ep.tree = None  # its edges hold the wrong prediction; search again from scratch
                need_plan = after_divergence = True
                redoubt = record.doubted
            elif cfg.mode == "receding" or ep.cursor >= len(ep.plan):
                need_plan = True
        return "goal" if self.env.goal.satisfied(ep.state) else "truncated"

    def _make_plan(self, ep: _Episode, *, replan: bool, redoubt: bool) -> bool:
        """Search for the episode's next plan; returns whether there is one to follow (one that
        reaches the goal, or the way to the best state the search saw).

        The model's own search first. When its plan reaches the goal in more than
        ``doubt_shortcut`` steps, a plan at least that many steps shorter is looked for through
        the refusals the model doubts; when it does not reach the goal, one through them at any
        length.

        ``redoubt``: the last plan went through a doubted step that turned out wrong. The search
        through the remaining doubts comes first (its plans include the model's sure ones). If
        it finds nothing and that plan had been searched because the model's own search found
        none (``ep.stuck``), the model's own search is not repeated — from a state reached from
        there by sure steps it would find none either — and the caller probes; after a wrong
        shortcut, the model's own search follows."""
        if redoubt and self._can_doubt(ep):
            stuck = ep.stuck
            ep.plan, ep.imagined, ep.cursor, ep.doubts = (), (), 0, {}
            if self._search_doubting(ep, replan=replan):
                return True
            if stuck:
                return False
            replan = False  # counted once, by the search just made
        self._search(ep, replan=replan)
        assert ep.last is not None
        shortcut = self.config.agent.doubt_shortcut
        if not ep.last.plan.reaches_goal:
            return self._search_doubting(ep, stuck=True) or bool(ep.plan)
        if shortcut and len(ep.plan) > shortcut and self._watch.seen:
            self._search_doubting(ep, max_depth=len(ep.plan) - shortcut, stuck=False)
        return True

    def _can_doubt(self, ep: _Episode) -> bool:
        """Whether doubt is on, its budget not spent, and the model can say what a refused
        action would do."""
        return self.config.agent.doubt > 0 and self._applied is not None and not self._doubts_spent(ep)

    @staticmethod
    def _tally(ep: _Episode, result: SearchResult) -> None:
        """Count a search (any kind) in the episode's totals."""
        ep.searches += 1
        for key in _TOTALS:
            ep.totals[key] += getattr(result.stats, key)

    def _search(self, ep: _Episode, *, replan: bool) -> None:
        """The model's own search (its answers watched: ``self._watch.seen`` once one of them was
        one a doubt could overturn; until then no shortcut through doubts can exist)."""
        ep.replans += replan
        ep.last = self.plan(ep.state, tree=ep.tree if self.config.agent.reuse_tree else None)
        self._tally(ep, ep.last)
        st = ep.last.stats
        ep.tree = ep.last.tree
        ep.plan, ep.imagined, ep.cursor = ep.last.plan.actions, ep.last.plan.states, 0
        ep.doubts = {}
        self._emit_plan(ep, ep.last, replan=replan)
        log.debug("planned", length=len(ep.plan), nodes=st.nodes, model_calls=st.model_calls,
                  ms=round(st.wall_seconds * 1e3, 1))

    def _emit_plan(self, ep: _Episode, result: SearchResult, *, replan: bool,
                   doubted: dict[tuple[State, Action], float] | None = None, followed: bool = True) -> None:
        """The ``plan`` record of a search. A search through doubted refusals is marked
        ``doubting`` with ``doubted`` (the plan's steps the model refused, by position, with its
        probability that they apply) and ``followed`` (whether its plan became the episode's)."""
        st = result.stats
        plan = result.plan
        extra: dict[str, Any] = {}
        if doubted is not None:
            extra = {"doubting": True, "followed": followed, "doubted": {
                str(i): round(doubted[(s, a)], 6)
                for i, (s, a) in enumerate(zip(plan.states, plan.actions)) if (s, a) in doubted}}
        ep.emit("plan", actions=[a.name for a in plan.actions], reaches_goal=plan.reaches_goal,
                value=plan.value, nodes=st.nodes, expansions=st.expansions,
                simulations=st.simulations, model_calls=st.model_calls, cache_hits=st.cache_hits,
                model_seconds=st.model_seconds, wall_seconds=st.wall_seconds,
                stopped_by=st.stopped_by, replan=replan, **extra)

    def _search_doubting(self, ep: _Episode, *, max_depth: int | None = None, replan: bool = False,
                         stuck: bool | None = None) -> bool:
        """Search with the refusals the model doubts (probability of applying ``agent.doubt``
        or more) answered as if they applied, for a plan reaching the goal within ``max_depth``
        steps (a shortcut) or any. Returns whether it found one, which is then the episode's
        plan. Nothing happens when doubt is off, its budget is spent or the model cannot say
        what a refused action would do. Every search is a ``plan`` record. ``stuck``: whether
        the model's own search found no plan reaching the goal (default: as for the plan it
        replaces)."""
        if not self._can_doubt(ep):
            return False
        assert self._applied is not None
        doubting = DoubtingWorldModel(self.experience, self._applied, threshold=self.config.agent.doubt,
                                      known=self.experience.knows, exclude=self._irreversible,
                                      outcomes=ep.outcomes)
        last = self._plan(ep.state, model=doubting, max_depth=max_depth)
        self._tally(ep, last)
        ep.replans += replan
        found = last.plan.reaches_goal
        self._emit_plan(ep, last, replan=replan, doubted=doubting.doubted, followed=found)
        if not found:
            return False
        ep.last = last
        ep.tree = None  # its edges hold answers the model did not give: never reuse them
        ep.plan, ep.imagined, ep.cursor, ep.doubt_run = last.plan.actions, last.plan.states, 0, 0
        ep.stuck = ep.stuck if stuck is None else stuck
        ep.doubts = {(s, a): doubting.doubted[(s, a)] for s, a in zip(ep.imagined, ep.plan)
                     if (s, a) in doubting.doubted}
        log.info("doubting_plan", length=len(ep.plan), doubted=len(ep.doubts))
        return True

    def _verified(self, ep: _Episode, action: Action, imagined: State) -> bool:
        """Whether a planned action may be executed: ``True`` unless it matches
        ``agent.verify`` and the model, asked again, does not predict that it applies with the
        imagined outcome at confidence ``agent.verify_confidence`` or more; a refused action
        is never planned again at this state. Writes a ``verify`` record either way."""
        if not self._irreversible(action):
            return True
        pred = self.model.predict(ep.state, action)
        threshold = self.config.agent.verify_confidence
        allowed = pred.applicable and pred.next_state == imagined and pred.confidence >= threshold
        ep.emit("verify", index=len(ep.steps), action=action.name, confidence=pred.confidence,
                applicable=pred.applicable, as_imagined=pred.next_state == imagined, threshold=threshold,
                allowed=allowed)
        if allowed:
            ep.verified += 1
        else:
            self._refused.add((ep.state, action))
            log.info("refused", action=action.name, confidence=round(pred.confidence, 4))
        return allowed

    def _irreversible(self, action: Action) -> bool:
        """Whether ``action`` matches one of the ``agent.verify`` patterns."""
        return any(p.search(action.name) for p in self._verify)

    def _act(self, ep: _Episode, action: Action, imagined: State, *, probe: bool = False,
             expected: bool = True, doubted: bool = False) -> StepRecord:
        """One real step: ``act`` record, the step, the comparison, ``step`` record. ``expected``:
        whether the model imagined the action applying (a plan's steps do; a probe of an action
        it refused does not, and is a divergence only if it applies). ``doubted``: a planned
        step the model refused (learned from either way)."""
        index = len(ep.steps)
        ep.emit("act", index=index, action=action.name, imagined=imagined.canonical(), probe=probe)
        try:
            result: StepResult = self.env.step(action)
            if not isinstance(result, StepResult) or not isinstance(result.state, State):
                raise TypeError(f"step() must return a StepResult holding a State, got {result!r:.120}")
        except (Exception, SystemExit) as exc:  # user code: an exit is a failure, not an interrupt
            ep.emit("error", step=index, action=action.name, error=f"{type(exc).__name__}: {exc}")
            raise EnvironmentStepError(
                f"environment raised at step {index} on action {action}: {type(exc).__name__}: {exc}"
            ) from exc
        diverged = result.applicable != expected or result.state != imagined
        observation = result.info.get("observation") if result.info else None
        observation = observation if isinstance(observation, str) else None
        record = StepRecord(
            index=index, action=action, state=ep.state, imagined=imagined, real=result.state,
            applicable=result.applicable, reward=result.reward, terminated=result.terminated,
            truncated=result.truncated, diverged=diverged, probe=probe, observation=observation,
            doubted=doubted,
        )
        ep.steps.append(record)
        ep.emit("step", index=index, action=action.name, state=ep.state.canonical(),
                imagined=imagined.canonical(), real=result.state.canonical(),
                applicable=result.applicable, reward=result.reward, terminated=result.terminated,
                truncated=result.truncated, diverged=diverged, probe=probe,
                **({"doubted": True} if doubted else {}),
                reason=_jsonable(result.info.get("reason")),
                **({"observation": observation} if observation is not None else {}))
        self._observe(ep, record)
        if self.on_step is not None:
            self.on_step(record)
        return record

    def _observe(self, ep: _Episode, record: StepRecord) -> None:
        """Learn from a real step: a divergence (or a probe) overrides the model from now on."""
        ep.tried.add((record.state, record.action))
        if ep.doubts and not record.probe:  # a step of a plan through doubted refusals
            ep.doubt_run += 1
        if record.doubted:
            ep.doubted += 1
            ep.doubted_applied += not record.diverged
            ep.doubt_waste += max(1, ep.doubt_run) if record.diverged else 0
            ep.doubt_run = 0
        if record.diverged or record.probe or record.doubted:
            ep.divergences += record.diverged
            self.experience.record(Transition(
                state=record.state, action=record.action, applicable=record.applicable,
                next_state=record.real, reward=record.reward, done=record.terminated))
        ep.state = record.real

    def _doubts_spent(self, ep: _Episode) -> bool:
        """Whether the real steps spent on doubts that did not pay off — probes, and the steps
        of a plan through doubted refusals up to a doubted step that did not apply as imagined
        — have reached ``max_probes``."""
        return ep.probes + ep.doubt_waste >= self.max_probes

    def _probe(self, ep: _Episode) -> StepRecord | None:
        """Get out of a state with no plan by trying actions for real (untried ones only), until
        one changes the state or the probe budget is spent. Returns the step that changed the
        state, or ``None``.

        The search already followed every action the model judged applicable and found no plan,
        so the likely culprit is an action the model wrongly judged inapplicable: the refusals
        it doubts most (highest probability of applying) are tried first, then the actions it
        judged applicable, likeliest first (a step that at least moves the agent on). Actions
        that ``agent.verify`` names are never probed: trying them blindly is what it forbids."""
        state = ep.state
        actions = [a for a in self._actions(state) if (state, a) not in ep.tried and not self._irreversible(a)]
        if not actions or self._doubts_spent(ep):
            return None
        preds = self.model.predict_many(state, actions)
        # Probability that the action applies, as the model sees it.
        p_apply = [apply_probability(p) for p in preds]
        order = sorted(range(len(actions)), key=lambda i: (preds[i].applicable, -p_apply[i]))
        for i in order:
            if self._doubts_spent(ep):
                break
            ep.probes += 1
            record = self._act(ep, actions[i], preds[i].next_state, probe=True, expected=preds[i].applicable)
            log.info("probe", action=actions[i].name, applicable=record.applicable, p_apply=round(p_apply[i], 4))
            if record.applicable and record.real != state:
                return record
        return None

    def _end(self, ep: _Episode, stopped_by: str, *, error: str | None = None) -> EpisodeResult:
        solved = self.env.goal.satisfied(ep.state)
        result = EpisodeResult(
            solved=solved, steps=tuple(ep.steps), searches=ep.searches, replans=ep.replans,
            divergences=ep.divergences, wall_seconds=time.perf_counter() - ep.started,
            stopped_by="goal" if solved and stopped_by not in ("interrupted", "error") else stopped_by,
            last_search=ep.last, invalid_answers=self.model.stats.invalid - ep.invalid_before,
            split_votes=self.model.stats.split_votes - ep.split_before, probes=ep.probes, episode_id=ep.id,
            resumed_steps=ep.resumed_steps, error=error,
            verified=ep.verified, refused=len(self._refused), doubted=ep.doubted,
            doubted_applied=ep.doubted_applied,
            **ep.totals,  # type: ignore[arg-type]
        )
        try:
            ep.emit("end", solved=solved, steps=len(ep.steps), searches=ep.searches, replans=ep.replans,
                    divergences=ep.divergences, probes=ep.probes, doubted=ep.doubted,
                    doubted_applied=ep.doubted_applied,
                    wall_seconds=result.wall_seconds,
                    stopped_by=result.stopped_by, plan=[a.name for a in result.actions],
                    invalid_answers=result.invalid_answers, split_votes=result.split_votes, error=error,
                    verified=result.verified,
                    refused=result.refused, **ep.totals)
        except FileWriteError as exc:
            if stopped_by in ("interrupted", "error"):  # the first failure is the one to report
                log.warning("end_record_lost", path=str(exc), stopped_by=stopped_by)
            else:
                exc.episode_result = result  # type: ignore[attr-defined]
                raise
        return result

    # -- resuming -------------------------------------------------------------------------------
    def _resume(self, path: Path, sink: JsonlLog | None, *, seed: int | None) -> _Episode:
        """Rebuild the most recent unfinished episode of ``path`` by replaying its steps."""
        started = time.perf_counter()
        events = _episode_events(path)
        episode_id = _unfinished_episode(path, events)
        mine = [e for e in events if e.episode == episode_id]
        start = _StartData.parse(path, mine[0])
        if seed is None:
            seed = start.seed
        state, _ = _checked_reset(self.env, seed)
        if state.canonical() != start.state:
            raise ResumeError(f"{path}: episode {episode_id} started from another state than this "
                              f"environment's start ({start.state!r:.120} vs {state.canonical()!r:.120})")
        ep = _Episode(id=episode_id, sink=sink, state=state, started=started,
                      invalid_before=self.model.stats.invalid, split_before=self.model.stats.split_votes)
        ep.searches = sum(e.event == "plan" for e in mine)
        ep.replans = sum(e.event == "plan" and bool(e.data.get("replan")) for e in mine)
        for event in mine:
            if event.event == "step":
                self._replay(ep, _StepData.parse(path, event), path)
        ep.resumed_steps = len(ep.steps)
        ep.probes = sum(s.probe for s in ep.steps)
        unfinished = [a.index for a in (_ActData.parse(path, e) for e in mine if e.event == "act")
                      if a.index >= ep.resumed_steps]
        ep.emit("resume", replayed=ep.resumed_steps, state=ep.state.canonical(),
                unfinished_act=unfinished[-1] if unfinished else None)
        return ep

    def _replay(self, ep: _Episode, rec: _StepData, path: Path) -> None:
        index = len(ep.steps)
        action = Action(rec.action)
        try:
            result = self.env.step(action)
        except Exception as exc:
            raise ResumeError(f"{path}: replaying step {index} ({action}) raised "
                              f"{type(exc).__name__}: {exc}") from None
        if result.state.canonical() != rec.real:
            raise ResumeError(f"{path}: replaying step {index} ({action}) gave another state than "
                              f"recorded; this environment cannot resume episode {ep.id}")
        record = StepRecord(
            index=index, action=action, state=ep.state, imagined=_state_from_canonical(rec.imagined, like=result.state),
            real=result.state, applicable=result.applicable, reward=result.reward, terminated=result.terminated,
            truncated=result.truncated, diverged=rec.diverged, probe=rec.probe, doubted=rec.doubted)
        ep.steps.append(record)
        self._observe(ep, record)


class _RecordData(BaseModel):
    """The fields of one kind of log record that resuming reads (others are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def parse(cls, path: Path, event: EpisodeEvent) -> Any:
        try:
            return cls.model_validate(event.data)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'data'}: {e['msg']}" for e in exc.errors())
            raise ResumeError(f"{path}: a {event.event!r} record of episode {event.episode} is malformed: "
                              f"{problem}") from None


class _StartData(_RecordData):
    state: StrictStr
    seed: StrictInt | None = None


class _StepData(_RecordData):
    action: StrictStr
    real: StrictStr
    imagined: StrictStr = ""
    diverged: StrictBool = False
    probe: StrictBool = False
    doubted: StrictBool = False


class _ActData(_RecordData):
    index: StrictInt


def _episode_events(path: Path) -> list[EpisodeEvent]:
    """Every record of an episode log, validated (:class:`ResumeError` naming a bad one)."""
    events = []
    for number, record in enumerate(read_jsonl(path), start=1):
        try:
            events.append(EpisodeEvent.model_validate(record))
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors())
            raise ResumeError(f"{path}: record {number} is not an episode event: {problem}") from None
    return events


def _unfinished_episode(path: Path, events: list[EpisodeEvent]) -> str:
    """The id of the most recent episode of the log that did not finish (no ``end`` record,
    or one that says it was interrupted or failed)."""
    ended: dict[str, str] = {}
    for e in events:
        if e.event == "end":
            ended[e.episode] = str(e.data.get("stopped_by"))
    starts = [e.episode for e in events if e.event == "start"]
    if not starts:
        raise ResumeError(f"{path}: no episode to resume (no 'start' record)")
    for episode in reversed(starts):
        if ended.get(episode, "interrupted") in ("interrupted", "error"):
            return episode
    raise ResumeError(f"{path}: no unfinished episode to resume (the last one, {starts[-1]}, already ended "
                      f"with stopped_by {ended.get(starts[-1])!r})")


def _checked_reset(env: Environment, seed: int | None) -> tuple[State, dict[str, Any]]:
    """``env.reset(seed=seed)``, checked: :class:`EnvironmentStepError` naming what went wrong."""
    try:
        out = env.reset(seed=seed)
    except (Exception, SystemExit) as exc:
        raise EnvironmentStepError(f"environment reset(seed={seed}) raised {type(exc).__name__}: {exc}") from exc
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], State) and isinstance(out[1], dict)):
        raise EnvironmentStepError(f"environment reset(seed={seed}) must return (State, dict), got {out!r:.120}")
    return out


def _state_from_canonical(text: str, *, like: State) -> State:
    """Invert :meth:`State.canonical` for a state of the same kind as ``like``."""
    if not like.is_symbolic:
        return State.from_text(text)
    facts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        if depth:
            current.append(ch)
        if ch == ")" and depth:
            depth -= 1
            if depth == 0:
                facts.append("".join(current))
                current = []
    if not facts and text.strip():
        facts = text.split()
    return State.from_facts(facts)


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it, else its text (environment info may hold anything)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
