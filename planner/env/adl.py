"""PDDL beyond STRIPS: negative and disjunctive preconditions, equality, existential and
universal quantifiers and conditional effects (the ADL subset of PDDL 1.2 and 2.1, typed or
not).

unified-planning's PDDL reader (the ``pddl`` extra: ``pip install -e '.[pddl]'``) parses and
type-checks the domain and problem; this module grounds the lifted model it returns and keeps
nothing of the package at run time: a ground action is an :class:`AdlOperator` whose
precondition is a :class:`Condition` (positive atoms, negated atoms and disjunctions, with
quantifiers expanded over the problem's objects and static atoms and equalities decided) and
whose effects are unconditional add and delete sets plus :class:`ConditionalEffect` s. Applying
one follows PDDL: every effect whose condition holds in the state before the step takes part,
deletes first, then adds.

:func:`needs_rich_grounder` tells from a domain's text whether it goes here: a construct
beyond STRIPS in an action's precondition or effect (then the extra is needed), or only a
``:requirements`` entry among :data:`RICH_REQUIREMENTS` (then it goes here when the extra is
installed, else to pyperplan, which grounds such a domain to the same actions).
:class:`~planner.env.pddl.PDDLEnvironment` grounds every other domain (``:strips``,
``:typing``) through pyperplan as before.

Candidate actions are the groundings of each operator over objects of its parameters' types
whose precondition is not false by the initial values of static predicates (those no action
changes) and by equality alone, as pyperplan's grounding does for STRIPS. Grounding is bounded
(:data:`~planner.env.pddl.MAX_GROUND_ACTIONS`, :data:`MAX_BINDINGS`,
:data:`~planner.env.pddl.MAX_GROUND_ATOMS`); every error is one line naming the file and the
bad value.

Not supported: numeric fluents and action costs, derived predicates, durative actions,
``either`` types (the reader refuses them) and names shared by a type, a predicate and an
object (the reader refuses those too).
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import importlib.util
import itertools
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from planner.env.pddl import MAX_GROUND_ACTIONS, MAX_GROUND_ATOMS, GroundTask, quote
from planner.errors import ConfigError, DomainError
from planner.types import FactGoal, State

EXTRA = "pddl"
"""The optional dependency group that installs the rich grounder's parser."""
INSTALL_HINT = "pip install -e '.[pddl]'"
"""How to install :data:`EXTRA` from a checkout."""
RICH_REQUIREMENTS = (
    ":adl", ":conditional-effects", ":disjunctive-preconditions", ":equality", ":existential-preconditions",
    ":negative-preconditions", ":quantified-preconditions", ":universal-preconditions",
)
"""``:requirements`` that send a domain to this grounder. ``:strips`` and ``:typing`` alone stay
with pyperplan, which handles both."""
MAX_BINDINGS = 2_000_000
"""Most partial parameter bindings the grounder may try (about 1 µs each: 2 s at the bound),
counting every object tried for every parameter of every operator after static pruning."""
MAX_SEARCH_STATES = 200_000
"""Most states :func:`shortest_plan` may expand before giving up."""

_PRECONDITION_FEATURES = {
    "not": ":negative-preconditions", "or": ":disjunctive-preconditions", "imply": ":disjunctive-preconditions",
    "exists": ":existential-preconditions", "forall": ":universal-preconditions", "=": ":equality",
}
_EFFECT_FEATURES = {"forall": ":conditional-effects", "when": ":conditional-effects"}
_SECTION_FEATURES = {":precondition": _PRECONDITION_FEATURES, ":effect": _EFFECT_FEATURES}
_TOKEN = re.compile(r"[()]|[^\s()]+")
_COMMENT = re.compile(r";[^\n]*")


# -- ground conditions and operators ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Condition:
    """A ground formula in negation normal form: a conjunction of atoms that must hold, atoms
    that must not hold and disjunctions (each a tuple of conditions, one of which must hold).

    ``Condition()`` is true in every state. Facts are Lisp-form strings, ``"(at o1 home)"``.
    """

    positive: frozenset[str] = frozenset()
    negative: frozenset[str] = frozenset()
    alternatives: tuple[tuple[Condition, ...], ...] = ()

    @property
    def is_true(self) -> bool:
        """True when the condition holds in every state (it requires nothing)."""
        return not (self.positive or self.negative or self.alternatives)

    def holds(self, facts: AbstractSet[str]) -> bool:
        """Whether the condition holds in the state whose true facts are ``facts``."""
        return (self.positive <= facts and self.negative.isdisjoint(facts)
                and all(any(option.holds(facts) for option in options) for options in self.alternatives))

    def unmet(self, facts: AbstractSet[str]) -> list[str]:
        """What does not hold in ``facts``, one part each (``"missing (a)"``, ``"holds (b)"``,
        ``"none of (or …)"``), sorted; empty when the condition holds."""
        parts = [f"missing {f}" for f in sorted(self.positive - facts)]
        parts += [f"holds {f}" for f in sorted(self.negative & facts)]
        parts += [f"none of {_render_or(options)}" for options in self.alternatives
                  if not any(option.holds(facts) for option in options)]
        return parts

    def atoms(self) -> frozenset[str]:
        """Every fact the condition mentions."""
        found = set(self.positive | self.negative)
        for options in self.alternatives:
            for option in options:
                found |= option.atoms()
        return frozenset(found)

    def __str__(self) -> str:
        parts = sorted(self.positive) + [f"(not {f})" for f in sorted(self.negative)]
        parts += [_render_or(options) for options in self.alternatives]
        if len(parts) == 1:
            return parts[0]
        return "(and " + " ".join(parts) + ")"


