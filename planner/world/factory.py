"""Build a GGUF-backed world model from configuration."""

from __future__ import annotations

from typing import Any

from planner.config import ModelConfig
from planner.errors import ModelLoadError
from planner.world.base import WorldModel


def load_gguf_world_model(config: ModelConfig, env: Any) -> WorldModel:
    """The GGUF world model named by ``config`` for ``env``.

    Raises :class:`ModelLoadError` naming the path and the cause.
    """
    if config.path is None:
        raise ModelLoadError(
            "no world model given and no default model ships for this domain: "
            "pass --model PATH.gguf or --oracle"
        )
    from planner.world.llama import LlamaWorldModel

    return LlamaWorldModel.for_environment(config.path, env, config=config)
