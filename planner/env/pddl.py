"""Any STRIPS PDDL domain as a real environment, through pyperplan.

Facts and actions use PDDL's Lisp notation: ``"(on a b)"``, ``"(unstack a d)"``. The candidate
actions are all type-correct groundings of the domain's operators, at every state; which of
them apply at an imagined state is the world model's question, not the environment's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pyperplan import grounding
from pyperplan.pddl.parser import Parser
from pyperplan.pddl.pddl import Domain
from pyperplan.task import Operator, Task

from planner.env.base import StepResult
from planner.errors import ConfigError, DomainError, InapplicableActionError, UnknownActionError
from planner.types import Action, FactGoal, Prediction, State

GOAL_REWARD = 1.0
"""Reward of the step that reaches the goal; every other step earns 0."""


def normalize_action(text: str) -> str:
    """Canonical Lisp form of an action string: ``" ( Unstack  A d)"`` → ``"(unstack a d)"``."""
    inner = text.strip()
    if inner.startswith("(") and inner.endswith(")"):
        inner = inner[1:-1]
    return "(" + " ".join(inner.lower().split()) + ")"


@dataclass(frozen=True, slots=True)
class GroundTask:
    """A grounded STRIPS task.

    Attributes:
        name: the problem's name.
        domain_name: the domain's name.
        objects: object names, sorted.
        predicates: predicate name → arity.
        init: the initial state (all facts, static ones included).
        goal: the goal facts.
        operators: ground action name → pyperplan operator.
        relevant_facts: every ground fact the task can reach or mention.
        pyperplan_task: pyperplan's grounded task.
        domain: pyperplan's parsed (lifted) domain: schemas with their preconditions and effects.
    """

    name: str
    domain_name: str
    objects: tuple[str, ...]
    predicates: MappingProxyType[str, int]
    init: State
    goal: FactGoal
    operators: MappingProxyType[str, Operator]
    relevant_facts: frozenset[str]
    pyperplan_task: Task
    domain: Domain


def read_pddl_file(path: str | Path, what: str) -> str:
    """The text of a PDDL file; :class:`DomainError` naming ``what`` and the path if unreadable."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DomainError(f"{what} file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DomainError(f"cannot read {what} file {p}: {exc}") from None


@contextlib.contextmanager
def _quiet_pyperplan() -> Iterator[None]:
    """pyperplan logs at INFO level and prints on some errors; keep both quiet."""
    root = logging.getLogger()
    was_disabled, root.disabled = root.disabled, True
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.disabled = was_disabled


def parse_domain(domain_text: str, *, source: str = "<domain>") -> Domain:
    """pyperplan's parsed (lifted) domain of PDDL text.

    Raises :class:`DomainError` naming ``source`` and the parser's complaint.
    """
    parser = Parser(None)
    parser.domInput = domain_text
    try:
        with _quiet_pyperplan():
            return parser.parse_domain(read_from_file=False)
    except Exception as exc:  # pyperplan raises ValueError, ParseError, SemanticError, KeyError
        raise DomainError(f"invalid PDDL domain in {source}: {type(exc).__name__}: {exc}") from None


def ground_task(domain_text: str, problem_text: str, *, source: str = "<text>") -> GroundTask:
    """Parse and ground a STRIPS domain and problem given as PDDL text.

    Raises :class:`DomainError` naming ``source`` and the parser's complaint.
    """
    domain = parse_domain(domain_text, source=source)
    parser = Parser(None)
    parser.probInput = problem_text
    try:
        with _quiet_pyperplan():
            problem = parser.parse_problem(domain, read_from_file=False)
            task = grounding.ground(
                problem, remove_statics_from_initial_state=False, remove_irrelevant_operators=False
            )
    except Exception as exc:  # pyperplan raises ValueError, ParseError, SemanticError, KeyError
        raise DomainError(f"invalid PDDL in {source}: {type(exc).__name__}: {exc}") from None
    predicates = {name: len(pred.signature) for name, pred in domain.predicates.items()}
    operators = {op.name: op for op in sorted(task.operators, key=lambda o: o.name)}
    if not operators:
        raise DomainError(f"{source}: the domain has no ground actions for this problem")
    return GroundTask(
        name=task.name,
        domain_name=domain.name,
        objects=tuple(sorted(problem.objects)),
        predicates=MappingProxyType(predicates),
        init=State.from_facts(task.initial_state),
        goal=FactGoal(frozenset(task.goals)),
        operators=MappingProxyType(operators),
        relevant_facts=frozenset(task.facts),
        pyperplan_task=task,
        domain=domain,
    )


def domain_schemas(domain_text: str, *, source: str = "<domain>") -> tuple[str, dict[str, int], dict[str, int]]:
    """(domain name, predicate → arity, action → arity) of a PDDL domain."""
    domain = parse_domain(domain_text, source=source)
    predicates = {name: len(p.signature) for name, p in domain.predicates.items()}
    actions = {name: len(a.signature) for name, a in domain.actions.items()}
    return domain.name, predicates, actions