TRUE = Condition()
"""The condition that always holds."""


def _render_or(options: Sequence[Condition]) -> str:
    return "(or " + " ".join(str(o) for o in options) + ")"


@dataclass(frozen=True, slots=True)
class ConditionalEffect:
    """Facts a ground action adds and deletes when ``condition`` holds before the step."""

    condition: Condition
    add: frozenset[str] = frozenset()
    delete: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AdlOperator:
    """A ground action of a rich domain.

    It answers what pyperplan's ground ``Operator`` answers (``name``, ``preconditions``,
    ``add_effects``, ``del_effects``, ``applicable``, ``apply``), so code written for STRIPS
    operators keeps working; ``preconditions`` is only the positive part of the precondition
    (necessary, not sufficient): use :meth:`applicable` to decide.

    Attributes:
        name: the action, ``"(move home office)"``.
        precondition: what must hold for the action to apply.
        add_effects: facts it always adds.
        del_effects: facts it always deletes.
        conditional: effects that take part only when their condition holds.
    """

    name: str
    precondition: Condition
    add_effects: frozenset[str] = frozenset()
    del_effects: frozenset[str] = frozenset()
    conditional: tuple[ConditionalEffect, ...] = ()

    @property
    def preconditions(self) -> frozenset[str]:
        """The atoms the precondition requires to hold (its positive conjuncts)."""
        return self.precondition.positive

    def applicable(self, facts: AbstractSet[str]) -> bool:
        """Whether the precondition holds in the state whose true facts are ``facts``."""
        return self.precondition.holds(facts)

    def apply(self, facts: frozenset[str]) -> frozenset[str]:
        """The facts after the action (its precondition is not checked here)."""
        if not self.conditional:
            return (facts - self.del_effects) | self.add_effects
        add, delete = set(self.add_effects), set(self.del_effects)
        for effect in self.conditional:
            if effect.condition.holds(facts):
                add |= effect.add
                delete |= effect.delete
        return (facts - delete) | add

    def atoms(self) -> frozenset[str]:
        """Every fact the action's precondition and effects mention."""
        found = set(self.precondition.atoms() | self.add_effects | self.del_effects)
        for effect in self.conditional:
            found |= effect.condition.atoms() | effect.add | effect.delete
        return frozenset(found)


@dataclass(frozen=True, slots=True)
class FormulaGoal(FactGoal):
    """A goal beyond a conjunction of atoms (negated atoms, disjunctions).

    ``facts`` holds the atoms every goal state has (for code that reads
    :attr:`FactGoal.facts`); ``condition`` decides.
    """

    condition: Condition = TRUE

    def satisfied(self, state: State) -> bool:
        return self.condition.holds(state.facts)

    def progress(self, state: State) -> float:
        """The share of the goal's conjuncts (atoms, negated atoms, disjunctions) that hold."""
        c = self.condition
        total = len(c.positive) + len(c.negative) + len(c.alternatives)
        if total == 0:
            return 1.0
        met = len(c.positive & state.facts) + len(c.negative - state.facts)
        met += sum(any(o.holds(state.facts) for o in options) for options in c.alternatives)
        return met / total

    def __str__(self) -> str:
        return str(self.condition)


# -- which grounder ---------------------------------------------------------------------------
def read_sexpr(text: str) -> list[Any] | None:
    """The first top-level form of PDDL ``text`` as nested lists of lower-case tokens
    (comments dropped), or ``None`` when the parentheses do not balance."""
    stack: list[list[Any]] = [[]]
    for token in _TOKEN.findall(_COMMENT.sub("", text).lower()):
        if token == "(":
            stack.append([])
        elif token == ")":
            if len(stack) == 1:
                return None
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token)
    top = stack[0]
    if len(stack) != 1 or not top or not isinstance(top[0], list):
        return None
    return top[0]


def _sections(tree: list[Any]) -> Iterator[list[Any]]:
    """The ``(:keyword …)`` parts of a ``(define …)`` form."""
    for part in tree[2:]:
        if isinstance(part, list) and part and isinstance(part[0], str):
            yield part


def _heads(form: Any) -> Iterator[str]:
    """The first token of every list nested in ``form`` (iteratively: any depth)."""
    stack = [form]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            if item and isinstance(item[0], str):
                yield item[0]
            stack.extend(item)


def rich_features(domain_text: str) -> tuple[str, ...]:
    """The requirements (``":conditional-effects"``, …) beyond STRIPS that a domain uses in an
    action's precondition or effect, then those it only declares in ``:requirements``; empty
    for a STRIPS domain (typed or not) or text that does not parse (the STRIPS parser then
    names the error)."""
    used, declared = _features(domain_text)
    return tuple(dict.fromkeys(used + declared))


def _features(domain_text: str) -> tuple[list[str], list[str]]:
    """(requirements beyond STRIPS used in actions, those declared in ``:requirements``)."""
    tree = read_sexpr(domain_text)
    if tree is None or tree[:1] != ["define"]:
        return [], []
    used: list[str] = []
    declared: list[str] = []
    for section in _sections(tree):
        if section[0] == ":requirements":
            declared += [r for r in section[1:] if r in RICH_REQUIREMENTS]
        elif section[0] == ":action":
            items = section[2:]
            for key, value in itertools.pairwise(items):
                table = _SECTION_FEATURES.get(key) if isinstance(key, str) else None
                if table is not None:
                    used += [table[h] for h in _heads(value) if h in table]
    return used, declared


