"""A ScienceWorld task variation as an environment of the planner.

:class:`LabEnvironment` follows the :class:`~planner.protocols.Environment` protocol:

- **state**: the facts of :mod:`planner.env.lab.world` (the agent's room and inventory, the
  doors of the room, the objects the goal names, what was focused on);
- **actions**: Lisp forms of :mod:`planner.env.lab.actions` (``(move butterfly red_box)``),
  sent as ScienceWorld's commands; :meth:`LabEnvironment.command` shows the text;
- **step**: ScienceWorld runs the command; an action that leaves the facts unchanged (a
  refused command, "The door is already open.", or one that could not be written because the
  object is out of sight) is reported with ``applicable=False`` and the state unchanged.
  Reward 1.0 and ``terminated`` when the task is completed with full score; a task that
  ScienceWorld fails (focusing on a wrong object) ends the episode with ``truncated`` and
  ``info["failed"]``;
- **goal**: the task's goal over the facts (:mod:`planner.env.lab.goals`), which agrees with
  ScienceWorld's own completion (tested on the gold paths);
- ``simulate`` (the :class:`~planner.protocols.Simulator` protocol): ScienceWorld cannot save
  and restore a state, so the exact outcome at a state is found by replaying, on a second
  simulator (a second JVM, started on first use), the actions that led to that state from the
  start, then the action. Only states this environment has reached (by ``reset``, ``step``
  or ``simulate``) can be simulated; a replay costs a reset (about 0.3 s) plus a step
  (about 20 ms) per action, measured by ``benchmarks/lab.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from planner.env.base import StepResult
from planner.env.lab.actions import candidate_actions
from planner.env.lab.runtime import start_simulator
from planner.env.lab.session import LabSession, Outcome
from planner.env.lab.tasks import LabTask
from planner.errors import ConfigError
from planner.types import Action, Prediction, State

__all__ = ["GOAL_REWARD", "LabEnvironment"]

GOAL_REWARD = 1.0
"""Reward of the step that completes the task."""


class LabEnvironment:
    """Variation ``variation`` of the ScienceWorld task ``task`` (see the module's description).

    Args:
        task: the task (:data:`~planner.env.lab.tasks.TASKS`).
        variation: ScienceWorld's variation number.
        max_steps: truncate an episode after this many steps (``None``: never).

    Call :meth:`close` (or use it as a context manager) to stop the simulator's JVM.
    """

    def __init__(self, task: LabTask, variation: int, *, max_steps: int | None = None,
                 simulator: Any = None) -> None:
        self.task = task
        self.variation = variation
        self.max_steps = max_steps
        self._session = LabSession(task, variation, simulator=simulator)
        self._replica: LabSession | None = None
        self._paths: dict[State, tuple[Action, ...]] = {}
        self._history: tuple[Action, ...] = ()
        self._steps = 0
        self.observation = ""
        self.replay_mismatches = 0
        """How often a replay for :meth:`simulate` did not reach the state it replayed to."""
        self.reset()

    # -- the Environment protocol -----------------------------------------------------------
    @property
    def goal(self) -> Any:
        """The goal of the task variation (a :class:`~planner.env.lab.goals.FocusGoal` or a
        :class:`~planner.types.FactGoal`)."""
        return self._session.goal

    @property
    def objects(self) -> tuple[str, ...]:
        """Every object name given so far in this episode (sorted)."""
        return tuple(sorted(self._session.namer.uuid_of))

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        """Start the variation again (ScienceWorld's variations are deterministic: ``seed`` is
        accepted and ignored)."""
        state = self._session.reset()
        self._steps = 0
        self._history = ()
        self._paths.setdefault(state, ())
        self.observation = ""
        return state, {"task": self.task.name, "variation": self.variation,
                       "description": self._session.description}

    def step(self, action: Action) -> StepResult:
        """Run ``action`` in ScienceWorld; :class:`~planner.errors.UnknownActionError` for an
        action of an operator the task does not use."""
        before = self._session.state
        out = self._session.step(action)
        self._steps += 1
        if out.sent is not None:
            self._history = (*self._history, action)
            self._paths.setdefault(out.state, self._history)
        self.observation = out.observation
        state = out.state if out.applied else before
        truncated = out.failed or (self.max_steps is not None and self._steps >= self.max_steps and not out.won)
        info: dict[str, Any] = {"observation": out.observation, "score": out.score, "command": out.sent}
        if out.failed:
            info["failed"] = True
        if not out.applied:
            info["reason"] = ("cannot be written as a command here (out of sight or not reachable)"
                              if out.sent is None else out.observation or "changes nothing")
        return StepResult(state=state, reward=GOAL_REWARD if out.won else 0.0, terminated=out.won,
                          truncated=truncated, info=MappingProxyType(info), applicable=out.applied)

    def candidate_actions(self, state: State) -> Sequence[Action]:
        """The candidates of ``state`` (:func:`~planner.env.lab.actions.candidate_actions`)."""
        return candidate_actions(state, self.task.operators)

    # -- the Simulator protocol -------------------------------------------------------------
    def simulate(self, state: State, action: Action) -> Prediction:
        """The exact outcome of ``action`` at ``state``, by replay on a second simulator.
        :class:`ConfigError` for a state this environment has not reached."""
        path = self._paths.get(state)
        if path is None:
            raise ConfigError("simulate() replays the actions that led to a state, so it needs a state this "
                              f"environment reached by reset, step or simulate; got {state.canonical()[:200]!r}")
        out = self._replay((*path, action))
        if out.sent is not None:
            self._paths.setdefault(out.state, (*path, action))
        nxt = out.state if out.applied else state
        return Prediction(applicable=out.applied, next_state=nxt, reward=GOAL_REWARD if out.won else 0.0,
                          done=out.won)

    def replay(self, actions: Sequence[Action]) -> list[State]:
        """The states after reset and after each of ``actions`` on the second simulator (for
        measuring how reproducible ScienceWorld is)."""
        replica = self._replica_session()
        states = [replica.reset()]
        for action in actions:
            states.append(replica.step(action).state)
        return states

    def _replay(self, actions: Sequence[Action]) -> Outcome:
        replica = self._replica_session()
        replica.reset()
        for action in actions[:-1]:
            replica.step(action)
        expected = self._paths_inverse(actions[:-1])
        if expected is not None and expected != replica.state:
            self.replay_mismatches += 1
        return replica.step(actions[-1])

    def _paths_inverse(self, path: Sequence[Action]) -> State | None:
        key = tuple(path)
        for state, found in self._paths.items():
            if found == key:
                return state
        return None

    def _replica_session(self) -> LabSession:
        if self._replica is None:
            self._replica = LabSession(self.task, self.variation, simulator=start_simulator())
        return self._replica

    # -- helpers ----------------------------------------------------------------------------
    def command(self, action: Action) -> str | None:
        """The ScienceWorld command ``action`` is sent as at the current state (``None``: it
        cannot be written here)."""
        op, args = self._session._parse(action)
        return self._session._command(op, args)

    def gold_path(self) -> list[Action]:
        """ScienceWorld's gold path of the variation as actions, without its steps that change
        no fact (``look around``, opening an open door, waiting) and cut where the task is
        completed. Plays it, so the episode starts again afterwards (from :meth:`reset`)."""
        commands = self._session.gold_commands()
        self.reset()
        found: list[Action] = []
        for command in commands:
            action = self._session.translate(command)
            if action is None:
                continue
            result = self.step(action)
            if result.applicable:
                found.append(action)
            if result.terminated or result.truncated:
                break
        self.reset()
        return found

    @property
    def description(self) -> str:
        """ScienceWorld's description of the task variation."""
        return self._session.description

    def close(self) -> None:
        """Stop the simulators' JVMs (the environment cannot be used afterwards)."""
        self._session.close()
        if self._replica is not None:
            self._replica.close()

    def __enter__(self) -> LabEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