class PDDLEnvironment:
    """A STRIPS PDDL problem as a real, steppable environment.

    Args:
        domain: path of the domain file.
        problem: path of the problem file.
        strict: raise :class:`InapplicableActionError` on an inapplicable action instead of
            reporting it in ``info`` and leaving the state unchanged.
        max_steps: truncate the episode after this many steps (``None``: never).
    """

    def __init__(
        self,
        domain: str | Path,
        problem: str | Path,
        *,
        strict: bool = False,
        max_steps: int | None = None,
    ) -> None:
        self.domain_path = Path(domain)
        self.problem_path = Path(problem)
        self.domain_text = read_pddl_file(domain, "domain")
        self.problem_text = read_pddl_file(problem, "problem")
        self.task = ground_task(
            self.domain_text, self.problem_text, source=f"{self.domain_path} / {self.problem_path}"
        )
        self.strict = strict
        self.max_steps = max_steps
        self._actions = tuple(Action(name) for name in self.task.operators)
        self._state = self.task.init
        self._steps = 0

    # -- the Environment protocol ---------------------------------------------------------
    @property
    def goal(self) -> FactGoal:
        return self.task.goal

    @property
    def state(self) -> State:
        """The current real state."""
        return self._state

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        """Return to the problem's initial state (PDDL problems are deterministic; ``seed``
        is accepted for the protocol and ignored)."""
        self._state = self.task.init
        self._steps = 0
        return self._state, {"problem": self.task.name, "domain": self.task.domain_name}

    def step(self, action: Action) -> StepResult:
        """Apply ``action`` to the current state.

        Raises :class:`UnknownActionError` for an action that is no grounding of the domain.
        """
        pred = self.simulate(self._state, action)
        if not pred.applicable and self.strict:
            raise InapplicableActionError(
                f"action {action} is not applicable: {self.why_inapplicable(self._state, action)}"
            )
        info: dict[str, Any] = {}
        if not pred.applicable:
            info["reason"] = self.why_inapplicable(self._state, action)
        self._state = pred.next_state
        self._steps += 1
        truncated = self.max_steps is not None and self._steps >= self.max_steps and not pred.done
        return StepResult(
            state=pred.next_state,
            reward=pred.reward,
            terminated=pred.done,
            truncated=truncated,
            info=MappingProxyType(info),
            applicable=pred.applicable,
        )

    def candidate_actions(self, state: State) -> Sequence[Action]:
        """All type-correct groundings of the domain's operators, sorted by name."""
        return self._actions

    # -- the Simulator protocol -----------------------------------------------------------
    def simulate(self, state: State, action: Action) -> Prediction:
        """Exact outcome of ``action`` at ``state``; never changes the environment."""
        op = self.operator(action)
        if not op.preconditions <= state.facts:
            return Prediction(applicable=False, next_state=state, reward=0.0, done=False)
        nxt = State((state.facts - op.del_effects) | op.add_effects)
        done = self.task.goal.satisfied(nxt)
        return Prediction(
            applicable=True, next_state=nxt, reward=GOAL_REWARD if done else 0.0, done=done
        )

    # -- helpers --------------------------------------------------------------------------
    def operator(self, action: Action | str) -> Operator:
        """The ground operator of ``action``; :class:`UnknownActionError` when there is none."""
        name = action.name if isinstance(action, Action) else action
        op = self.task.operators.get(name) or self.task.operators.get(normalize_action(name))
        if op is None:
            examples = ", ".join(list(self.task.operators)[:3])
            raise UnknownActionError(
                f"unknown action {name!r}: not a grounding of the domain's operators "
                f"(for example {examples})"
            )
        return op

    def parse_action(self, text: str) -> Action:
        """The action named by ``text`` (case and spacing are forgiven)."""
        return Action(self.operator(text).name)

    def applicable_actions(self, state: State) -> list[Action]:
        """The candidate actions whose preconditions hold at ``state`` (the simulator's
        answer, for data collection and tests; the planner asks its world model instead)."""
        return [a for a in self._actions if self.task.operators[a.name].preconditions <= state.facts]

    def random_walk(self, state: State, steps: int, rng: random.Random) -> list[State]:
        """``state`` and the states of ``steps`` random applicable actions after it."""
        states = [state]
        for _ in range(steps):
            state = self.simulate(state, rng.choice(self.applicable_actions(state))).next_state
            states.append(state)
        return states

    def why_inapplicable(self, state: State, action: Action) -> str:
        missing = sorted(self.operator(action).preconditions - state.facts)
        return "precondition not satisfied: missing " + ", ".join(missing)

    def distance_heuristic(self, name: str = "ff") -> Callable[[State], float]:
        """A domain-knowledge estimate of the number of steps to the goal.

        ``name`` is one of ``"ff"``, ``"add"``, ``"max"``, ``"lmcut"`` (pyperplan's relaxation
        heuristics over this task). It reads only the state it is given, so it is safe to call
        on imagined states; it never consults the real environment.
        """
        from pyperplan.heuristics.lm_cut import LmCutHeuristic
        from pyperplan.heuristics.relaxation import (
            hAddHeuristic,
            hFFHeuristic,
            hMaxHeuristic,
        )
        from pyperplan.search.searchspace import make_root_node

        classes = {"ff": hFFHeuristic, "add": hAddHeuristic, "max": hMaxHeuristic,
                   "lmcut": LmCutHeuristic}
        if name not in classes:
            raise ConfigError(f"unknown heuristic {name!r}; choose one of {sorted(classes)}")
        h = classes[name](self.task.pyperplan_task)
        relevant = self.task.relevant_facts

        def distance(state: State) -> float:
            return float(h(make_root_node(frozenset(state.facts & relevant))))

        return distance

    def optimal_plan(self) -> list[Action] | None:
        """An optimal plan from the initial state (A* with LM-cut); ``None`` if unsolvable."""
        from pyperplan.heuristics.lm_cut import LmCutHeuristic
        from pyperplan.search.a_star import astar_search

        task = self.task.pyperplan_task
        logging.getLogger().disabled, was_disabled = True, logging.getLogger().disabled
        try:
            solution = astar_search(task, LmCutHeuristic(task))
        finally:
            logging.getLogger().disabled = was_disabled
        if solution is None:
            return None
        return [Action(op.name) for op in solution]