def needs_rich_grounder(domain_text: str) -> tuple[str, ...]:
    """What sends a domain to this module rather than to pyperplan: the features beyond STRIPS
    its actions use (then the ``pddl`` extra is needed), else the ones it only declares when
    the extra is installed (a domain that declares ``:adl`` but uses none of it is STRIPS,
    and pyperplan grounds it to the same actions when the extra is missing); empty for STRIPS."""
    used, declared = _features(domain_text)
    if used:
        return tuple(dict.fromkeys(used + declared))
    if declared and rich_grounder_installed():
        return tuple(dict.fromkeys(declared))
    return ()


def rich_grounder_installed() -> bool:
    """Whether unified-planning (the ``pddl`` extra) can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("unified_planning") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken install
        return False


def _reader_class(feature: str, source: str) -> Any:
    """unified-planning's ``PDDLReader``; :class:`ConfigError` naming the extra when missing."""
    try:
        from unified_planning.io import PDDLReader
    except ImportError:
        raise ConfigError(f"{source} needs {feature}, beyond STRIPS: install the {EXTRA!r} extra "
                          f"({INSTALL_HINT}) for unified-planning's PDDL reader") from None
    return PDDLReader


# -- reading and checking ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _DomainText:
    """What the checks need of a domain, read from its text."""

    name: str
    types: Mapping[str, str | None]
    constants: Mapping[str, str]
    predicates: Mapping[str, int]


def _typed_list(items: Sequence[Any]) -> list[tuple[str, str]]:
    """``a b - t c`` → ``[(a, t), (b, t), (c, object)]`` (an ``either`` type reads as its
    first member)."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    i = 0
    while i < len(items):
        item = items[i]
        if item == "-" and i + 1 < len(items):
            kind = items[i + 1]
            if isinstance(kind, list):
                kind = kind[1] if len(kind) > 1 and isinstance(kind[1], str) else "object"
            out += [(name, kind) for name in pending]
            pending = []
            i += 2
            continue
        if isinstance(item, str):
            pending.append(item)
        i += 1
    return out + [(name, "object") for name in pending]


def _domain_text(tree: list[Any], *, source: str) -> _DomainText:
    """:class:`_DomainText` of a domain's parse tree; :class:`DomainError` for a type that is
    its own ancestor."""
    head = tree[1] if len(tree) > 1 else None
    name = head[1] if isinstance(head, list) and len(head) > 1 and head[0] == "domain" else ""
    types: dict[str, str | None] = {"object": None}
    constants: dict[str, str] = {}
    predicates: dict[str, int] = {}
    for section in _sections(tree):
        if section[0] == ":types":
            for child, parent in _typed_list(section[1:]):
                types[child] = None if child == "object" else ("object" if parent == child else parent)
                types.setdefault(parent, None if parent == "object" else "object")
        elif section[0] == ":constants":
            constants.update(_typed_list(section[1:]))
        elif section[0] == ":predicates":
            for atom in section[1:]:
                if isinstance(atom, list) and atom and isinstance(atom[0], str):
                    predicates[atom[0]] = len(_typed_list(atom[1:]))
    for start in types:
        seen: set[str] = set()
        kind: str | None = start
        while kind is not None:
            if kind in seen:
                raise DomainError(f"invalid PDDL domain in {source}: type {quote(start)} is its own ancestor "
                                  "(the :types hierarchy has a cycle)")
            seen.add(kind)
            kind = types.get(kind)
    return _DomainText(name=name, types=types, constants=constants, predicates=predicates)


def _render(form: Any) -> str:
    if isinstance(form, str):
        return form
    return "(" + " ".join(_render(f) for f in form) + ")"


def _check_problem(domain: _DomainText, tree: list[Any], *, source: str) -> None:
    """:class:`DomainError` naming the first part of the problem's parse tree that does not
    fit ``domain``: another domain's name, an object of an undeclared type, an ``:init`` or
    ``:goal`` atom with an undeclared predicate, the wrong number of arguments or an undeclared
    object (the same messages as the STRIPS checks)."""
    objects = dict(domain.constants)
    init: list[Any] = []
    goal: list[Any] = []
    for section in _sections(tree):
        key = section[0]
        if key == ":domain" and len(section) > 1 and section[1] != domain.name:
            raise DomainError(f"invalid PDDL in {source}: the problem is for domain {quote(section[1])}, "
                              f"not {quote(domain.name)}")
        if key == ":objects":
            for obj, kind in _typed_list(section[1:]):
                if kind not in domain.types:
                    raise DomainError(f"invalid PDDL in {source}: object {quote(obj, 80)} has type {quote(kind, 80)}, "
                                      "which the domain does not declare")
                objects[obj] = kind
        elif key == ":init":
            init = section[1:]
        elif key == ":goal":
            goal = section[1:]
    for atom in init:
        if isinstance(atom, list) and atom and atom[0] not in ("=", "not"):
            _check_atom(":init", atom, domain, objects, set(), source=source)
    stack: list[tuple[Any, frozenset[str]]] = [(g, frozenset()) for g in goal]
    while stack:
        form, bound = stack.pop()
        if not isinstance(form, list) or not form or not isinstance(form[0], str):
            continue
        head = form[0]
        if head in ("and", "or", "not", "imply"):
            stack += [(f, bound) for f in form[1:]]
        elif head in ("exists", "forall") and len(form) == 3 and isinstance(form[1], list):
            variables = _typed_list(form[1])
            for var, kind in variables:
                if kind not in domain.types:
                    raise DomainError(f"invalid PDDL in {source}: :goal variable {quote(var, 80)} has type "
                                      f"{quote(kind, 80)}, which the domain does not declare")
            stack.append((form[2], bound | {v for v, _ in variables}))
        elif head != "=":
            _check_atom(":goal", form, domain, objects, bound, source=source)


def _check_atom(where: str, atom: list[Any], domain: _DomainText, objects: Mapping[str, str],
                bound: AbstractSet[str], *, source: str) -> None:
    name, args = atom[0], atom[1:]
    text = quote(_render(atom))
    arity = domain.predicates.get(name)
    if arity is None:
        raise DomainError(f"invalid PDDL in {source}: {where} atom {text} names predicate {quote(name, 80)}, "
                          "which the domain does not declare")
    if len(args) != arity:
        raise DomainError(f"invalid PDDL in {source}: {where} atom {text} has {len(args)} argument(s); "
                          f"predicate {name} takes {arity}")
    unknown = [a for a in args if not isinstance(a, str) or (a not in objects and a not in bound)]
    if unknown:
        bad = quote(_render(unknown[0]), 80)
        raise DomainError(f"invalid PDDL in {source}: {where} atom {text} names object {bad}, "
                          "which is neither in :objects nor a domain constant")


UNSUPPORTED = (
    ("(:functions", "numeric fluents (:functions)"), ("(increase", "numeric effects (increase)"),
    ("(decrease", "numeric effects (decrease)"), ("(assign", "numeric effects (assign)"),
    ("(:derived", "derived predicates (:derived)"), ("(:durative-action", "durative actions"),
    ("(either", "either types"),
)
"""Constructs the planner does not ground, found in a domain's text, and how errors name them."""


