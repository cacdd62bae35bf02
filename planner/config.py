"""Every search and agent knob in one validated configuration, loadable from TOML.

Unknown keys are errors; so are values out of range. Command-line flags override the file.
Example ``planner.toml``::

    [search]
    algorithm = "mcts"
    simulations = 3000
    heuristic = "ff"

    [agent]
    mode = "receding"
    max_steps = 80
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        heuristic: value of imagined states: ``"goal"`` (fraction of goal facts reached) or a
            domain heuristic for PDDL domains: ``"ff"``, ``"add"``, ``"max"``, ``"lmcut"``.
        seed: tie-breaking seed.
    """

    algorithm: Literal["beam", "mcts"] = "beam"
    beam_width: int = Field(16, ge=1)
    max_expansions: int = Field(20_000, ge=1)
    simulations: int = Field(2_000, ge=1)
    selection: Literal["uct", "puct"] = "uct"
    exploration: float = Field(0.05, ge=0.0)
    max_depth: int = Field(60, ge=1)
    time_limit_s: float | None = Field(None, gt=0)
    discount: float = Field(0.95, gt=0.0, le=1.0)
    heuristic: Literal["goal", "ff", "add", "max", "lmcut"] = "ff"
    seed: int = 0


class AgentConfig(_Frozen):
    """How to act.

    Attributes:
        mode: ``"plan"`` executes the whole plan, checking each real step against the
            imagined one and replanning on divergence; ``"receding"`` executes the first
            action of each plan and plans again (reusing the search tree).
        max_steps: most real steps in an episode.
        max_replans: most replans after divergences before giving up.
        reuse_tree: keep the search tree across real steps.
    """

    mode: Literal["plan", "receding"] = "plan"
    max_steps: int = Field(100, ge=1)
    max_replans: int = Field(20, ge=0)
    reuse_tree: bool = True


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
    """

    kind: Literal["oracle", "gguf"] = "gguf"
    path: Path | None = None
    cache_size: int = Field(200_000, ge=0)
    n_threads: int | None = Field(None, ge=1)
    n_gpu_layers: int = 0
    n_ctx: int = Field(4096, ge=16)


class PlannerConfig(_Frozen):
    """The whole configuration: ``search``, ``agent`` and ``model`` sections."""

    search: SearchConfig = SearchConfig()
    agent: AgentConfig = AgentConfig()
    model: ModelConfig = ModelConfig()

    def updated(self, **sections: dict[str, Any]) -> PlannerConfig:
        """A copy with some keys of some sections replaced (``None`` values are ignored),
        validated again."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section].update({k: v for k, v in values.items() if v is not None})
        return _validate(data, source="command-line options")


def _validate(data: dict[str, Any], *, source: str) -> PlannerConfig:
    try:
        return PlannerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] != "missing" else "")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration in {source}: {problems}") from None


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
    return _validate(data, source=str(p))
