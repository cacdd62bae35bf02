"""Any PDDL domain as a real environment: STRIPS (typed or not) through pyperplan, and domains
beyond STRIPS (negative and disjunctive preconditions, equality, quantifiers, conditional
effects) through :mod:`planner.env.adl` (the ``pddl`` extra).

Which grounder a domain gets is decided from its text (:func:`planner.env.adl.needs_rich_grounder`):
a domain whose actions use a construct beyond STRIPS needs the rich one; one that only declares
such ``:requirements`` gets it when the extra is installed and pyperplan otherwise (the same
ground actions). Everything below works for both: a task grounded beyond STRIPS has
:attr:`GroundTask.features` set, :class:`~planner.env.adl.AdlOperator` s as operators, a
delete relaxation as ``pyperplan_task`` (for heuristics) and the STRIPS part of its domain as
``domain``.

Facts and actions use PDDL's Lisp notation: ``"(on a b)"``, ``"(unstack a d)"``. The candidate
actions are all type-correct groundings of the domain's operators, at every state; which of
them apply at an imagined state is the world model's question, not the environment's.

Problems are checked against their domain before grounding (every ``:init`` and ``:goal`` atom
names a declared predicate with its arity and declared objects or constants), and grounding is
refused when it would be too large (:data:`MAX_GROUND_ACTIONS` and the bounds beside it). Every
error message quoting the input is one line of at most :data:`MAX_QUOTE` characters.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pyperplan import grounding
from pyperplan.pddl.parser import Parser, parse_lisp_iterator, parse_problem_def
from pyperplan.pddl.pddl import Domain, Problem, Type
from pyperplan.pddl.tree_visitor import TraversePDDLProblem
from pyperplan.task import Operator, Task

from planner.env.base import StepResult
from planner.errors import ConfigError, DomainError, InapplicableActionError, UnknownActionError
from planner.types import Action, FactGoal, Prediction, State

GOAL_REWARD = 1.0
"""Reward of the step that reaches the goal; every other step earns 0."""
MAX_QUOTE = 300
"""Longest piece of input (characters) quoted in an error message; longer ones end in "…"."""
MAX_GROUND_ACTIONS = 100_000
"""Most ground actions a problem may have, as estimated before grounding: Σ over operators of
the product, over their parameters, of the number of objects (and constants) of the
parameter's type. 150 Blocksworld blocks give 45,300; 223 give 99,904 (grounded in about 1 s
on one core); 200,000 objects would give 8·10¹⁰. Every ground action is a candidate at every
state."""
MAX_GROUND_ATOMS = 2_000_000
"""Most ground atoms the grounder may build: Σ over operators of the ground actions times the
atoms of the operator's precondition and effects (Blocksworld: about 8 per action; at the bound,
grounding takes about 2 s on one core)."""
MAX_STATIC_CHECKS = 20_000_000
"""Most initial-state scans the grounder may make to prune parameters by static preconditions
(predicates no action changes): Σ over operators, parameters and static preconditions naming
the parameter, of the parameter's objects times the initial facts (about 0.1 µs each: 2 s at
the bound)."""


def normalize_action(text: str) -> str:
    """Canonical Lisp form of an action string: ``" ( Unstack  A d)"`` → ``"(unstack a d)"``."""
    inner = text.strip()
    if inner.startswith("(") and inner.endswith(")"):
        inner = inner[1:-1]
    return "(" + " ".join(inner.lower().split()) + ")"


@dataclass(frozen=True, slots=True)
class GroundTask:
    """A grounded PDDL task.

    Attributes:
        name: the problem's name.
        domain_name: the domain's name.
        objects: object names, sorted.
        predicates: predicate name → arity.
        init: the initial state (all facts, static ones included).
        goal: the goal facts.
        operators: ground action name → pyperplan operator (beyond STRIPS: an
            :class:`~planner.env.adl.AdlOperator`; both have ``applicable(facts)`` and
            ``apply(facts)``).
        relevant_facts: every ground fact the task can reach or mention.
        pyperplan_task: pyperplan's grounded task (beyond STRIPS: its delete relaxation, for
            heuristics only; see :func:`~planner.env.adl.relaxed_task`).
        domain: pyperplan's parsed (lifted) domain: schemas with their preconditions and effects
            (beyond STRIPS: the STRIPS part of each operator, see
            :func:`~planner.env.adl.strips_projection`).
        features: the requirements beyond STRIPS that made the task need the rich grounder
            (``":conditional-effects"``, …); empty for a task grounded by pyperplan.
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
    features: tuple[str, ...] = ()

    @property
    def is_strips(self) -> bool:
        """True when pyperplan grounded the task (its operators, ``pyperplan_task`` and
        ``domain`` are exact); False beyond STRIPS."""
        return not self.features