def _check_supported(domain_text: str, *, source: str) -> None:
    """:class:`DomainError` naming the first construct of :data:`UNSUPPORTED` in the domain
    (comments ignored) and its line, before the parser's less telling error."""
    for number, line in enumerate(domain_text.splitlines(), start=1):
        code = re.sub(r"\s+", " ", line.split(";", 1)[0].lower()).replace("( ", "(")
        for token, what in UNSUPPORTED:
            if re.search(re.escape(token) + r"(?![\w-])", code):
                raise DomainError(f"invalid PDDL domain in {source} line {number}: {what} are not supported")


def _read(domain_text: str, problem_text: str | None, *, feature: str, source: str, problem_source: str) -> Any:
    """unified-planning's problem of the texts; :class:`DomainError` naming the file at fault."""
    reader = _reader_class(feature, source)
    _check_supported(domain_text, source=source)
    try:
        return _quiet_parse(reader, domain_text, problem_text)
    except RecursionError:
        raise DomainError(f"invalid PDDL in {source} / {problem_source}: parentheses nested too deep") from None
    except Exception as exc:  # pyparsing errors, SyntaxError, UP's own exceptions
        failure, where = exc, (problem_source if problem_text is not None else source)
    if problem_text is not None:
        try:
            _quiet_parse(reader, domain_text, None)
        except Exception as exc:
            failure, where = exc, source
    what = "PDDL domain" if where == source else "PDDL"
    raise DomainError(f"invalid {what} in {where}: {type(failure).__name__}: {quote(failure)}")


