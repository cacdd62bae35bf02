"""The agent loop: plan → act → observe → compare → replan.

The agent plans with the world model only, executes the plan in the real environment, and
compares every real state with the state the model imagined for that step. A difference (or a
real step that did not apply) is a divergence: it is recorded and the agent replans from the
real state. Every event is appended to a JSONL episode log as it happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from planner.config import PlannerConfig
from planner.env.base import Environment, StepResult
from planner.errors import EnvironmentStepError
from planner.io import JsonlLog
from planner.logs import get_logger
from planner.search.beam import beam_search
from planner.search.mcts import mcts
from planner.search.policies import (
    SelectionPolicy,
    ValuePolicy,
    distance_value,
    goal_fraction_value,
    puct,
    uct,
)
from planner.search.result import SearchResult
from planner.search.tree import SearchTree
from planner.types import Action, State, Transition
from planner.world.base import WorldModel
from planner.world.memory import ExperienceOverlay

log = get_logger(__name__)


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


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """What happened in one episode.

    Attributes:
        solved: the real environment reached the goal (checked against the real state).
        steps: every real step, in order.
        searches: search calls made (the first plan included).
        replans: searches caused by a divergence.
        divergences: real steps that differed from the imagined ones.
        model_calls, cache_hits, prompt_tokens, generated_tokens: summed over all searches.
        invalid_answers: model answers rejected as invalid after retries.
        model_seconds: seconds inside the world model.
        search_seconds: seconds of search outside the model.
        wall_seconds: the whole episode.
        stopped_by: ``"goal"``, ``"max_steps"``, ``"truncated"``, ``"no_plan"`` or
            ``"max_replans"``.
        last_search: the final search's result (its tree can be exported).
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

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(s.action for s in self.steps)


