"""World models for the jobs of one worker: each GGUF file loaded once, re-bound to each job.

Loading a GGUF model allocates its weights and llama.cpp context; binding it to a problem
(objects, goal, vocabulary checks) is cheap. :class:`ModelPool` keeps one loaded
:class:`~planner.world.llama.LlamaWorldModel` per file in its process and, for each job,
re-binds it to the job's problem with the same checks a fresh load makes (the domain's
recorded signature for PDDL problems; the vocabulary of the start state, goal and actions for
other environments), then starts its decoding afresh — empty KV cache, the retry sampler
seeded as a new model's — so a job's predictions do not depend on which jobs its worker ran
before. The exact model (``kind = "oracle"``) is built per job; either is put behind a
transition cache of ``cache_size`` entries, one per job, as ``planner solve`` does.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from planner.config import ModelConfig
from planner.env.pddl import PDDLEnvironment
from planner.errors import ConfigError
from planner.logs import get_logger
from planner.protocols import Environment, Simulator
from planner.world.base import WorldModel
from planner.world.cache import CachedWorldModel

__all__ = ["ModelPool"]

log = get_logger(__name__)


class ModelPool:
    """The world models of one worker process (see the module's description).

    Args:
        config: the ``[model]`` section: ``kind``, ``path`` (``None``: the shipped model for
            the domain), ``n_ctx``, ``n_threads``, ``n_gpu_layers``, ``cache_size``.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._loaded: dict[Path, Any] = {}
        self._paths: dict[Any, Path] = {}
        self.loads = 0
        """GGUF files loaded so far (one per file, however many jobs)."""
        self.binds = 0
        """Jobs served by re-binding an already loaded model."""

    def world_model(self, env: Environment, *, seed: int) -> WorldModel:
        """The world model of one job in ``env`` (``reset(seed=seed)`` gives its problem when
        ``env`` is not a PDDL environment). Raises what loading or binding raises
        (:class:`ModelLoadError`, :class:`VocabularyError`, :class:`ConfigError`)."""
        m = self.config
        model: WorldModel
        if m.kind == "oracle":
            if not isinstance(env, Simulator):
                raise ConfigError(f"--oracle needs an environment with simulate(state, action); "
                                  f"{type(env).__name__} has none")
            from planner.world.oracle import OracleWorldModel

            model = OracleWorldModel(env)
        else:
            model = self._gguf(env, seed=seed)
        if m.cache_size > 0:
            model = CachedWorldModel(model, maxsize=m.cache_size)
        return model

    def close(self) -> None:
        """Free every loaded model."""
        for model in self._loaded.values():
            with contextlib.suppress(Exception):
                model.close()
        self._loaded.clear()

    # -- GGUF ---------------------------------------------------------------------------------
    def _gguf(self, env: Environment, *, seed: int) -> Any:
        from planner.data.planning_eval import model_kwargs
        from planner.world.factory import environment_problem, load_gguf_world_model
        from planner.world.llama import pddl_problem

        m = self.config
        path = self._path_for(env)
        model = self._loaded.get(path)
        if model is None:
            model = load_gguf_world_model(env, path=path, reset_seed=seed, **model_kwargs(m))
            self._loaded[path] = model
            self.loads += 1
            log.info("model_loaded", path=str(path))
            return model
        if isinstance(env, PDDLEnvironment):
            model.rebind(**pddl_problem(env.task))
        else:
            model.rebind(**environment_problem(model.info, env, reset_seed=seed))
        model.reset_decoding()
        self.binds += 1
        return model

    def _path_for(self, env: Environment) -> Path:
        """The GGUF file for ``env`` (:func:`~planner.world.factory.model_path_for`), found or
        checked once per domain (PDDL: its signature; else its ``world_model_domain``)."""
        from planner.world.factory import model_path_for
        from planner.world.signature import domain_signature

        if isinstance(env, PDDLEnvironment):
            key: Any = repr(domain_signature(env.task.domain).to_json())
        else:
            key = ("env", getattr(env, "world_model_domain", None))
        if key not in self._paths:
            self._paths[key] = model_path_for(env, self.config.path)
        return self._paths[key]