def _quiet_parse(reader: Any, domain_text: str, problem_text: str | None) -> Any:
    """The reader's problem, without the deprecation warnings its parser library emits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reader().parse_problem_string(domain_text, problem_text)


# -- the lifted model -------------------------------------------------------------------------
# A lifted formula is a tuple in negation normal form:
#   ("lit", positive, predicate, args)   args: object names, or variables starting with "?"
#   ("eq", positive, a, b)
#   ("and", parts) / ("or", parts)
#   ("all", variables, body) / ("any", variables, body)   variables: ((name, type), ...)
#   ("const", value)
Formula = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _LiftedEffect:
    variables: tuple[tuple[str, str], ...]
    condition: Formula
    predicate: str
    args: tuple[str, ...]
    add: bool


@dataclass(frozen=True, slots=True)
class _LiftedAction:
    name: str
    parameters: tuple[tuple[str, str], ...]
    precondition: Formula
    effects: tuple[_LiftedEffect, ...]


class _Lifter:
    """Turns unified-planning's expressions into lifted formulas (:data:`Formula`)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def unsupported(self, what: object) -> DomainError:
        return DomainError(f"invalid PDDL domain in {self.source}: {quote(what, 120)} is not supported "
                           "(numeric fluents, action costs and durative actions are not)")

    def term(self, node: Any) -> str:
        if node.is_parameter_exp():
            return "?" + str(node.parameter().name).lower()
        if node.is_variable_exp():
            return "?" + str(node.variable().name).lower()
        if node.is_object_exp():
            return str(node.object().name).lower()
        raise self.unsupported(node)

    def variables(self, node: Any) -> tuple[tuple[str, str], ...]:
        return tuple(("?" + str(v.name).lower(), _type_name(v.type)) for v in node.variables())

    def formula(self, node: Any, positive: bool = True) -> Formula:
        """The negation normal form of ``node`` (negated when not ``positive``)."""
        if node.is_fluent_exp():
            if not node.fluent().type.is_bool_type():
                raise self.unsupported(node)
            return ("lit", positive, str(node.fluent().name).lower(), tuple(self.term(a) for a in node.args))
        if node.is_bool_constant():
            return ("const", node.bool_constant_value() == positive)
        if node.is_not():
            return self.formula(node.arg(0), not positive)
        if node.is_and() or node.is_or():
            kind = "and" if node.is_and() == positive else "or"
            return (kind, tuple(self.formula(a, positive) for a in node.args))
        if node.is_implies():
            left, right = node.arg(0), node.arg(1)
            if positive:
                return ("or", (self.formula(left, False), self.formula(right, True)))
            return ("and", (self.formula(left, True), self.formula(right, False)))
        if node.is_iff():
            left, right = node.arg(0), node.arg(1)
            same = ("or", (("and", (self.formula(left), self.formula(right))),
                           ("and", (self.formula(left, False), self.formula(right, False)))))
            differ = ("or", (("and", (self.formula(left), self.formula(right, False))),
                             ("and", (self.formula(left, False), self.formula(right)))))
            return same if positive else differ
        if node.is_exists() or node.is_forall():
            kind = "any" if node.is_exists() == positive else "all"
            return (kind, self.variables(node), self.formula(node.arg(0), positive))
        if node.is_equals():
            return ("eq", positive, self.term(node.arg(0)), self.term(node.arg(1)))
        raise self.unsupported(node)

    def conjunction(self, nodes: Iterable[Any]) -> Formula:
        return ("and", tuple(self.formula(n) for n in nodes))

    def action(self, action: Any) -> _LiftedAction:
        if not hasattr(action, "preconditions") or not hasattr(action, "effects"):
            raise self.unsupported(f"action {action.name}")
        effects = []
        for effect in action.effects:
            if not effect.is_assignment() or not effect.value.is_bool_constant():
                raise self.unsupported(effect)
            fluent = effect.fluent
            effects.append(_LiftedEffect(
                variables=tuple(("?" + str(v.name).lower(), _type_name(v.type)) for v in effect.forall),
                condition=self.formula(effect.condition),
                predicate=str(fluent.fluent().name).lower(),
                args=tuple(self.term(a) for a in fluent.args),
                add=effect.value.bool_constant_value(),
            ))
        return _LiftedAction(
            name=str(action.name).lower(),
            parameters=tuple(("?" + str(p.name).lower(), _type_name(p.type)) for p in action.parameters),
            precondition=self.conjunction(action.preconditions),
            effects=tuple(effects),
        )


def _type_name(kind: Any) -> str:
    name = getattr(kind, "name", None)
    return str(name).lower() if name else "object"


def _lift_domain(up_problem: Any, *, source: str) -> tuple[dict[str, tuple[str, ...]], list[_LiftedAction]]:
    """(predicate → argument types, lifted actions) of a problem read by unified-planning."""
    lifter = _Lifter(source)
    predicates: dict[str, tuple[str, ...]] = {}
    for fluent in up_problem.fluents:
        if not fluent.type.is_bool_type():
            raise lifter.unsupported(f"fluent {fluent.name}")
        predicates[str(fluent.name).lower()] = tuple(_type_name(p.type) for p in fluent.signature)
    return predicates, [lifter.action(a) for a in up_problem.actions]


# -- grounding --------------------------------------------------------------------------------
def _fact(predicate: str, args: Iterable[str]) -> str:
    return "(" + " ".join((predicate, *args)) + ")"


def _conjoin(parts: Iterable[Condition]) -> Condition | None:
    positive: set[str] = set()
    negative: set[str] = set()
    alternatives: list[tuple[Condition, ...]] = []
    for part in parts:
        positive |= part.positive
        negative |= part.negative
        alternatives += part.alternatives
    if positive & negative:
        return None
    return Condition(frozenset(positive), frozenset(negative), tuple(dict.fromkeys(alternatives)))


def _disjoin(parts: Iterable[Condition | None]) -> Condition | None:
    options = list(dict.fromkeys(p for p in parts if p is not None))
    if not options:
        return None
    if any(o.is_true for o in options):
        return TRUE
    if len(options) == 1:
        return options[0]
    return Condition(alternatives=(tuple(options),))


