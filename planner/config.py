"""Every search and agent knob in one validated configuration, loadable from TOML.

Unknown keys are errors; so are values of the wrong type (no numbers written as text, no
``true`` for a number) and values out of range. Every number is bounded so that no accepted
value can crash llama.cpp or exhaust memory by itself; the bounds are the constants below.
Command-line flags override the file.
Example ``planner.toml``::

    [search]
    algorithm = "mcts"
    simulations = 3000
    heuristic = "auto"

    [agent]
    mode = "receding"
    max_steps = 80
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from planner.errors import ConfigError
from planner.world.votes import MAX_VOTES, VOTE_BELOW

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


MAX_SEED = 2**32 - 1
"""Seeds are unsigned 32-bit numbers (llama.cpp's and numpy's generators take those)."""
MAX_NODES = 1_000_000
"""Most simulations (MCTS) or node expansions (beam) per search: each adds tree nodes of
about a kilobyte, so the cap keeps one search's tree around a gigabyte at worst."""
MAX_BEAM_WIDTH = 10_000
MAX_DEPTH = 10_000
"""Longest imagined plan, in actions."""
MAX_EXPLORATION = 100.0
"""Largest selection constant; useful values lie around 0.05 to 5."""
MAX_TIME_LIMIT_S = 7 * 24 * 3600.0
"""Longest time limit per search: one week, in seconds."""
MAX_STEPS = 100_000
MAX_REPLANS = 10_000
MAX_CACHE_SIZE = 2_000_000
"""Most transition-cache entries (each holds a state and a prediction, up to a few kilobytes)."""
MAX_THREADS = 1024
"""Most llama.cpp threads that may be asked for (more than the available cores are bounded to them)."""
MAX_GPU_LAYERS = 4096
MIN_N_CTX = 32
"""Smallest KV cache: the prompt and answer of a one-object problem need 22 tokens."""
MAX_N_CTX = 2**18
"""Largest KV cache (262,144 tokens: 512 MiB of keys and values for the shipped model)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SearchConfig(_Frozen):
    """How to search.

    Attributes:
        algorithm: ``"beam"`` or ``"mcts"``.
        beam_width: nodes kept per layer (beam).
        max_expansions: most node expansions per search (beam).
        simulations: simulations per search (MCTS).
        selection: ``"uct"`` or ``"puct"`` (MCTS).
        exploration: the selection constant ``c`` (MCTS).
        max_depth: longest imagined plan, in actions.
        time_limit_s: wall-clock seconds per search (``None``: no limit).
        discount: per-step discount in (0, 1].
        heuristic: value of imagined states: ``"auto"`` (the environment's own domain
            heuristic where it has one — hFF for PDDL — the goal fraction otherwise), ``"goal"``
            (fraction of goal facts reached) or a domain heuristic for PDDL domains: ``"ff"``,
            ``"add"``, ``"max"``, ``"lmcut"``.
        seed: tie-breaking seed.

    Bounds: ``beam_width`` 1..10,000; ``max_expansions`` and ``simulations`` 1..1,000,000;
    ``exploration`` 0..100; ``max_depth`` 1..10,000; ``time_limit_s`` up to one week;
    ``seed`` 0..2**32-1. Floats must be finite.
    """

    algorithm: Literal["beam", "mcts"] = "beam"
    beam_width: int = Field(16, ge=1, le=MAX_BEAM_WIDTH)
    max_expansions: int = Field(20_000, ge=1, le=MAX_NODES)
    simulations: int = Field(2_000, ge=1, le=MAX_NODES)
    selection: Literal["uct", "puct"] = "uct"
    exploration: float = Field(0.05, ge=0.0, le=MAX_EXPLORATION)
    max_depth: int = Field(60, ge=1, le=MAX_DEPTH)
    time_limit_s: float | None = Field(None, gt=0, le=MAX_TIME_LIMIT_S)
    discount: float = Field(0.95, gt=0.0, le=1.0)
    heuristic: Literal["auto", "goal", "ff", "add", "max", "lmcut"] = "auto"
    seed: int = Field(0, ge=0, le=MAX_SEED)


class AgentConfig(_Frozen):
    """How to act.

    Attributes:
        mode: ``"plan"`` executes the whole plan, checking each real step against the
            imagined one and replanning on divergence; ``"receding"`` executes the first
            action of each plan and plans again (reusing the search tree).
        max_steps: most real steps in an episode.
        max_replans: most replans after divergences before giving up.
        reuse_tree: keep the search tree across real steps.
        max_probes: most real steps per episode spent on doubts that did not pay off: probes
            out of a state with no plan (the actions the model judges most likely applicable,
            tried for real), and the steps of a plan through doubted refusals (``doubt``) up to
            a doubted step that did not apply as imagined; 0 stops the episode with ``no_plan``
            instead.
        verify: regular expressions (Python ``re.search``) naming irreversible actions
            (``"^\\(slice "``, ``"heat"``): before the agent executes a planned action that
            matches one, it asks the model again and executes it only when the model predicts
            it applies, with the imagined outcome, at confidence ``verify_confidence`` or more;
            otherwise the action is refused at that state and the agent plans around it.
            Probes out of a state with no plan never try such actions.
        verify_confidence: the least confidence (0..1) of a verified action's prediction.
        doubt: when no plan reaching the goal is found from a real state, search again treating
            each action the model refuses while giving it at least this probability of applying
            (0..1) as applicable, with the outcome the model writes for it; the plan's doubted
            steps are settled by executing them (a wrong doubt is a divergence, learned from).
            0 turns this off, and so does ``max_probes = 0`` (a wrong doubt costs a real step).
            Needs a model that can write a refused action's outcome (GGUF fact-delta models
            can, in process or served); actions named by ``verify`` are never doubted.
        doubt_shortcut: when a plan reaching the goal is found, also search for one at least
            this many steps shorter through doubted refusals, and follow it instead (a model
            that wrongly refuses a step plans a detour around it); 0: only when no plan is found.

    Bounds: ``max_steps`` 1..100,000; ``max_replans`` 0..10,000; ``max_probes`` 0..10,000;
    ``verify`` at most 64 patterns, each a valid regular expression.
    """

    mode: Literal["plan", "receding"] = "plan"
    max_steps: int = Field(100, ge=1, le=MAX_STEPS)
    max_replans: int = Field(20, ge=0, le=MAX_REPLANS)
    reuse_tree: bool = True
    max_probes: int = Field(8, ge=0, le=MAX_REPLANS)
    verify: tuple[str, ...] = Field((), max_length=64)
    verify_confidence: float = Field(0.9, ge=0.0, le=1.0)
    doubt: float = Field(0.05, ge=0.0, le=1.0)
    doubt_shortcut: int = Field(2, ge=0, le=MAX_STEPS)

    @field_validator("verify", mode="before")
    @classmethod
    def _patterns_compile(cls, patterns: Any) -> Any:
        if isinstance(patterns, list):  # TOML and JSON give lists
            patterns = tuple(patterns)
        if not isinstance(patterns, tuple):
            return patterns  # the type check names it
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise ValueError(f"verify patterns must be strings, got {pattern!r}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"verify pattern {pattern!r} is not a regular expression: {exc}") from None
        return patterns


class ModelConfig(_Frozen):
    """Which world model and how to run it.

    Attributes:
        kind: ``"oracle"`` (exact, from the simulator) or ``"gguf"``.
        path: GGUF file for ``kind = "gguf"`` (``None``: the shipped default for the domain).
        cache_size: transition-cache entries (0 disables the cache).
        n_threads: CPU threads for llama.cpp (``None``: its default).
        n_gpu_layers: layers offloaded to a GPU (0: CPU only; -1: all).
        n_ctx: llama.cpp KV-cache cells shared by the prompt prefix and all sibling
            sequences decoded together (tokens).
        server: base URL of a llama.cpp server running the same GGUF file (``planner serve``;
            ``None``: run the model in-process). The in-process settings above are then the
            server's own; ``path`` (or the shipped default) still names the file, whose
            header the client reads.
        concurrency: requests a served model keeps in flight for one state's candidates.
        timeout_s: seconds a served model waits for a connection or an answer.
        votes: object numberings each prediction is asked under, the majority answer kept
            (:mod:`planner.world.votes`; 1: once; ties go to the sorted numbering, so 2 is 1).
        vote_below: with ``votes`` above 1, the other numberings are asked only about answers
            the first gives with a confidence below this (1: about every answer).

    Bounds: ``cache_size`` 0..2,000,000; ``n_threads`` 1..1024 (bounded further by the cores
    available); ``n_gpu_layers`` -1..4096; ``n_ctx`` 32..262,144 (llama.cpp allocates at
    least 256 cells anyway; the model checks at load time that the problem's prompts fit);
    ``server`` an http(s) URL; ``concurrency`` 1..256; ``timeout_s`` (0, 3600]; ``votes`` 1..15 (a
    GGUF model only); ``vote_below`` (0, 1].
    """

    kind: Literal["oracle", "gguf"] = "gguf"
    path: Path | None = None
    cache_size: int = Field(200_000, ge=0, le=MAX_CACHE_SIZE)
    n_threads: int | None = Field(None, ge=1, le=MAX_THREADS)
    n_gpu_layers: int = Field(0, ge=-1, le=MAX_GPU_LAYERS)
    n_ctx: int = Field(4096, ge=MIN_N_CTX, le=MAX_N_CTX)
    server: str | None = Field(None, max_length=2048)
    concurrency: int = Field(4, ge=1, le=256)
    timeout_s: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)
    votes: int = Field(1, ge=1, le=MAX_VOTES)
    vote_below: float = Field(VOTE_BELOW, gt=0, le=1, allow_inf_nan=False)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from planner.world.remote import check_server_url

        try:
            return check_server_url(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_model(self) -> ModelConfig:
        if self.kind == "oracle" and self.server is not None:
            raise ValueError(f"kind 'oracle' is the exact model, computed here: it takes no server "
                             f"(got server {self.server!r})")
        if self.kind == "oracle" and self.votes != 1:
            raise ValueError(f"kind 'oracle' is the exact model: it answers once, votes must be 1 "
                             f"(got votes {self.votes})")
        return self

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value or "\0" in value:
                raise ValueError("must be a non-empty file path without NUL characters")
            return Path(value)
        return value


class PlannerConfig(_Frozen):
    """The whole configuration: ``search``, ``agent`` and ``model`` sections."""

    search: SearchConfig = SearchConfig()
    agent: AgentConfig = AgentConfig()
    model: ModelConfig = ModelConfig()

    def updated(self, *, source: str = "command-line options", **sections: dict[str, Any]) -> PlannerConfig:
        """A copy with some keys of some sections replaced (``None`` values are ignored),
        validated again; an error names ``source`` as where the values came from (e.g. a
        configuration file together with the command-line options)."""
        data = self.model_dump()
        for section, values in sections.items():
            if section not in data:
                raise ConfigError(f"unknown configuration section {section!r}; choose one of {sorted(data)}")
            if not isinstance(values, Mapping):
                raise ConfigError(f"configuration section {section!r} must be a mapping of keys to values, "
                                  f"got {_short(values)}")
            data[section].update({k: v for k, v in values.items() if v is not None})
        return _validate(data, source=source)


def _validate(data: Any, *, source: str) -> PlannerConfig:
    try:
        return PlannerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            + (f" (got {_short(err['input'])})" if _shows_input(err) else "")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration in {source}: {problems}") from None


def _shows_input(err: Mapping[str, Any]) -> bool:
    """Whether a validation error's message is worth the value it was given: not for a missing
    key, nor for a whole section a section's own check refused (its message names the values)."""
    return err["type"] != "missing" and not (err["type"] == "value_error" and isinstance(err["input"], Mapping))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_config(path: str | Path) -> PlannerConfig:
    """Read and validate a TOML configuration file.

    Raises :class:`ConfigError` naming the file and each bad key or value.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {p}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {p} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(_too_deep(p)) from None
    try:
        return _validate(data, source=str(p))
    except RecursionError:
        raise ConfigError(_too_deep(p)) from None


def _too_deep(path: Path) -> str:
    """Why a configuration file nested beyond Python's recursion limit is refused."""
    return (f"configuration file {path} nests arrays or tables too deeply to read (beyond Python's recursion "
            "limit; a configuration needs only its [section] tables of plain values)")
