"""A domain's vocabulary and STRIPS operators, inferred from a transition log alone.

:func:`infer_schema` reads transition records (any source: PDDL, a user's Python environment,
a Gymnasium adapter) and learns

- predicates with their arities, objects, and action schemas (name → arity), from the facts
  and actions met;
- a lifted STRIPS operator per action schema seen to apply, by argument position (as in
  :mod:`planner.world.signature`: ``on(?0,?1)`` is the fact ``on`` of the action's arguments 0
  and 1; any other argument is a constant):

  * effects: atoms that, grounded with each instance's arguments, give exactly the observed
    next state (``(state - delete) | add``) of EVERY applicable instance. When no set of atoms
    does (a conditional effect, a toggle, an effect on objects the action does not name), the
    schema is reported in :attr:`LearnedSchema.not_strips` with an instance that shows it,
    never learned wrong.
  * preconditions: the atoms over parameters (and nullary atoms) that held before EVERY
    applicable instance. They are then checked against the recorded inapplicable instances:
    :attr:`LearnedSchema.explained` counts those the learned precondition rejects (the rest,
    with examples, suggest a negative or missing precondition, or too little data).

The result is a :class:`~planner.world.signature.DomainSignature` (:meth:`LearnedSchema.signature`,
for the default-model matching) and a PDDL domain (:meth:`LearnedSchema.pddl_domain`) that
pyperplan grounds: :func:`learned_heuristic` is an hFF relaxed-plan distance over it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from planner.data.collect import TransitionRecord
from planner.errors import SchemaError
from planner.types import FactGoal, State, arities_of, parse_atom
from planner.world.signature import ROOT_TYPE, DomainSignature, OperatorSignature

Lifted = tuple[str, tuple[str, ...]]
"""A lifted atom: (predicate, terms); a term is ``?i`` (the action's argument ``i``) or a constant."""

MAX_EXAMPLES = 5
"""Most unexplained inapplicable instances :class:`LearnedSchema` lists."""



class NotStrips(BaseModel):
    """An action schema whose observed effects no lifted STRIPS operator reproduces.

    Attributes:
        action: the ground action of an instance that shows it.
        state: the facts before it.
        next_state: the facts after it, as recorded.
        predicted: the facts after it by the best operator learned from all instances.
        reason: what could not be lifted, in words.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str
    state: tuple[str, ...]
    next_state: tuple[str, ...]
    predicted: tuple[str, ...]
    reason: str


class LearnedSchema(BaseModel):
    """What :func:`infer_schema` learned; see the module's description.

    Attributes:
        domain: the records' domain name.
        predicates: predicate → arity.
        objects: every object named in a fact or an action, sorted.
        constants: objects the learned operators name (not by parameter), sorted.
        actions: action schema → arity (every schema met, applicable or not).
        operators: action schema → its lifted STRIPS operator (schemas seen to apply and
            liftable only).
        instances: action schema → its applicable instances seen.
        not_strips: action schema → why no STRIPS operator fits, with an example.
        unobserved: action schemas never seen to apply (no operator could be learned).
        inapplicable: inapplicable records of schemas with a learned operator.
        explained: those whose state the learned precondition rejects.
        unexplained: up to :data:`MAX_EXAMPLES` of the others, ``"(action) at {facts}"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str
    predicates: dict[str, int]
    objects: tuple[str, ...]
    constants: tuple[str, ...] = ()
    actions: dict[str, int]
    operators: dict[str, OperatorSignature]
    instances: dict[str, int] = {}
    not_strips: dict[str, NotStrips] = {}
    unobserved: tuple[str, ...] = ()
    inapplicable: int = 0
    explained: int = 0
    unexplained: tuple[str, ...] = ()

    def signature(self) -> DomainSignature:
        """The learned domain as a :class:`DomainSignature` (untyped: every type ``object``)."""
        return DomainSignature(
            constants={c: ROOT_TYPE for c in self.constants},
            predicates={p: (ROOT_TYPE,) * n for p, n in self.predicates.items()},
            operators=dict(self.operators),
        )

    def pddl_domain(self) -> str:
        """The learned operators as a STRIPS PDDL domain (parameters ``?x0``, ``?x1``, …)."""
        lines = [f"(define (domain {self.domain})", "  (:requirements :strips)"]
        if self.constants:
            lines.append(f"  (:constants {' '.join(self.constants)})")
        preds = " ".join(f"({p}{''.join(f' ?a{i}' for i in range(n))})" for p, n in sorted(self.predicates.items()))
        lines.append(f"  (:predicates {preds})")
        for name, op in sorted(self.operators.items()):
            params = " ".join(f"?x{i}" for i in range(len(op.parameters)))
            effect = [_pddl_atom(a) for a in op.add] + [f"(not {_pddl_atom(a)})" for a in op.delete]
            lines += [f"  (:action {name}", f"    :parameters ({params})",
                      f"    :precondition (and {' '.join(_pddl_atom(a) for a in op.precondition)})",
                      f"    :effect (and {' '.join(effect)}))"]
        lines.append(")")
        return "\n".join(lines) + "\n"

    def pddl_problem(self, *, objects: Iterable[str], init: Iterable[str], goal: Iterable[str],
                     name: str = "learned") -> str:
        """A PDDL problem of this domain: ``objects`` (constants left out), ``init`` and
        ``goal`` facts (Lisp form)."""
        objs = sorted(set(objects) - set(self.constants))
        return (f"(define (problem {name}) (:domain {self.domain})\n  (:objects {' '.join(objs)})\n"
                f"  (:init {' '.join(sorted(init))})\n  (:goal (and {' '.join(sorted(goal))})))\n")


def _pddl_atom(atom: str) -> str:
    """``(on ?x0 ?x1)`` for the signature atom ``on(?0,?1)``."""
    pred, terms = _split_atom(atom)
    return "(" + " ".join([pred, *(f"?x{t[1:]}" if t.startswith("?") else t for t in terms)]) + ")"


def _split_atom(atom: str) -> Lifted:
    """``("on", ("?0", "?1"))`` for ``on(?0,?1)``; ``("handempty", ())`` for ``handempty``."""
    if "(" not in atom:
        return atom, ()
    pred, rest = atom.split("(", 1)
    return pred, tuple(rest.rstrip(")").split(","))


def _atom_text(atom: Lifted) -> str:
    pred, terms = atom
    return f"{pred}({','.join(terms)})" if terms else pred


def _ground(atom: Lifted, args: Sequence[str]) -> str:
    """The Lisp fact of ``atom`` with parameter ``?i`` bound to ``args[i]``."""
    pred, terms = atom
    values = [args[int(t[1:])] if t.startswith("?") else t for t in terms]
    return "(" + " ".join([pred, *values]) + ")"


def _lifts(fact: str, args: Sequence[str], *, constants: bool) -> list[Lifted]:
    """Every lifted atom that grounds to ``fact`` under ``args`` (with ``constants``, an
    argument may also stay a constant; without, every argument must be a parameter)."""
    pred, fargs = parse_atom(fact)
    options = []
    for a in fargs:
        here = [f"?{i}" for i, b in enumerate(args) if b == a] + ([a] if constants else [])
        if not here:
            return []
        options.append(here)
    return [(pred, tuple(terms)) for terms in itertools.product(*options)]


def _most_general(atoms: set[Lifted]) -> set[Lifted]:
    """``atoms`` without those that another one generalizes (a parameter where it has a constant)."""
    def generalizes(b: Lifted, a: Lifted) -> bool:
        return b != a and b[0] == a[0] and all(
            x == y or (y.startswith("?") is False and x.startswith("?")) for x, y in zip(b[1], a[1], strict=True))

    return {a for a in atoms if not any(generalizes(b, a) for b in atoms)}


_Instance = tuple[tuple[str, ...], frozenset[str], frozenset[str]]
"""An applicable instance: (action arguments, state facts, next-state facts)."""


def _learn_effects(instances: Sequence[_Instance]) -> tuple[set[Lifted], set[Lifted]]:
    """(add, delete): the lifted atoms consistent with every instance (see the module)."""
    add: set[Lifted] = set()
    delete: set[Lifted] = set()
    for args, before, after in instances:
        add.update(a for f in after - before for a in _lifts(f, args, constants=True))
        delete.update(d for f in before - after for d in _lifts(f, args, constants=True))
    add = {a for a in add if all(_ground(a, args) in after for args, _, after in instances)}
    delete = {d for d in delete if all(_ground(d, args) not in after for args, _, after in instances)}
    return _most_general(add), _most_general(delete)


def _predict(add: set[Lifted], delete: set[Lifted], args: Sequence[str], before: frozenset[str]) -> frozenset[str]:
    return (before - {_ground(d, args) for d in delete}) | {_ground(a, args) for a in add}


def _learn_precondition(instances: Sequence[_Instance]) -> set[Lifted]:
    """The atoms over parameters that held before every instance."""
    common: set[Lifted] | None = None
    for args, before, _ in instances:
        here = {a for f in before for a in _lifts(f, args, constants=False)}
        common = here if common is None else common & here
    return common or set()


def _operator(name: str, arity: int, instances: Sequence[_Instance]) -> OperatorSignature | NotStrips:
    """The lifted operator of ``name``'s applicable ``instances``, or why there is none."""
    add, delete = _learn_effects(instances)
    for args, before, after in instances:
        predicted = _predict(add, delete, args, before)
        if predicted != after:
            wrong = sorted((after - before) - predicted) + sorted(predicted - after)
            return NotStrips(
                action=f"({' '.join([name, *args])})", state=tuple(sorted(before)), next_state=tuple(sorted(after)),
                predicted=tuple(sorted(predicted)),
                reason=(f"no lifted STRIPS effect reproduces every applicable instance of {name}: "
                        f"{', '.join(wrong)} differ here (a conditional effect, or one on objects "
                        "the action does not name?)"))
    return OperatorSignature(
        parameters=(ROOT_TYPE,) * arity,
        precondition=tuple(_atom_text(a) for a in _learn_precondition(instances)),
        add=tuple(_atom_text(a) for a in add),
        delete=tuple(_atom_text(a) for a in delete),
    )


def _arities(named: Iterable[str], what: str) -> dict[str, int]:
    """name → arity of Lisp forms; :class:`SchemaError` naming one used with two arities."""

    def conflict(name: str, first: int, other: int, text: str) -> SchemaError:
        return SchemaError(f"{what} {name} is used with {first} and {other} arguments ({text})")

    return arities_of(named, conflict=conflict)


def infer_schema(records: Iterable[TransitionRecord]) -> LearnedSchema:
    """Learn the vocabulary and lifted STRIPS operators of the transitions ``records``.

    Raises :class:`SchemaError` when the records name several domains, use a predicate or an
    action with two arities, or hold no applicable transition.
    """
    recs = list(records)
    domains = sorted({r.domain for r in recs})
    if len(domains) != 1:
        raise SchemaError(f"records must come from one domain, got {domains or 'no records'}")
    facts = {f for r in recs for f in (*r.state, *r.next_state, *r.goal)}
    predicates = _arities(sorted(facts), "predicate")
    actions = _arities(sorted({r.action for r in recs}), "action")
    applicable: dict[str, list[_Instance]] = {}
    for r in recs:
        if r.applicable:
            name, args = parse_atom(r.action)
            applicable.setdefault(name, []).append((args, frozenset(r.state), frozenset(r.next_state)))
    if not applicable:
        raise SchemaError(f"no applicable transition among the {len(recs)} records: nothing to learn operators from")
    operators: dict[str, OperatorSignature] = {}
    not_strips: dict[str, NotStrips] = {}
    for name, instances in sorted(applicable.items()):
        learned = _operator(name, actions[name], instances)
        if isinstance(learned, NotStrips):
            not_strips[name] = learned
        else:
            operators[name] = learned
    objects = {o for r in recs for o in r.objects} | {a for f in facts for a in parse_atom(f)[1]}
    objects |= {a for r in recs for a in parse_atom(r.action)[1]}
    constants = sorted({t for op in operators.values() for atom in (*op.precondition, *op.add, *op.delete)
                        for t in _split_atom(atom)[1] if not t.startswith("?")})
    inapplicable, explained, unexplained = _check_inapplicable(recs, operators)
    return LearnedSchema(
        domain=domains[0], predicates=dict(sorted(predicates.items())), objects=tuple(sorted(objects)),
        constants=tuple(constants), actions=dict(sorted(actions.items())), operators=operators,
        instances={n: len(i) for n, i in sorted(applicable.items())}, not_strips=not_strips,
        unobserved=tuple(sorted(set(actions) - set(applicable))), inapplicable=inapplicable,
        explained=explained, unexplained=tuple(unexplained))


def _check_inapplicable(recs: Sequence[TransitionRecord],
                        operators: Mapping[str, OperatorSignature]) -> tuple[int, int, list[str]]:
    """(inapplicable records of learned schemas, how many the precondition rejects, examples)."""
    total = explained = 0
    examples: list[str] = []
    for r in recs:
        name, args = parse_atom(r.action)
        if r.applicable or name not in operators:
            continue
        total += 1
        state = set(r.state)
        if any(_ground(_split_atom(a), args) not in state for a in operators[name].precondition):
            explained += 1
        elif len(examples) < MAX_EXAMPLES:
            examples.append(f"{r.action} at {{{' '.join(r.state)}}}")
    return total, explained, examples


def schema_differences(schema: LearnedSchema, expected: DomainSignature) -> list[str]:
    """How the learned signature differs from ``expected``, one line each (``"missing"``: what
    ``expected`` has and the schema lacks; see
    :func:`planner.world.signature.signature_differences`); empty when they are equal."""
    from planner.world.signature import signature_differences

    return signature_differences(expected, schema.signature())


# -- the relaxed-plan heuristic --------------------------------------------------------------


def learned_heuristic(schema: LearnedSchema, goal: FactGoal | Iterable[str], *,
                      objects: Iterable[str] | None = None, name: str = "ff") -> Callable[[State], float]:
    """A delete-relaxation distance (number of steps) from a state to ``goal`` (a
    :class:`~planner.types.FactGoal` or its facts), computed from the learned operators only.

    The learned PDDL domain (:meth:`LearnedSchema.pddl_domain`) is grounded by pyperplan over
    ``objects`` (default: every object of the schema, plus the goal's) and ``name`` picks
    pyperplan's heuristic (``"ff"``: hFF, the length of a relaxed plan; ``"add"``, ``"max"``,
    ``"lmcut"``). Grounding happens once per set of static facts (facts of predicates no
    operator changes) met, so calling it on imagined states of one problem grounds once.
    Facts whose predicate or objects the schema does not know are ignored; an unreachable
    goal gives ``inf``. Use it as ``distance_value(learned_heuristic(schema, goal))``.

    Raises :class:`SchemaError` when ``goal`` names a predicate the schema does not know (or
    with another arity) or the schema learned no operator.
    """
    from pyperplan.heuristics.lm_cut import LmCutHeuristic
    from pyperplan.heuristics.relaxation import hAddHeuristic, hFFHeuristic, hMaxHeuristic
    from pyperplan.search.searchspace import make_root_node

    from planner.env.pddl import ground_task

    classes = {"ff": hFFHeuristic, "add": hAddHeuristic, "max": hMaxHeuristic, "lmcut": LmCutHeuristic}
    if name not in classes:
        raise SchemaError(f"unknown heuristic {name!r}; choose one of {sorted(classes)}")
    goal_facts = sorted(goal.facts if isinstance(goal, FactGoal) else goal)
    for fact in goal_facts:
        pred, args = parse_atom(fact)
        if schema.predicates.get(pred) != len(args):
            raise SchemaError(f"goal fact {fact} does not fit the learned schema (predicates: "
                              f"{', '.join(f'{p}/{n}' for p, n in schema.predicates.items())})")
    if not schema.operators:
        raise SchemaError(f"the learned schema of {schema.domain} has no operator to compute a heuristic from")
    if not goal_facts:
        return lambda state: 0.0
    known = set(objects if objects is not None else schema.objects)
    known |= {a for f in goal_facts for a in parse_atom(f)[1]}
    known |= set(schema.constants)
    changed = {_split_atom(a)[0] for op in schema.operators.values() for a in (*op.add, *op.delete)}
    domain_text = schema.pddl_domain()
    grounded: dict[frozenset[str], tuple[Callable[..., float], frozenset[str]]] = {}

    def usable(fact: str) -> bool:
        pred, args = parse_atom(fact)
        return schema.predicates.get(pred) == len(args) and all(a in known for a in args)

    def distance(state: State) -> float:
        facts = frozenset(f for f in state.facts if usable(f))
        statics = frozenset(f for f in facts if parse_atom(f)[0] not in changed)
        if statics not in grounded:
            problem = schema.pddl_problem(objects=known, init=facts, goal=goal_facts)
            task = ground_task(domain_text, problem, source=f"learned schema of {schema.domain}")
            grounded[statics] = (classes[name](task.pyperplan_task), task.relevant_facts)
        h, relevant = grounded[statics]
        return float(h(make_root_node(facts & relevant)))

    return distance