class _Grounder:
    """Instantiates lifted formulas, deciding static atoms and equalities, within budgets."""

    def __init__(self, objects: Mapping[str, tuple[str, ...]], all_objects: tuple[str, ...],
                 statics: AbstractSet[str], init: AbstractSet[str], *, source: str) -> None:
        self.objects_of = objects
        self.all_objects = all_objects
        self.statics = statics
        self.init = init
        self.source = source
        self.atoms = 0

    def objects(self, kind: str) -> tuple[str, ...]:
        return self.objects_of.get(kind, self.all_objects if kind == "object" else ())

    def spend(self, atoms: int) -> None:
        self.atoms += atoms
        if self.atoms > MAX_GROUND_ATOMS:
            raise DomainError(f"problem too large in {self.source}: grounding its {len(self.all_objects):,} objects "
                              f"builds more than {MAX_GROUND_ATOMS:,} ground precondition and effect atoms, "
                              "the most allowed")

    def decided(self, form: Formula, binding: Mapping[str, str]) -> bool | None:
        """The truth of a static literal or an equality under ``binding``; ``None`` otherwise."""
        if form[0] == "eq":
            _, positive, a, b = form
            return (binding.get(a, a) == binding.get(b, b)) == positive
        if form[0] == "lit" and form[2] in self.statics:
            _, positive, predicate, args = form
            return (_fact(predicate, (binding.get(a, a) for a in args)) in self.init) == positive
        return None

    def ground(self, form: Formula, binding: Mapping[str, str]) -> Condition | None:
        """The ground condition of ``form`` under ``binding``; ``None`` when it is false."""
        kind = form[0]
        if kind == "lit":
            self.spend(1)
            _, positive, predicate, args = form
            fact = _fact(predicate, (binding.get(a, a) for a in args))
            if predicate in self.statics:
                return TRUE if (fact in self.init) == positive else None
            return Condition(positive=frozenset((fact,))) if positive else Condition(negative=frozenset((fact,)))
        if kind == "eq":
            return TRUE if self.decided(form, binding) else None
        if kind == "const":
            return TRUE if form[1] else None
        if kind == "and":
            parts = []
            for child in form[1]:
                part = self.ground(child, binding)
                if part is None:
                    return None
                parts.append(part)
            return _conjoin(parts)
        if kind == "or":
            return _disjoin(self.ground(child, binding) for child in form[1])
        _, variables, body = form
        names = [v for v, _ in variables]
        scopes = ({**binding, **dict(zip(names, combo))}
                  for combo in itertools.product(*(self.objects(t) for _, t in variables)))
        if kind == "any":
            return _disjoin(self.ground(body, scope) for scope in scopes)
        parts = []
        for scope in scopes:
            part = self.ground(body, scope)
            if part is None:
                return None
            parts.append(part)
        return _conjoin(parts)

    def bindings(self, action: _LiftedAction, budget: list[int]) -> Iterator[tuple[str, ...]]:
        """Parameter tuples of ``action`` whose top-level static literals and equalities hold;
        ``budget`` (one int, decremented) bounds the partial bindings tried."""
        names = [v for v, _ in action.parameters]
        position = {v: i for i, v in enumerate(names)}
        conjuncts = list(_conjuncts(action.precondition))
        checks: dict[int, list[Formula]] = {}
        for form in conjuncts:
            if form[0] == "eq" or (form[0] == "lit" and form[2] in self.statics):
                args = form[2:] if form[0] == "eq" else form[3]
                depth = max((position.get(a, len(names)) for a in args if a.startswith("?")), default=-1)
                if depth < len(names):
                    checks.setdefault(depth, []).append(form)
        if any(not self.decided(form, {}) for form in checks.get(-1, ())):
            return
        domains = [self.objects(t) for _, t in action.parameters]
        binding: dict[str, str] = {}

        def extend(i: int) -> Iterator[tuple[str, ...]]:
            if i == len(names):
                yield tuple(binding[n] for n in names)
                return
            for obj in domains[i]:
                budget[0] -= 1
                if budget[0] < 0:
                    return
                binding[names[i]] = obj
                if all(self.decided(form, binding) for form in checks.get(i, ())):
                    yield from extend(i + 1)
            binding.pop(names[i], None)

        yield from extend(0)

    def operator(self, action: _LiftedAction, args: tuple[str, ...]) -> AdlOperator | None:
        """The ground action of ``action`` on ``args``; ``None`` when its precondition is
        false whatever the state."""
        binding = dict(zip((v for v, _ in action.parameters), args))
        precondition = self.ground(action.precondition, binding)
        if precondition is None:
            return None
        add: set[str] = set()
        delete: set[str] = set()
        conditional: dict[Condition, tuple[set[str], set[str]]] = {}
        for effect in action.effects:
            names = [v for v, _ in effect.variables]
            for combo in itertools.product(*(self.objects(t) for _, t in effect.variables)):
                scope = {**binding, **dict(zip(names, combo))} if names else binding
                condition = self.ground(effect.condition, scope)
                if condition is None:
                    continue
                self.spend(1)
                fact = _fact(effect.predicate, (scope.get(a, a) for a in effect.args))
                if condition.is_true:
                    (add if effect.add else delete).add(fact)
                else:
                    pair = conditional.setdefault(condition, (set(), set()))
                    pair[0 if effect.add else 1].add(fact)
        return AdlOperator(
            name=_fact(action.name, args),
            precondition=precondition,
            add_effects=frozenset(add),
            del_effects=frozenset(delete),
            conditional=tuple(ConditionalEffect(c, frozenset(a), frozenset(d)) for c, (a, d) in conditional.items()),
        )


def _conjuncts(form: Formula) -> Iterator[Formula]:
    if form[0] == "and":
        for child in form[1]:
            yield from _conjuncts(child)
    else:
        yield form


def _objects_by_type(up_problem: Any) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """type name → its objects (those of its subtypes included), and every object, sorted."""
    every = tuple(sorted(str(o.name).lower() for o in up_problem.all_objects))
    by_type = {_type_name(t): tuple(sorted(str(o.name).lower() for o in up_problem.objects(t)))
               for t in up_problem.user_types}
    by_type["object"] = every
    return by_type, every


def _initial_facts(up_problem: Any, *, source: str) -> frozenset[str]:
    lifter = _Lifter(source)
    facts = set()
    for fluent, value in up_problem.explicit_initial_values.items():
        if not fluent.is_fluent_exp() or not value.is_bool_constant():
            raise lifter.unsupported(f"{fluent} = {value}")
        if value.bool_constant_value():
            facts.add(_fact(str(fluent.fluent().name).lower(), (lifter.term(a) for a in fluent.args)))
    return frozenset(facts)


