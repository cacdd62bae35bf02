"""planner: a local agent that thinks before it acts.

A world model (exact, or a GGUF language model run by llama.cpp) predicts what actions do;
beam search or MCTS explores imagined futures with it; the agent executes the best plan in the
real environment, checks every step against the imagined one, and replans when they differ.
"""

from planner.agent import Agent, EpisodeResult, StepRecord
from planner.config import AgentConfig, ModelConfig, PlannerConfig, SearchConfig, load_config
from planner.env.base import Environment, Simulator, StepResult, check_env
from planner.env.pddl import PDDLEnvironment
from planner.errors import (
    ConfigError,
    ContextOverflowError,
    DomainError,
    EnvironmentCheckError,
    EnvironmentStepError,
    InapplicableActionError,
    ModelLoadError,
    PlannerError,
    UnknownActionError,
    WorldModelError,
)
from planner.search.beam import beam_search
from planner.search.mcts import mcts
from planner.search.result import SearchResult, SearchStats
from planner.types import Action, FactGoal, Goal, Plan, Prediction, State, Transition
from planner.world.base import ModelStats, WorldModel
from planner.world.cache import CachedWorldModel
from planner.world.oracle import NoisyWorldModel, OracleWorldModel

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Agent",
    "AgentConfig",
    "CachedWorldModel",
    "ConfigError",
    "ContextOverflowError",
    "DomainError",
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
    "NoisyWorldModel",
    "OracleWorldModel",
    "PDDLEnvironment",
    "Plan",
    "PlannerConfig",
    "PlannerError",
    "Prediction",
    "SearchConfig",
    "SearchResult",
    "SearchStats",
    "Simulator",
    "State",
    "StepRecord",
    "StepResult",
    "Transition",
    "UnknownActionError",
    "WorldModel",
    "WorldModelError",
    "__version__",
    "beam_search",
    "check_env",
    "load_config",
    "mcts",
]
