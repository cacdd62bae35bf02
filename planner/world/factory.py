"""Build a GGUF-backed world model from configuration, and find the shipped default models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from planner.config import ModelConfig
from planner.errors import ModelLoadError
from planner.world.base import WorldModel

DEFAULT_MODELS = {"blocksworld": "blocksworld-q8_0.gguf"}
"""Domain name → file name of the model shipped in ``models/``."""


def models_dirs() -> list[Path]:
    """Folders searched for shipped models: ``$PLANNER_MODELS`` then the source tree's ``models/``."""
    dirs = []
    if os.environ.get("PLANNER_MODELS"):
        dirs.append(Path(os.environ["PLANNER_MODELS"]))
    dirs.append(Path(__file__).resolve().parents[2] / "models")
    return dirs


def default_model_path(domain: str) -> Path:
    """The shipped model for ``domain``; :class:`ModelLoadError` when none ships."""
    name = DEFAULT_MODELS.get(domain)
    if name is None:
        raise ModelLoadError(
            f"no default world model ships for domain {domain!r} "
            f"(shipped: {', '.join(sorted(DEFAULT_MODELS))}); pass --model PATH.gguf or --oracle")
    for folder in models_dirs():
        if (folder / name).is_file():
            return folder / name
    raise ModelLoadError(f"the default model {name} was not found in {', '.join(map(str, models_dirs()))}")


def load_gguf_world_model(config: ModelConfig, env: Any) -> WorldModel:
    """The GGUF world model named by ``config`` (or the shipped default) for ``env``.

    Raises :class:`ModelLoadError` naming the path and the cause.
    """
    from planner.world.llama import LlamaWorldModel

    path = config.path if config.path is not None else default_model_path(env.task.domain_name)
    return LlamaWorldModel.for_environment(path, env, config=config, on_invalid="reject")