def _goal(condition: Condition | None, *, source: str, text: object) -> FactGoal:
    if condition is None:
        raise DomainError(f"invalid PDDL in {source}: the :goal {quote(text, 120)} is false in every state")
    if not condition.negative and not condition.alternatives:
        return FactGoal(condition.positive)
    return FormulaGoal(facts=condition.positive, condition=condition)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while grounding builds its many small objects
    (none of them cyclic): about 3 times faster on large problems."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def ground_rich_task(domain_text: str, problem_text: str, *, features: Sequence[str] = (":adl",),
                     source: str = "<domain>", problem_source: str = "<problem>") -> GroundTask:
    """Parse, check and ground a domain and problem beyond STRIPS given as PDDL text.

    Args:
        domain_text: the domain's PDDL.
        problem_text: the problem's PDDL.
        features: what made the domain need this grounder (:func:`rich_features`); the first
            is named when the ``pddl`` extra is missing.
        source: names the domain in error messages (its path).
        problem_source: names the problem in error messages.

    Returns a :class:`~planner.env.pddl.GroundTask` whose ``operators`` are
    :class:`AdlOperator` s, whose ``pyperplan_task`` is a delete relaxation for heuristics only
    (:func:`relaxed_task`) and whose ``domain`` is the STRIPS part of the lifted domain
    (:func:`strips_projection`). Raises :class:`~planner.errors.ConfigError` when the ``pddl``
    extra is missing and :class:`~planner.errors.DomainError` for bad or too large input.
    """
    with _collector_paused():
        return _ground_rich_task(domain_text, problem_text, features=features, source=source,
                                 problem_source=problem_source)


def _ground_rich_task(domain_text: str, problem_text: str, *, features: Sequence[str], source: str,
                      problem_source: str) -> GroundTask:
    feature = features[0] if features else ":adl"
    domain_tree = read_sexpr(domain_text)
    problem_tree = read_sexpr(problem_text)
    if domain_tree is None or problem_tree is None:  # let the reader name where the text breaks
        _read(domain_text, problem_text, feature=feature, source=source, problem_source=problem_source)
        raise DomainError(f"invalid PDDL in {source if domain_tree is None else problem_source}: "
                          "unbalanced parentheses")
    declared = _domain_text(domain_tree, source=source)
    _check_problem(declared, problem_tree, source=problem_source)
    up_problem = _read(domain_text, problem_text, feature=feature, source=source, problem_source=problem_source)
    predicates, actions = _lift_domain(up_problem, source=source)
    init = _initial_facts(up_problem, source=problem_source)
    statics = set(predicates) - {e.predicate for a in actions for e in a.effects}
    objects, every = _objects_by_type(up_problem)
    grounder = _Grounder(objects, every, statics, init, source=problem_source)
    goal_form = _Lifter(problem_source).conjunction(up_problem.goals)
    goal = _goal(grounder.ground(goal_form, {}), source=problem_source, text=" ".join(map(str, up_problem.goals)))
    operators = _ground_operators(grounder, actions, n_objects=len(every), source=problem_source)
    if not operators:
        raise DomainError(f"{source}: the domain has no ground actions for this problem")
    relevant = set(init) | goal.facts
    if isinstance(goal, FormulaGoal):
        relevant |= goal.condition.atoms()
    for op in operators.values():
        relevant |= op.atoms()
    problem_objects = {name for name, _ in _typed_list(next(
        (s[1:] for s in _sections(problem_tree) if s[0] == ":objects"), []))}
    task = relaxed_task(str(up_problem.name).lower(), operators, init=init, goal=goal, facts=relevant)
    return GroundTask(
        name=str(up_problem.name).lower(),
        domain_name=declared.name,
        objects=tuple(sorted(problem_objects)),
        predicates=MappingProxyType({name: len(args) for name, args in predicates.items()}),
        init=State.from_facts(init),
        goal=goal,
        operators=MappingProxyType(operators),
        relevant_facts=frozenset(relevant),
        pyperplan_task=task,
        domain=strips_projection(declared, predicates, actions),
        features=tuple(features),
    )


def _ground_operators(grounder: _Grounder, actions: Sequence[_LiftedAction], *, n_objects: int,
                      source: str) -> dict[str, AdlOperator]:
    """Every ground action, by name, sorted; :class:`DomainError` past the bounds."""
    budget = [MAX_BINDINGS]
    chosen: list[tuple[_LiftedAction, tuple[str, ...]]] = []
    count = 0
    for action in actions:
        for args in grounder.bindings(action, budget):
            count += 1
            if count <= MAX_GROUND_ACTIONS:
                chosen.append((action, args))
        if budget[0] < 0:
            if count > MAX_GROUND_ACTIONS:
                break
            raise DomainError(f"problem too large in {source}: grounding its {n_objects:,} objects tries more than "
                              f"{MAX_BINDINGS:,} parameter bindings, the most allowed")
    if count > MAX_GROUND_ACTIONS:
        amount = f"{count:,}" if budget[0] >= 0 else f"more than {count:,}"
        raise DomainError(f"problem too large in {source}: grounding its {n_objects:,} objects would build "
                          f"{amount} ground actions, more than the {MAX_GROUND_ACTIONS:,} allowed")
    operators: dict[str, AdlOperator] = {}
    for action, args in chosen:
        op = grounder.operator(action, args)
        if op is not None:
            operators[op.name] = op
    return dict(sorted(operators.items()))


