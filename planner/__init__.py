"""planner: a local agent that thinks before it acts.

A world model (exact, or a GGUF language model run by llama.cpp) predicts what actions do;
beam search or MCTS explores imagined futures with it; the agent executes the best plan in the
real environment, checks every step against the imagined one, and replans when they differ.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # static checkers see the real imports; at run time they happen on first use
    from planner.agent import Agent, EpisodeResult, StepRecord
    from planner.config import AgentConfig, ModelConfig, PlannerConfig, SearchConfig, load_config
    from planner.env.base import StepResult, check_env
    from planner.env.pddl import PDDLEnvironment
    from planner.env.registry import make, register
    from planner.errors import (
        CodecError,
        ConfigError,
        ContextOverflowError,
        DomainError,
        EnvironmentCheckError,
        EnvironmentStepError,
        InapplicableActionError,
        ModelLoadError,
        ModelWriteError,
        PlannerError,
        UnknownActionError,
        VocabularyError,
        WorldModelError,
    )
    from planner.protocols import (
        ActionsFn,
        Environment,
        Goal,
        RewardPolicy,
        RolloutPolicy,
        SelectionPolicy,
        Simulator,
        ValuePolicy,
        WorldModel,
    )
    from planner.search.beam import beam_search
    from planner.search.mcts import mcts
    from planner.search.problem import Budget, SearchProblem
    from planner.search.result import SearchResult, SearchStats
    from planner.search.tree import Edge, Node, SearchTree
    from planner.types import Action, FactGoal, Plan, Prediction, State, Transition
    from planner.world.base import ModelStats
    from planner.world.cache import CachedWorldModel
    from planner.world.oracle import OracleWorldModel

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Action": "planner.types",
    "ActionsFn": "planner.protocols",
    "Agent": "planner.agent",
    "AgentConfig": "planner.config",
    "Budget": "planner.search.problem",
    "CachedWorldModel": "planner.world.cache",
    "CodecError": "planner.errors",
    "ConfigError": "planner.errors",
    "ContextOverflowError": "planner.errors",
    "DomainError": "planner.errors",
    "Edge": "planner.search.tree",
    "Environment": "planner.protocols",
    "EnvironmentCheckError": "planner.errors",
    "EnvironmentStepError": "planner.errors",
    "EpisodeResult": "planner.agent",
    "FactGoal": "planner.types",
    "Goal": "planner.protocols",
    "InapplicableActionError": "planner.errors",
    "ModelConfig": "planner.config",
    "ModelLoadError": "planner.errors",
    "ModelWriteError": "planner.errors",
    "ModelStats": "planner.world.base",
    "Node": "planner.search.tree",
    "OracleWorldModel": "planner.world.oracle",
    "PDDLEnvironment": "planner.env.pddl",
    "Plan": "planner.types",
    "PlannerConfig": "planner.config",
    "PlannerError": "planner.errors",
    "Prediction": "planner.types",
    "RewardPolicy": "planner.protocols",
    "RolloutPolicy": "planner.protocols",
    "SearchConfig": "planner.config",
    "SearchProblem": "planner.search.problem",
    "SearchResult": "planner.search.result",
    "SearchStats": "planner.search.result",
    "SearchTree": "planner.search.tree",
    "SelectionPolicy": "planner.protocols",
    "Simulator": "planner.protocols",
    "State": "planner.types",
    "StepRecord": "planner.agent",
    "StepResult": "planner.env.base",
    "Transition": "planner.types",
    "UnknownActionError": "planner.errors",
    "VocabularyError": "planner.errors",
    "ValuePolicy": "planner.protocols",
    "WorldModel": "planner.protocols",
    "WorldModelError": "planner.errors",
    "beam_search": "planner.search.beam",
    "check_env": "planner.env.base",
    "load_config": "planner.config",
    "make": "planner.env.registry",
    "mcts": "planner.search.mcts",
    "register": "planner.env.registry",
}
"""Public name → the module that defines it (imported on first use, so start-up stays fast)."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'planner' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
__all__ = [
    "Action",
    "ActionsFn",
    "Agent",
    "AgentConfig",
    "Budget",
    "CachedWorldModel",
    "CodecError",
    "ConfigError",
    "ContextOverflowError",
    "DomainError",
    "Edge",
    "Environment",
    "EnvironmentCheckError",
    "EnvironmentStepError",
    "EpisodeResult",
    "FactGoal",
    "Goal",
    "InapplicableActionError",
    "ModelConfig",
    "ModelLoadError",
    "ModelStats",
    "ModelWriteError",
    "Node",
    "OracleWorldModel",
    "PDDLEnvironment",
    "Plan",
    "PlannerConfig",
    "PlannerError",
    "Prediction",
    "RewardPolicy",
    "RolloutPolicy",
    "SearchConfig",
    "SearchProblem",
    "SearchResult",
    "SearchStats",
    "SearchTree",
    "SelectionPolicy",
    "Simulator",
    "State",
    "StepRecord",
    "StepResult",
    "Transition",
    "UnknownActionError",
    "ValuePolicy",
    "VocabularyError",
    "WorldModel",
    "WorldModelError",
    "__version__",
    "beam_search",
    "check_env",
    "load_config",
    "make",
    "mcts",
    "register",
]
