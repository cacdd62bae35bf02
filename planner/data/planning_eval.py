"""Planning success of a world model on environment seeds: one bounded episode per seed.

:func:`evaluate_planning` plays, for each seed ``S``, the episode that
``planner solve --env ENV --seed S --model MODEL`` plays: the environment of seed ``S``, the
GGUF model bound to it (behind the transition cache the configuration asks for), the same
:class:`~planner.agent.Agent` and search, ``reset(seed=S)``. It reports how many seeds were
solved, plan lengths, real steps and model calls, per seed and overall.

Each episode is bounded by its configuration: at most ``agent.max_steps`` real steps,
``agent.max_replans`` replans and ``agent.max_probes`` probes, each search by
``search.max_expansions`` (beam) or ``search.simulations`` (MCTS) and ``search.time_limit_s``.
:data:`DEFAULT_CONFIG` is ``planner solve``'s default configuration with a time limit per
search (:data:`SEARCH_SECONDS`) and fewer replans (:data:`MAX_REPLANS`), so that a poor
model cannot make one episode run for long.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from planner.agent import Agent, EpisodeResult
from planner.config import ModelConfig, PlannerConfig
from planner.data.explore import build_environment
from planner.errors import PlannerError
from planner.logs import get_logger
from planner.protocols import Environment
from planner.world.base import WorldModel

__all__ = [
    "DEFAULT_CONFIG", "MAX_REPLANS", "SEARCH_SECONDS", "ModelBuilder", "PlanningEpisode", "PlanningReport",
    "evaluate_planning", "gguf_model",
]

log = get_logger(__name__)

SEARCH_SECONDS = 2.0
"""Wall-clock limit of one search in :data:`DEFAULT_CONFIG` (seconds)."""
MAX_REPLANS = 5
"""Most replans of an episode in :data:`DEFAULT_CONFIG` (``planner solve``'s default: 20)."""

DEFAULT_CONFIG = PlannerConfig().updated(search={"time_limit_s": SEARCH_SECONDS}, agent={"max_replans": MAX_REPLANS})
"""``planner solve``'s defaults (beam search, at most 100 real steps) with a time limit of
:data:`SEARCH_SECONDS` per search and at most :data:`MAX_REPLANS` replans: an episode
searches for at most about ``(1 + MAX_REPLANS) × SEARCH_SECONDS`` = 12 s. A good model
rarely meets either limit (it solves with few replans, each search well under the limit); a
poor one would otherwise spend minutes per seed replanning after divergence upon divergence."""

ModelBuilder = Callable[[PlannerConfig, Environment], WorldModel]
"""Builds the world model ``config.model`` names for an environment (e.g. the command's own
``build_model``)."""


def model_kwargs(m: ModelConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`~planner.world.factory.load_gguf_world_model` for the
    ``[model]`` section ``m``: the in-process settings, or the server and its client's."""
    votes = {"votes": m.votes, "vote_below": m.vote_below}
    if m.server is not None:
        return {"server": m.server, "concurrency": m.concurrency, "timeout": m.timeout_s, **votes}
    return {"n_ctx": m.n_ctx, "n_threads": m.n_threads, "n_gpu_layers": m.n_gpu_layers, **votes}


def gguf_model(config: PlannerConfig, env: Environment) -> WorldModel:
    """The GGUF model ``config.model.path`` bound to ``env`` (problem read from
    ``env.reset(seed=config.search.seed)``), behind a transition cache of
    ``config.model.cache_size`` entries: what ``planner solve --model PATH`` builds."""
    from planner.world.cache import CachedWorldModel
    from planner.world.factory import load_gguf_world_model

    m = config.model
    model: WorldModel = load_gguf_world_model(env, path=m.path, reset_seed=config.search.seed, **model_kwargs(m))
    if m.cache_size > 0:
        model = CachedWorldModel(model, maxsize=m.cache_size)
    return model


@dataclass(frozen=True)
class PlanningEpisode:
    """One seed's planning episode.

    Attributes:
        seed: the environment seed (problem and ``reset`` seed).
        solved: the real environment reached the goal.
        steps: real steps taken (probes included).
        plan: the actions executed, in order.
        searches, replans, divergences, probes: as in :class:`~planner.agent.EpisodeResult`.
        model_calls: world-model predictions asked for (cache hits included).
        stopped_by: why the episode ended (``"goal"``, ``"max_steps"``, ``"no_plan"``,
            ``"max_replans"``, ``"truncated"`` or ``"error"``).
        seconds: the episode's wall time, model loading included (seconds).
        error: the error that ended the episode (``stopped_by == "error"``), else ``None``.
    """

    seed: int
    solved: bool
    steps: int
    plan: tuple[str, ...]
    searches: int
    replans: int
    divergences: int
    probes: int
    model_calls: int
    stopped_by: str
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["plan"] = list(self.plan)
        d["seconds"] = round(self.seconds, 4)
        return d


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


@dataclass(frozen=True)
class PlanningReport:
    """Planning success over seeds.

    Attributes:
        model: the GGUF model evaluated.
        episodes: one per seed, in seed order.
        config: the limits the episodes ran under (the configuration's ``search`` and
            ``agent`` sections).
    """

    model: str
    episodes: tuple[PlanningEpisode, ...]
    config: dict[str, Any]

    @property
    def total(self) -> int:
        """Seeds played."""
        return len(self.episodes)

    @property
    def solved(self) -> int:
        """Seeds solved."""
        return sum(e.solved for e in self.episodes)

    @property
    def solve_rate(self) -> float:
        """Share of seeds solved (NaN when none was played)."""
        return self.solved / self.total if self.total else float("nan")

    @property
    def mean_plan_length(self) -> float:
        """Mean real steps of the solved episodes (the length of the plans that worked; NaN
        when none was solved)."""
        return _mean([e.steps for e in self.episodes if e.solved])

    @property
    def mean_steps(self) -> float:
        """Mean real steps over all episodes (NaN when none was played)."""
        return _mean([e.steps for e in self.episodes])

    @property
    def model_calls(self) -> int:
        """World-model predictions asked for over all episodes."""
        return sum(e.model_calls for e in self.episodes)

    @property
    def seconds(self) -> float:
        """Wall time of all episodes (seconds)."""
        return sum(e.seconds for e in self.episodes)

    @property
    def errors(self) -> int:
        """Episodes ended by an error (counted as not solved)."""
        return sum(e.error is not None for e in self.episodes)

    def seeds_text(self) -> str:
        """The seeds played: ``"200-202"`` when consecutive, else listed."""
        seeds = [e.seed for e in self.episodes]
        if not seeds:
            return "none"
        if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
            return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
        return ",".join(map(str, seeds))

    def line(self) -> str:
        """One line: solved/total, mean plan length, mean real steps, model calls, seconds."""
        rate = f" ({self.solve_rate:.1%})" if self.total else ""
        length = ("n/a (none solved)" if math.isnan(self.mean_plan_length)
                  else f"{self.mean_plan_length:.1f} real steps (solved episodes)")
        errors = f", {self.errors} ended by an error" if self.errors else ""
        return (f"solved {self.solved}/{self.total} seeds{rate}, mean plan length {length}, mean real steps "
                f"{_number(self.mean_steps)}, {self.model_calls:,} model calls, {self.seconds:.1f} s{errors}")

    def table(self) -> str:
        """One row per seed."""
        lines = [f"{'seed':>10} {'solved':>6} {'steps':>5} {'divergences':>11} {'replans':>7} "
                 f"{'model calls':>11}  stopped by"]
        for e in self.episodes:
            why = e.stopped_by + (f": {e.error[:80]}" if e.error else "")
            lines.append(f"{e.seed:>10} {'yes' if e.solved else 'no':>6} {e.steps:>5} {e.divergences:>11} "
                         f"{e.replans:>7} {e.model_calls:>11}  {why}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN stays NaN: the caller maps it to ``null``)."""
        return {"model": self.model, "seeds": self.seeds_text(), "solved": self.solved, "total": self.total,
                "solve_rate": self.solve_rate, "mean_plan_length": self.mean_plan_length,
                "mean_steps": self.mean_steps, "model_calls": self.model_calls, "errors": self.errors,
                "seconds": round(self.seconds, 4), "config": self.config,
                "episodes": [e.to_dict() for e in self.episodes]}


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def _close(model: Any) -> None:
    """Free the llama.cpp model under the wrappers (caches, overlays) of ``model``."""
    seen = 0
    while model is not None and seen < 16:
        close = getattr(model, "close", None)
        if callable(close):
            close()
            return
        model = getattr(model, "inner", None)
        seen += 1


def _episode(seed: int, result: EpisodeResult | None, seconds: float, error: str | None) -> PlanningEpisode:
    if result is None:
        return PlanningEpisode(seed=seed, solved=False, steps=0, plan=(), searches=0, replans=0, divergences=0,
                               probes=0, model_calls=0, stopped_by="error", seconds=seconds, error=error)
    return PlanningEpisode(
        seed=seed, solved=result.solved, steps=len(result.steps), plan=tuple(a.name for a in result.actions),
        searches=result.searches, replans=result.replans, divergences=result.divergences, probes=result.probes,
        model_calls=result.model_calls, stopped_by="error" if error else result.stopped_by, seconds=seconds,
        error=error)


def evaluate_planning(
    make_env: Callable[[int], Environment],
    model: str | Path,
    *,
    seeds: Iterable[int],
    config: PlannerConfig = DEFAULT_CONFIG,
    build: ModelBuilder | None = None,
    progress: Callable[[PlanningEpisode], None] | None = None,
    log_path: str | Path | None = None,
) -> PlanningReport:
    """Play one episode per seed with the GGUF world model ``model`` and report planning success.

    Args:
        make_env: builds the environment of a seed.
        model: the GGUF world model (``planner learn``'s ``model-q8_0.gguf``).
        seeds: environment seeds; seed ``S`` builds ``make_env(S)``, seeds the search and
            resets with ``reset(seed=S)``, as ``planner solve --env … --seed S`` does.
        config: search and agent limits (its ``model.kind`` and ``model.path`` are replaced by
            ``model``); see the module's description for what bounds an episode.
        build: builds the model for an environment (default :func:`gguf_model`).
        progress: receives each episode as it ends.
        log_path: an episode log every episode is appended to (``planner solve --log``'s
            format; ``None``: none).

    ``seeds`` is read lazily, one seed per episode: a generator may stop when a time budget is
    spent. An episode that raises a planner error (the model cannot serve this seed's problem, the
    environment fails) is counted as not solved, with the error recorded; an interrupt
    propagates.
    """
    build = build or gguf_model
    path = Path(model)
    episodes: list[PlanningEpisode] = []
    for seed in seeds:
        cfg = config.updated(search={"seed": seed}, model={"kind": "gguf", "path": path})
        started = time.perf_counter()
        result: EpisodeResult | None = None
        error: str | None = None
        world: WorldModel | None = None
        try:
            env = build_environment(make_env, seed)
            world = build(cfg, env)
            result = Agent(env, world, config=cfg, log_path=log_path).run(seed=seed)
        except PlannerError as exc:
            partial = getattr(exc, "episode_result", None)
            result = partial if isinstance(partial, EpisodeResult) else None
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("planning_episode_failed", seed=seed, error=error)
        finally:
            if world is not None:
                _close(world)
        episode = _episode(seed, result, time.perf_counter() - started, error)
        episodes.append(episode)
        if progress is not None:
            progress(episode)
    limits = config.model_dump(mode="json")
    return PlanningReport(model=str(path), episodes=tuple(episodes),
                          config={"search": limits["search"], "agent": limits["agent"]})