class EpisodeEvent(BaseModel):
    """One line of the episode log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["start", "plan", "step", "end", "error"]
    episode: str
    time: float
    data: dict[str, Any]


def make_value_policy(config: PlannerConfig, env: Any) -> ValuePolicy:
    """The value policy named by ``config.search.heuristic`` for ``env``.

    Domain heuristics need an environment with ``distance_heuristic(name)`` (PDDL).
    """
    name = config.search.heuristic
    if name == "goal":
        return goal_fraction_value
    if not hasattr(env, "distance_heuristic"):
        raise ValueError(
            f"heuristic {name!r} needs a PDDL environment; use heuristic = 'goal' for "
            f"{type(env).__name__}"
        )
    return distance_value(env.distance_heuristic(name), discount=config.search.discount)


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
    ) -> None:
        self.env = env
        self.experience = ExperienceOverlay(model)
        self.model: WorldModel = self.experience
        self.config = config or PlannerConfig()
        self.value = value or make_value_policy(self.config, env)
        s = self.config.search
        if selection is None:
            factory = uct if s.selection == "uct" else puct
            selection = factory(c=s.exploration, discount=s.discount)
        self.selection = selection
        self.log_path = Path(log_path) if log_path is not None else None
        self.on_step = on_step

    def plan(self, state: State, *, tree: SearchTree | None = None) -> SearchResult:
        """Search from ``state`` with the configured algorithm."""
        s = self.config.search
        common: dict[str, Any] = dict(
            model=self.model, goal=self.env.goal, actions=self.env.candidate_actions,
            max_depth=s.max_depth, time_limit_s=s.time_limit_s, value=self.value,
            discount=s.discount, seed=s.seed, tree=tree,
        )
        if s.algorithm == "beam":
            return beam_search(state, beam_width=s.beam_width,
                               max_expansions=s.max_expansions, **common)
        return mcts(state, simulations=s.simulations, selection=self.selection, **common)

    def run(self, *, seed: int | None = None, episode: str | None = None) -> EpisodeResult:
        """Play one episode. Raises :class:`EnvironmentStepError` if the environment raises
        (after logging the error; every earlier step is already in the log)."""
        episode_id = episode or f"ep-{time.strftime('%Y%m%dT%H%M%S')}-{seed if seed else 0}"
        sink = JsonlLog(self.log_path) if self.log_path is not None else None
        try:
            return self._run(seed, episode_id, sink)
        finally:
            if sink is not None:
                sink.close()

    def _run(self, seed: int | None, episode_id: str, sink: JsonlLog | None) -> EpisodeResult:
        cfg = self.config.agent
        started = time.perf_counter()

        def emit(event: str, **data: Any) -> None:
            if sink is not None:
                sink.write(EpisodeEvent(event=event, episode=episode_id,  # type: ignore[arg-type]
                                        time=time.time(), data=data))

        invalid_before = self.model.stats.invalid
        state, info = self.env.reset(seed=seed)
        emit("start", state=state.canonical(), goal=str(self.env.goal), seed=seed,
             config=self.config.model_dump(mode="json"), info=info)
        steps: list[StepRecord] = []
        totals = {"model_calls": 0, "cache_hits": 0, "prompt_tokens": 0,
                  "generated_tokens": 0, "model_seconds": 0.0, "search_seconds": 0.0}
        searches = replans = divergences = 0
        tree: SearchTree | None = None
        last: SearchResult | None = None
        plan_actions: tuple[Action, ...] = ()
        plan_states: tuple[State, ...] = ()
        cursor = 0
        need_plan, after_divergence = True, False
        stopped_by = "max_steps"
        solved = self.env.goal.satisfied(state)
        if solved:
            stopped_by = "goal"

        while not solved and len(steps) < cfg.max_steps:
            if need_plan:
                if after_divergence:
                    if replans >= cfg.max_replans:
                        stopped_by = "max_replans"
                        break
                    replans += 1
                last = self.plan(state, tree=tree if cfg.reuse_tree else None)
                searches += 1
                st = last.stats
                for key in totals:
                    totals[key] += getattr(st, key)
                tree = last.tree
                plan_actions, plan_states, cursor = last.plan.actions, last.plan.states, 0
                emit("plan", actions=[a.name for a in plan_actions],
                     reaches_goal=last.plan.reaches_goal, value=last.plan.value,
                     nodes=st.nodes, expansions=st.expansions, simulations=st.simulations,
                     model_calls=st.model_calls, cache_hits=st.cache_hits,
                     model_seconds=st.model_seconds, wall_seconds=st.wall_seconds,
                     stopped_by=st.stopped_by, replan=after_divergence)
                log.debug("planned", length=len(plan_actions), nodes=st.nodes,
                          model_calls=st.model_calls, ms=round(st.wall_seconds * 1e3, 1))
                need_plan = after_divergence = False
                if not plan_actions:
                    stopped_by = "no_plan"
                    break

            action, imagined = plan_actions[cursor], plan_states[cursor + 1]
            try:
                result: StepResult = self.env.step(action)
            except Exception as exc:
                emit("error", step=len(steps), action=action.name,
                     error=f"{type(exc).__name__}: {exc}")
                raise EnvironmentStepError(
                    f"environment raised at step {len(steps)} on action {action}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            diverged = (not result.applicable) or result.state != imagined
            record = StepRecord(
                index=len(steps), action=action, state=state, imagined=imagined,
                real=result.state, applicable=result.applicable, reward=result.reward,
                terminated=result.terminated, truncated=result.truncated, diverged=diverged,
            )
            steps.append(record)
            emit("step", index=record.index, action=action.name, state=state.canonical(),
                 imagined=imagined.canonical(), real=result.state.canonical(),
                 applicable=result.applicable, reward=result.reward,
                 terminated=result.terminated, truncated=result.truncated, diverged=diverged,
                 reason=result.info.get("reason"))
            if self.on_step is not None:
                self.on_step(record)
            state = result.state
            if result.terminated or self.env.goal.satisfied(state):
                solved = self.env.goal.satisfied(state)
                stopped_by = "goal" if solved else "truncated"
                break
            if result.truncated:
                stopped_by = "truncated"
                break
            cursor += 1
            if diverged:
                divergences += 1
                need_plan = after_divergence = True
                self.experience.record(Transition(
                    state=record.state, action=action, applicable=result.applicable,
                    next_state=result.state, reward=result.reward, done=result.terminated))
                tree = None  # its edges hold the wrong prediction; search again from scratch
            elif cfg.mode == "receding" or cursor >= len(plan_actions):
                need_plan = True

        wall = time.perf_counter() - started
        episode = EpisodeResult(
            solved=solved, steps=tuple(steps), searches=searches, replans=replans,
            divergences=divergences, wall_seconds=wall, stopped_by=stopped_by,
            last_search=last, invalid_answers=self.model.stats.invalid - invalid_before,
            **totals,  # type: ignore[arg-type]
        )
        emit("end", solved=solved, steps=len(steps), searches=searches, replans=replans,
             divergences=divergences, wall_seconds=wall, stopped_by=stopped_by,
             plan=[a.name for a in episode.actions], invalid_answers=episode.invalid_answers, **totals)
        return episode