def quote(text: object, limit: int = MAX_QUOTE) -> str:
    """``text`` on one line (runs of whitespace made one space), cut to ``limit`` characters
    with a final "…" when longer: for quoting input in an error message."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def read_pddl_file(path: str | Path, what: str) -> str:
    """The text of a PDDL file; :class:`DomainError` naming ``what`` and the path if unreadable."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        if not text.strip():
            raise DomainError(f"{what} file {p} is empty")
        return text
    except FileNotFoundError:
        raise DomainError(f"{what} file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DomainError(f"cannot read {what} file {p}: {quote(exc)}") from None


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
    """pyperplan's parsed (lifted) domain of PDDL text; for a domain beyond STRIPS, the STRIPS
    part of it (:func:`planner.env.adl.parse_rich_domain`).

    Raises :class:`DomainError` naming ``source`` and the parser's complaint.
    """
    from planner.env import adl

    features = adl.needs_rich_grounder(domain_text)
    if features:
        projection: Domain = adl.parse_rich_domain(domain_text, features=features, source=source)
        return projection
    return _parse_pyperplan_domain(domain_text, source=source)


def _parse_pyperplan_domain(domain_text: str, *, source: str) -> Domain:
    """pyperplan's parsed domain; :class:`DomainError` naming ``source`` for bad text."""
    parser = Parser(None)
    parser.domInput = domain_text
    try:
        with _quiet_pyperplan():
            domain = parser.parse_domain(read_from_file=False)
    except Exception as exc:  # pyperplan raises ValueError, ParseError, SemanticError, KeyError
        raise DomainError(f"invalid PDDL domain in {source}: {type(exc).__name__}: {quote(exc)}") from None
    _check_type_hierarchy(domain, source=source)
    return domain


def _check_type_hierarchy(domain: Domain, *, source: str) -> None:
    """:class:`DomainError` when a type is its own ancestor (grounding would never end)."""
    for start in domain.types.values():
        seen: set[int] = set()
        kind: Type | None = start
        while kind is not None:
            if id(kind) in seen:
                raise DomainError(f"invalid PDDL domain in {source}: type {quote(start.name)} is its own "
                                  "ancestor (the :types hierarchy has a cycle)")
            seen.add(id(kind))
            kind = kind.parent


def ground_task(domain_text: str, problem_text: str, *, source: str = "<text>",
                problem_source: str | None = None, domain_source: str | None = None) -> GroundTask:
    """Parse, check and ground a domain and problem given as PDDL text: STRIPS through
    pyperplan, a domain beyond STRIPS through :func:`planner.env.adl.ground_rich_task`.

    Raises :class:`DomainError` naming ``source`` and the parser's complaint; for a problem
    that does not fit its domain (an atom with an undeclared predicate, a wrong number of
    arguments or an undeclared object) or whose grounding would be too large (see
    :func:`check_grounding_size`), naming ``problem_source`` (default ``source``). Beyond
    STRIPS, errors in the domain name ``domain_source`` (default ``source``), and a missing
    ``pddl`` extra raises :class:`ConfigError` naming the requirement that needs it.
    """
    from planner.env import adl

    features = adl.needs_rich_grounder(domain_text)
    if features:
        return adl.ground_rich_task(domain_text, problem_text, features=features, source=domain_source or source,
                                    problem_source=problem_source or source)
    domain = _parse_pyperplan_domain(domain_text, source=source)
    where = problem_source or source
    problem = _parse_problem(domain, problem_text, source=where)
    check_grounding_size(domain, problem, source=where)
    try:
        with _quiet_pyperplan():
            task = grounding.ground(
                problem, remove_statics_from_initial_state=False, remove_irrelevant_operators=False
            )
    except Exception as exc:  # pyperplan raises ValueError, ParseError, SemanticError, KeyError
        raise DomainError(f"invalid PDDL in {where}: {type(exc).__name__}: {quote(exc)}") from None
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


def _parse_problem(domain: Domain, problem_text: str, *, source: str) -> Problem:
    """pyperplan's problem of PDDL text, after :func:`_check_atoms` (:class:`DomainError`)."""
    try:
        with _quiet_pyperplan():
            tree = parse_problem_def(parse_lisp_iterator(problem_text.split("\n")))
    except Exception as exc:  # pyperplan raises ValueError, ParseError, RecursionError
        raise DomainError(f"invalid PDDL in {source}: {type(exc).__name__}: {quote(exc)}") from None
    _check_atoms(tree, domain, source=source)
    visitor = TraversePDDLProblem(domain)
    try:
        with _quiet_pyperplan():
            tree.accept(visitor)
    except Exception as exc:  # pyperplan raises SemanticError
        raise DomainError(f"invalid PDDL in {source}: {type(exc).__name__}: {quote(exc)}") from None
    problem: Problem = visitor.get_problem()
    return problem


def _check_atoms(tree: Any, domain: Domain, *, source: str) -> None:
    """:class:`DomainError` naming the first ``:init`` or ``:goal`` atom of the problem's parse
    tree that names an undeclared predicate, has the wrong number of arguments or names an
    object that is neither in ``:objects`` nor a domain constant."""
    if tree.domainName != domain.name:
        raise DomainError(f"invalid PDDL in {source}: the problem is for domain {quote(tree.domainName)}, "
                          f"not {quote(domain.name)}")
    objects = {obj.name for obj in tree.objects} | set(domain.constants)
    for atom in tree.init.predicates:
        _check_atom(":init", atom.name, list(atom.parameters), domain, objects, source=source)
    formula = tree.goal.formula
    for part in formula.children if formula.key == "and" else [formula]:
        args = [child.key for child in part.children]
        if not isinstance(part.key, str) or any(not isinstance(a, str) or a.startswith("?") or child.children
                                                for a, child in zip(args, part.children, strict=True)):
            raise DomainError(f"invalid PDDL in {source}: :goal part {quote(_render_formula(part))} is not a "
                              "ground atom (a goal is a conjunction of ground atoms)")
        _check_atom(":goal", part.key, args, domain, objects, source=source)


def _check_atom(where: str, name: str, args: list[str], domain: Domain, objects: set[str], *, source: str) -> None:
    """:class:`DomainError` unless the atom ``(name args…)`` fits ``domain`` and ``objects``."""
    atom = quote("(" + " ".join([name, *args]) + ")")
    declared = domain.predicates.get(name)
    if declared is None:
        raise DomainError(f"invalid PDDL in {source}: {where} atom {atom} names predicate {quote(name, 80)}, "
                          "which the domain does not declare")
    if len(args) != len(declared.signature):
        raise DomainError(f"invalid PDDL in {source}: {where} atom {atom} has {len(args)} argument(s); "
                          f"predicate {name} takes {len(declared.signature)}")
    unknown = [a for a in args if a not in objects]
    if unknown:
        raise DomainError(f"invalid PDDL in {source}: {where} atom {atom} names object {quote(unknown[0], 80)}, "
                          "which is neither in :objects nor a domain constant")


def _render_formula(formula: Any) -> str:
    """PDDL text of a goal formula from pyperplan's parse tree (for messages; depth-limited)."""
    parts: list[str] = []
    stack: list[Any] = [formula]
    while stack and len(parts) < MAX_QUOTE:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        key = getattr(item.key, "name", item.key)  # a variable's key is an object with a name
        if not item.children:
            parts.append(str(key))
            continue
        stack.append(")")
        stack.extend(reversed(item.children))
        parts.append(f"({key}")
    return " ".join(parts).replace(" )", ")")


def _type_counts(objects: Mapping[str, Type]) -> dict[int, int]:
    """Number of objects of each type (by ``id``), an object counting for its type and every
    ancestor of it."""
    counts: dict[int, int] = {}
    for kind in objects.values():
        seen: set[int] = set()
        node: Type | None = kind
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            counts[id(node)] = counts.get(id(node), 0) + 1
            node = node.parent
    return counts


@dataclass(frozen=True, slots=True)
class GroundingSize:
    """What grounding a problem would build, estimated from its counts alone (upper bounds).

    Attributes:
        actions: ground actions (Σ over operators of the product of the numbers of objects of
            the parameters' types; a parameter under a static unary precondition, such as
            ``(ball ?b)`` in an untyped domain, counts only the objects it holds of).
        atoms: ground atoms of their preconditions and effects.
        static_checks: initial-state facts scanned to prune parameters by static
            preconditions.
    """

    actions: int
    atoms: int
    static_checks: int


def grounding_size(domain: Domain, problem: Problem) -> GroundingSize:
    """Estimate, without grounding, what grounding ``problem`` over ``domain`` would build."""
    objects = {**problem.objects, **domain.constants}
    counts = _type_counts(objects)
    statics = {p.name for p in domain.predicates.values()} - {
        atom.name for action in domain.actions.values() for atom in action.effect.addlist | action.effect.dellist}
    n_init = len(problem.initial_state)
    holders: dict[str, set[str]] = {}  # static unary predicate → the objects it holds of initially
    for atom in problem.initial_state:
        if atom.name in statics and len(atom.signature) == 1:
            holders.setdefault(atom.name, set()).add(atom.signature[0][0])
    actions = atoms = checks = 0
    for action in domain.actions.values():
        sizes = {name: min(len(objects), sum(counts.get(id(t), 0) for t in types)) for name, types in action.signature}
        narrowed = dict(sizes)  # a static unary precondition such as (ball ?b) narrows ?b to its holders
        for atom in action.precondition:
            var = atom.signature[0][0] if atom.name in statics and len(atom.signature) == 1 else None
            if var in narrowed:
                narrowed[var] = min(narrowed[var], len(holders.get(atom.name, ())))
        ground = math.prod(narrowed.values())
        actions += ground
        atoms += ground * (len(action.precondition) + len(action.effect.addlist) + len(action.effect.dellist))
        for atom in action.precondition:
            if atom.name in statics:
                checks += sum(sizes.get(var, 0) for var in {v for v, _ in atom.signature}) * n_init
    return GroundingSize(actions=actions, atoms=atoms, static_checks=checks)


def check_grounding_size(domain: Domain, problem: Problem, *, source: str) -> GroundingSize:
    """:func:`grounding_size`, or :class:`DomainError` naming ``source`` and the estimate when
    it exceeds :data:`MAX_GROUND_ACTIONS`, :data:`MAX_GROUND_ATOMS` or :data:`MAX_STATIC_CHECKS`."""
    size = grounding_size(domain, problem)
    n_objects = len(problem.objects)
    for value, bound, what in ((size.actions, MAX_GROUND_ACTIONS, "ground actions"),
                               (size.atoms, MAX_GROUND_ATOMS, "ground precondition and effect atoms"),
                               (size.static_checks, MAX_STATIC_CHECKS, "initial-state scans for static preconditions")):
        if value > bound:
            raise DomainError(f"problem too large in {source}: grounding its {n_objects:,} objects would build about "
                              f"{value:,} {what}, more than the {bound:,} allowed")
    return size


def domain_schemas(domain_text: str, *, source: str = "<domain>") -> tuple[str, dict[str, int], dict[str, int]]:
    """(domain name, predicate → arity, action → arity) of a PDDL domain."""
    domain = parse_domain(domain_text, source=source)
    predicates = {name: len(p.signature) for name, p in domain.predicates.items()}
    actions = {name: len(a.signature) for name, a in domain.actions.items()}
    return domain.name, predicates, actions


class PDDLEnvironment:
    """A PDDL problem as a real, steppable environment (STRIPS, typed or not, and beyond: see
    the module's description).

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
            self.domain_text, self.problem_text, source=f"{self.domain_path} / {self.problem_path}",
            problem_source=str(self.problem_path), domain_source=str(self.domain_path),
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
        if not op.applicable(state.facts):
            return Prediction(applicable=False, next_state=state, reward=0.0, done=False)
        nxt = State(op.apply(state.facts))
        done = self.task.goal.satisfied(nxt)
        return Prediction(
            applicable=True, next_state=nxt, reward=GOAL_REWARD if done else 0.0, done=done
        )

    # -- helpers --------------------------------------------------------------------------
    def operator(self, action: Action | str) -> Operator:
        """The ground operator of ``action`` (beyond STRIPS an
        :class:`~planner.env.adl.AdlOperator`, whose ``preconditions`` are only the atoms its
        precondition requires: decide with ``applicable``); :class:`UnknownActionError` when
        there is none."""
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
        operators = self.task.operators
        return [a for a in self._actions if operators[a.name].applicable(state.facts)]

    def random_walk(self, state: State, steps: int, rng: random.Random) -> list[State]:
        """``state`` and the states of ``steps`` random applicable actions after it."""
        states = [state]
        for _ in range(steps):
            state = self.simulate(state, rng.choice(self.applicable_actions(state))).next_state
            states.append(state)
        return states

    def why_inapplicable(self, state: State, action: Action) -> str:
        """Why ``action``'s precondition fails at ``state``, on one line."""
        op = self.operator(action)
        if not self.task.is_strips:
            return "precondition not satisfied: " + "; ".join(op.precondition.unmet(state.facts))
        missing = sorted(op.preconditions - state.facts)
        return "precondition not satisfied: missing " + ", ".join(missing)

    def distance_heuristic(self, name: str = "ff") -> Callable[[State], float]:
        """A domain-knowledge estimate of the number of steps to the goal.

        ``name`` is one of ``"ff"``, ``"add"``, ``"max"``, ``"lmcut"`` (pyperplan's relaxation
        heuristics over this task; beyond STRIPS over its delete relaxation, which drops negated
        atoms and disjunctions and splits conditional effects). It reads only the state it is
        given, so it is safe to call on imagined states; it never consults the real environment.
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
        """An optimal plan from the initial state (A* with LM-cut; beyond STRIPS A* with hmax,
        :func:`planner.env.adl.shortest_plan`); ``None`` if unsolvable."""
        if not self.task.is_strips:
            from planner.env.adl import shortest_plan

            names = shortest_plan(self.task)
            return None if names is None else [Action(name) for name in names]
        from pyperplan.heuristics.lm_cut import LmCutHeuristic
        from pyperplan.search.a_star import astar_search

        task = self.task.pyperplan_task
        if not task.initial_state <= task.facts:  # static facts: pyperplan's heuristics know none of them
            task = Task(task.name, task.facts, task.initial_state & task.facts, task.goals, task.operators)
        logging.getLogger().disabled, was_disabled = True, logging.getLogger().disabled
        try:
            solution = astar_search(task, LmCutHeuristic(task))
        finally:
            logging.getLogger().disabled = was_disabled
        if solution is None:
            return None
        return [Action(op.name) for op in solution]


def environment_from_text(domain_text: str, problem_text: str, *, name: str = "pddl",
                          max_steps: int | None = None) -> PDDLEnvironment:
    """A :class:`PDDLEnvironment` of PDDL texts (generated problems): both are written to a
    private temporary folder (``<name>.pddl`` and ``problem.pddl``) that is removed when the
    environment is garbage-collected. ``max_steps``: truncate after this many real steps."""
    import shutil
    import tempfile
    import weakref

    from planner.io import atomic_write_text

    folder = Path(tempfile.mkdtemp(prefix=f"planner-{name}-"))
    try:
        domain, problem = folder / f"{name}.pddl", folder / "problem.pddl"
        atomic_write_text(domain, domain_text)
        atomic_write_text(problem, problem_text)
        env = PDDLEnvironment(domain, problem, max_steps=max_steps)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(env, shutil.rmtree, folder, True)
    return env
