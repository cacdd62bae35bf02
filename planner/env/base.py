"""What a real step returns (``StepResult``) and ``check_env``, in the spirit of Gymnasium.

The protocol itself lives in :mod:`planner.protocols`.

An environment is the real world the agent acts in. The planner asks it for three things only:
the start state (``reset``), the result of a real action (``step``) and, for planning, the
candidate actions at a state (``candidate_actions``) — a list the world model then judges;
the planner never asks the real environment which actions apply at imagined states.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from planner.errors import ConfigError, EnvironmentCheckError
from planner.protocols import Environment as Environment
from planner.protocols import Goal
from planner.protocols import Simulator as Simulator
from planner.types import Action, State, objects_of


@dataclass(frozen=True, slots=True)
class StepResult:
    """The outcome of one real step.

    Attributes:
        state: the state after the step (unchanged when the action was not applicable).
        reward: the step's reward (1.0 when the goal is reached, else 0.0 for built-in envs).
        terminated: the goal was reached (a terminal state of the task).
        truncated: the episode was cut short for a reason outside the task (e.g. a step limit).
        info: extra facts; built-in environments set ``reason`` (str) when the action did not
            apply.
        applicable: whether the action's precondition held, so that it was applied (an
            inapplicable action leaves the state unchanged).
    """

    state: State
    reward: float
    terminated: bool
    truncated: bool
    info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    applicable: bool = True


def check_env(env: Any, *, seed: int = 0, max_steps: int = 5) -> None:
    """Validate that ``env`` follows the :class:`Environment` protocol.

    Resets twice with the same seed (must give equal states), checks types, takes up to
    ``max_steps`` real steps with candidate actions and checks that an inapplicable action
    leaves the state unchanged. Raises :class:`EnvironmentCheckError` listing every problem.
    """
    problems: list[str] = []
    for name in ("reset", "step", "candidate_actions"):
        if not callable(getattr(env, name, None)):
            problems.append(f"missing method {name}()")
    if not hasattr(env, "goal"):
        problems.append("missing attribute goal")
    if problems:
        raise EnvironmentCheckError(problems)

    goal = env.goal
    if not isinstance(goal, Goal):
        problems.append(f"goal must have satisfied() and progress(), got {type(goal).__name__}")

    def _reset() -> State | None:
        try:
            out = env.reset(seed=seed)
        except Exception as exc:
            problems.append(f"reset(seed={seed}) raised {type(exc).__name__}: {exc}")
            return None
        if not (isinstance(out, tuple) and len(out) == 2):
            problems.append(f"reset() must return (State, dict), got {out!r:.80}")
            return None
        state, info = out
        if not isinstance(state, State):
            problems.append(f"reset() state must be a State, got {type(state).__name__}")
            return None
        if not isinstance(info, dict):
            problems.append(f"reset() info must be a dict, got {type(info).__name__}")
        return state

    first = _reset()
    second = _reset()
    if first is None or second is None:
        raise EnvironmentCheckError(problems)
    if first != second:
        problems.append(f"reset(seed={seed}) is not deterministic: {first} != {second}")

    if isinstance(goal, Goal):
        p = goal.progress(first)
        if not 0.0 <= p <= 1.0:
            problems.append(f"goal.progress() must lie in [0, 1], got {p!r}")
        if goal.satisfied(first) != (p == 1.0):
            problems.append("goal.progress() must be 1.0 exactly when goal.satisfied()")

    state = first
    for _ in range(max_steps):
        try:
            actions = list(env.candidate_actions(state))
        except Exception as exc:
            problems.append(f"candidate_actions() raised {type(exc).__name__}: {exc}")
            break
        if not actions:
            problems.append(f"candidate_actions() returned no actions at {state}")
            break
        bad = [a for a in actions if not isinstance(a, Action)]
        if bad:
            problems.append(f"candidate_actions() must return Actions, got {bad[0]!r}")
            break
        stepped = False
        for action in actions:
            try:
                result = env.step(action)
            except Exception as exc:
                problems.append(f"step({action}) raised {type(exc).__name__}: {exc}")
                raise EnvironmentCheckError(problems) from exc
            if not isinstance(result, StepResult):
                problems.append(f"step() must return a StepResult, got {type(result).__name__}")
                raise EnvironmentCheckError(problems)
            if not isinstance(result.state, State):
                problems.append("StepResult.state must be a State")
                raise EnvironmentCheckError(problems)
            if not result.applicable:
                if result.state != state:
                    problems.append(f"inapplicable step({action}) changed the state")
                continue
            if result.terminated and isinstance(goal, Goal) and not goal.satisfied(result.state):
                problems.append(f"step({action}) terminated but the goal is not satisfied")
            state = result.state
            stepped = True
            break
        if not stepped or result.terminated or result.truncated:
            break
    if problems:
        raise EnvironmentCheckError(problems)


def episode_objects(env: Any, facts: Iterable[str], actions: Iterable[Action] = ()) -> list[str]:
    """The objects of an episode of ``env``, sorted: those named in ``facts`` (its start state
    and goal) and ``actions`` (its start state's candidates), and every name in the
    environment's optional ``objects`` attribute, for environments whose later states name
    objects the start does not (a grid's cells). Learning (collection) and binding a learned
    model both use it, so the model's placeholders and the runtime's agree.

    Raises :class:`ConfigError` when ``objects`` is not a collection of names.
    """
    found = set(objects_of(facts, actions))
    declared = getattr(env, "objects", None)
    if declared is not None:
        if isinstance(declared, str) or not all(isinstance(o, str) and o for o in declared):
            raise ConfigError(f"{type(env).__name__}.objects must be a collection of names, got {declared!r:.120}")
        found.update(declared)
    return sorted(found)