# -- what code written for pyperplan reads ----------------------------------------------------
def relaxed_task(name: str, operators: Mapping[str, AdlOperator], *, init: frozenset[str], goal: FactGoal,
                 facts: AbstractSet[str]) -> Any:
    """A pyperplan ``Task`` that relaxation heuristics (hFF, hadd, hmax, LM-cut) read: each
    action keeps the positive part of its precondition and its unconditional effects, and
    each conditional effect becomes an action of its own (named ``"(act …)#k"``) that also
    needs the positive part of its condition. Negated atoms, disjunctions and the negated
    part of the goal are dropped, so hmax stays a lower bound of the plan length. Not for
    search: its operators are not the domain's."""
    from pyperplan.task import Operator, Task

    relaxed = []
    for op in operators.values():
        required = op.precondition.positive
        relaxed.append(Operator(op.name, required, op.add_effects, op.del_effects))
        for k, effect in enumerate(op.conditional):
            if effect.add:
                relaxed.append(Operator(f"{op.name}#{k}", required | effect.condition.positive, effect.add, ()))
    return Task(name, frozenset(facts), init, goal.facts, relaxed)


def strips_projection(declared: _DomainText, predicates: Mapping[str, tuple[str, ...]],
                      actions: Sequence[_LiftedAction]) -> Any:
    """A pyperplan ``Domain`` with the STRIPS part of each operator: the positive atoms of its
    precondition's top-level conjunction, and its effects that are neither conditional nor
    quantified. It has the domain's types, constants and predicates, so code that reads a
    lifted pyperplan domain (signatures, schemas) keeps working; a signature made from it
    does not see negated, disjunctive, quantified or conditional parts."""
    from pyperplan.pddl.pddl import Action, Domain, Effect, Predicate, Type

    types: dict[str, Any] = {}

    def kind(name: str) -> Any:
        if name not in types:
            parent = declared.types.get(name)
            types[name] = Type(name, kind(parent) if parent is not None and parent != name else None)
        return types[name]

    for name in declared.types:
        kind(name)
    lifted_predicates = {name: Predicate(name, [(f"?a{i}", (kind(t),)) for i, t in enumerate(args)])
                         for name, args in predicates.items()}
    lifted_actions = {}
    for action in actions:
        effect = Effect()
        for e in action.effects:
            if not e.variables and e.condition == ("const", True):
                atom = Predicate(e.predicate, [(a, ()) for a in e.args])
                (effect.addlist if e.add else effect.dellist).add(atom)
        precondition = [Predicate(form[2], [(a, ()) for a in form[3]]) for form in _conjuncts(action.precondition)
                        if form[0] == "lit" and form[1]]
        signature = [(name, (kind(t),)) for name, t in action.parameters]
        lifted_actions[action.name] = Action(action.name, signature, precondition, effect)
    constants = {name: kind(t) for name, t in declared.constants.items()}
    return Domain(declared.name, types, lifted_predicates, lifted_actions, constants)


def parse_rich_domain(domain_text: str, *, features: Sequence[str] = (":adl",), source: str = "<domain>") -> Any:
    """The STRIPS projection (:func:`strips_projection`) of a domain beyond STRIPS, read
    without a problem; :class:`DomainError` naming ``source`` for bad text."""
    tree = read_sexpr(domain_text)
    feature = features[0] if features else ":adl"
    up_problem = _read(domain_text, None, feature=feature, source=source, problem_source=source)
    if tree is None:  # pragma: no cover - the reader refuses unbalanced text first
        raise DomainError(f"invalid PDDL domain in {source}: unbalanced parentheses")
    declared = _domain_text(tree, source=source)
    predicates, actions = _lift_domain(up_problem, source=source)
    return strips_projection(declared, predicates, actions)


# -- exact search -----------------------------------------------------------------------------
def shortest_plan(task: GroundTask, *, max_states: int = MAX_SEARCH_STATES) -> list[str] | None:
    """The names of the actions of a shortest plan from ``task.init`` (A* with hmax over
    :func:`relaxed_task`, admissible), or ``None`` when no plan exists.

    Works for any :class:`~planner.env.pddl.GroundTask` (its operators need ``applicable``
    and ``apply``). Raises :class:`DomainError` after expanding ``max_states`` states.
    """
    from pyperplan.heuristics.relaxation import hMaxHeuristic
    from pyperplan.search.searchspace import make_root_node

    goal = task.goal
    relevant = task.relevant_facts
    hmax = hMaxHeuristic(task.pyperplan_task)
    operators = list(task.operators.values())

    def estimate(facts: frozenset[str]) -> float:
        return float(hmax(make_root_node(facts & relevant)))

    start = task.init.facts
    parents: dict[frozenset[str], tuple[frozenset[str], str] | None] = {start: None}
    cost = {start: 0}
    tie = itertools.count()
    frontier = [(estimate(start), next(tie), start)]
    closed: set[frozenset[str]] = set()
    while frontier:
        _, _, facts = heapq.heappop(frontier)
        if facts in closed:
            continue
        if goal.satisfied(State(facts)):
            plan: list[str] = []
            link = parents[facts]
            while link is not None:
                facts, name = link
                plan.append(name)
                link = parents[facts]
            return plan[::-1]
        closed.add(facts)
        if len(closed) > max_states:
            raise DomainError(f"no plan for {task.name} found within {max_states:,} expanded states")
        g = cost[facts] + 1
        for op in operators:
            if not op.applicable(facts):
                continue
            nxt = frozenset(op.apply(facts))
            if g < cost.get(nxt, g + 1):
                h = estimate(nxt)
                if h == float("inf"):
                    continue
                cost[nxt] = g
                parents[nxt] = (facts, op.name)
                heapq.heappush(frontier, (g + h, next(tie), nxt))
    return None
