"""PDDL beyond STRIPS (planner.env.adl): each feature on a tiny domain, with exact successors;
the choice between pyperplan and the rich grounder; the missing extra; bad input; the bounds."""

from __future__ import annotations

import itertools
import re
import sys
from collections import deque

import pytest

from planner.agent import Agent
from planner.env import adl
from planner.env.base import check_env
from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
from planner.env.pddl import PDDLEnvironment, domain_schemas, ground_task, parse_domain
from planner.errors import ConfigError, DomainError
from planner.types import Action, FactGoal, State
from planner.world.oracle import OracleWorldModel
from planner.world.signature import domain_signature

needs_reader = pytest.mark.skipif(not adl.rich_grounder_installed(),
                                  reason="the rich grounder needs unified-planning (the 'pddl' extra)")

# A robot on a line of cells: each feature is one action of this domain.
DOMAIN = """
(define (domain cells)
  (:requirements :typing :adl)
  (:types cell - object robot lamp - thing)
  (:constants r - robot c1 - cell)
  (:predicates (at ?t - thing ?c - cell) (next ?a ?b - cell) (lit ?l - lamp) (wet ?c - cell)
               (painted ?c - cell) (flag))
  ; negative precondition, equality
  (:action step
    :parameters (?from ?to - cell)
    :precondition (and (at r ?from) (next ?from ?to) (not (wet ?to)) (not (= ?from ?to)))
    :effect (and (at r ?to) (not (at r ?from))))
  ; disjunction
  (:action paint
    :parameters (?c - cell)
    :precondition (and (at r ?c) (or (wet ?c) (flag)))
    :effect (painted ?c))
  ; existential precondition
  (:action raise-flag
    :parameters ()
    :precondition (exists (?l - lamp) (lit ?l))
    :effect (flag))
  ; universal precondition, implication
  (:action dry-all
    :parameters ()
    :precondition (forall (?c - cell) (imply (wet ?c) (painted ?c)))
    :effect (forall (?c - cell) (not (wet ?c))))
  ; conditional effects, quantified
  (:action switch
    :parameters (?l - lamp)
    :precondition (at r c1)
    :effect (and (when (lit ?l) (not (lit ?l)))
                 (when (not (lit ?l)) (lit ?l))
                 (forall (?c - cell) (when (and (wet ?c) (lit ?l)) (painted ?c))))))
"""
PROBLEM = """
(define (problem line) (:domain cells)
  (:objects c2 c3 - cell l1 l2 - lamp)
  (:init (at r c1) (next c1 c2) (next c2 c3) (next c2 c1) (wet c3) (lit l1))
  (:goal (and (painted c2) (not (wet c3)))))
"""


@pytest.fixture
def cells(tmp_path) -> PDDLEnvironment:
    pytest.importorskip("unified_planning", reason="the rich grounder needs the 'pddl' extra")
    (tmp_path / "d.pddl").write_text(DOMAIN)
    (tmp_path / "p.pddl").write_text(PROBLEM)
    return PDDLEnvironment(tmp_path / "d.pddl", tmp_path / "p.pddl")


def _state(*facts: str) -> State:
    return State.from_facts(facts)


START = ("(at r c1)", "(next c1 c2)", "(next c2 c3)", "(next c2 c1)", "(wet c3)", "(lit l1)")


def test_the_domain_goes_to_the_rich_grounder_with_its_features(cells):
    assert not cells.task.is_strips
    assert set(cells.task.features) >= {":negative-preconditions", ":disjunctive-preconditions", ":equality",
                                        ":existential-preconditions", ":universal-preconditions",
                                        ":conditional-effects", ":adl"}
    assert cells.task.objects == ("c2", "c3", "l1", "l2")  # the constants r and c1 are not listed
    assert cells.reset()[0] == _state(*START)


def test_candidates_are_typed_groundings_without_statically_false_ones(cells):
    names = [a.name for a in cells.candidate_actions(cells.state)]
    # step needs (next ?from ?to), a static predicate: only its three pairs are candidates.
    assert [n for n in names if n.startswith("(step")] == ["(step c1 c2)", "(step c2 c1)", "(step c2 c3)"]
    assert {"(paint c1)", "(raise-flag)", "(dry-all)", "(switch l1)", "(switch l2)"} <= set(names)
    assert len(names) == len(set(names)) == 3 + 3 + 1 + 1 + 2


def test_negative_precondition(cells):
    at_c2 = _state("(at r c2)", "(next c1 c2)", "(next c2 c3)", "(wet c3)")
    assert not cells.simulate(at_c2, Action("(step c2 c3)")).applicable  # c3 is wet
    dry = _state("(at r c2)", "(next c2 c3)")
    assert cells.simulate(dry, Action("(step c2 c3)")).next_state == _state("(at r c3)", "(next c2 c3)")
    assert cells.why_inapplicable(at_c2, Action("(step c2 c3)")) == "precondition not satisfied: holds (wet c3)"


def test_disjunctive_precondition(cells):
    assert not cells.simulate(_state("(at r c2)"), Action("(paint c2)")).applicable
    assert cells.simulate(_state("(at r c2)", "(flag)"), Action("(paint c2)")).next_state == \
        _state("(at r c2)", "(flag)", "(painted c2)")
    assert cells.simulate(_state("(at r c2)", "(wet c2)"), Action("(paint c2)")).next_state == \
        _state("(at r c2)", "(wet c2)", "(painted c2)")
    reason = cells.why_inapplicable(_state("(at r c1)"), Action("(paint c2)"))
    assert reason == "precondition not satisfied: missing (at r c2); none of (or (wet c2) (flag))"


def test_existential_precondition(cells):
    assert not cells.simulate(_state(), Action("(raise-flag)")).applicable
    assert cells.simulate(_state("(lit l2)"), Action("(raise-flag)")).next_state == _state("(lit l2)", "(flag)")


def test_universal_precondition_and_effect(cells):
    wet = _state("(wet c1)", "(wet c3)", "(painted c3)")
    assert not cells.simulate(wet, Action("(dry-all)")).applicable  # c1 is wet and not painted
    painted = _state("(wet c1)", "(wet c3)", "(painted c1)", "(painted c3)")
    assert cells.simulate(painted, Action("(dry-all)")).next_state == _state("(painted c1)", "(painted c3)")
    assert cells.simulate(_state(), Action("(dry-all)")).next_state == _state()  # vacuously true


def test_conditional_effects_are_judged_in_the_state_before_the_step(cells):
    base = ("(at r c1)", "(wet c2)", "(wet c3)")
    on = cells.simulate(_state(*base, "(lit l1)"), Action("(switch l1)"))
    # l1 was lit: it goes off, and the wet cells get painted (the conditions read the old state).
    assert on.next_state == _state(*base, "(painted c2)", "(painted c3)")
    off = cells.simulate(_state(*base), Action("(switch l1)"))
    assert off.next_state == _state(*base, "(lit l1)")
    assert not cells.simulate(_state("(at r c2)"), Action("(switch l1)")).applicable


def test_successors_match_a_reference_interpreter_everywhere(cells):
    """Every action at every reachable state against the semantics written out by hand."""
    cells_ = ("c1", "c2", "c3")

    def reference(facts: frozenset[str], name: str) -> frozenset[str] | None:
        op, *args = name[1:-1].split()
        f = set(facts)
        if op == "step":
            a, b = args
            if not ({f"(at r {a})", f"(next {a} {b})"} <= facts and f"(wet {b})" not in facts and a != b):
                return None
            return frozenset((f - {f"(at r {a})"}) | {f"(at r {b})"})
        if op == "paint":
            (c,) = args
            if f"(at r {c})" not in facts or not (f"(wet {c})" in facts or "(flag)" in facts):
                return None
            return frozenset(f | {f"(painted {c})"})
        if op == "raise-flag":
            return frozenset(f | {"(flag)"}) if {"(lit l1)", "(lit l2)"} & facts else None
        if op == "dry-all":
            if any(f"(wet {c})" in facts and f"(painted {c})" not in facts for c in cells_):
                return None
            return frozenset(f - {f"(wet {c})" for c in cells_})
        (lamp,) = args
        if "(at r c1)" not in facts:
            return None
        lit = f"(lit {lamp})" in facts
        painted = {f"(painted {c})" for c in cells_ if lit and f"(wet {c})" in facts}
        return frozenset(((f - {f"(lit {lamp})"}) if lit else (f | {f"(lit {lamp})"})) | painted)

    seen = {cells.task.init.facts}
    queue = deque(seen)
    checked = 0
    while queue:
        facts = queue.popleft()
        for action in cells.candidate_actions(State(facts)):
            want = reference(facts, action.name)
            got = cells.simulate(State(facts), action)
            assert got.applicable == (want is not None), (sorted(facts), action)
            if want is not None:
                assert got.next_state.facts == want, (sorted(facts), action)
                if want not in seen:
                    seen.add(want)
                    queue.append(want)
            checked += 1
    assert len(seen) > 20 and checked > 200


def test_a_goal_with_a_negated_atom(cells):
    goal = cells.goal
    assert isinstance(goal, adl.FormulaGoal) and isinstance(goal, FactGoal)
    assert goal.facts == frozenset({"(painted c2)"})
    assert not goal.satisfied(_state("(painted c2)", "(wet c3)"))
    assert goal.progress(_state("(painted c2)", "(wet c3)")) == 0.5
    assert goal.satisfied(_state("(painted c2)")) and goal.progress(_state("(painted c2)")) == 1.0
    assert str(goal) == "(and (painted c2) (not (wet c3)))"


def test_exact_model_agent_solves_it_and_the_plan_is_optimal(cells):
    plan = cells.optimal_plan()
    assert plan is not None
    # raise-flag, switch l1 (paints the wet c3), dry-all, step c1 c2, paint c2
    assert len(plan) == _bfs_length(cells) == 5
    result = Agent(cells, OracleWorldModel(cells)).run()
    assert result.solved and cells.goal.satisfied(cells.state)
    assert len(result.steps) >= len(plan)


def _bfs_length(env: PDDLEnvironment) -> int:
    start = env.task.init.facts
    depth = {start: 0}
    queue = deque([start])
    while queue:
        facts = queue.popleft()
        if env.goal.satisfied(State(facts)):
            return depth[facts]
        for action in env.applicable_actions(State(facts)):
            nxt = env.simulate(State(facts), action).next_state.facts
            if nxt not in depth:
                depth[nxt] = depth[facts] + 1
                queue.append(nxt)
    raise AssertionError("no plan")


def test_check_env_heuristics_and_the_environment_protocol(cells):
    check_env(cells, max_steps=10)
    for name in ("ff", "add", "max", "lmcut"):
        h = cells.distance_heuristic(name)
        assert h(cells.state) >= 1 and h(State(cells.state.facts | {"(painted c2)"})) >= 0
    with pytest.raises(ConfigError, match="unknown heuristic 'nope'"):
        cells.distance_heuristic("nope")


def test_code_reading_operators_and_the_lifted_domain_keeps_working(cells):
    op = cells.operator("(step c1 c2)")
    assert op.preconditions == frozenset({"(at r c1)"})  # the static (next c1 c2) is decided at grounding
    assert op.add_effects == frozenset({"(at r c2)"}) and op.del_effects == frozenset({"(at r c1)"})
    signature = domain_signature(cells.task.domain)
    assert signature.operators["step"].precondition == ("at(r,?0)", "next(?0,?1)")
    assert signature.operators["switch"].add == () and signature.constants == {"c1": "cell", "r": "robot"}
    assert signature.types["robot"] == "thing" and signature.predicates["at"] == ("thing", "cell")
    assert domain_signature(parse_domain(DOMAIN)) == signature
    assert domain_schemas(DOMAIN)[2] == {"step": 2, "paint": 1, "raise-flag": 0, "dry-all": 0, "switch": 1}


# -- which grounder --------------------------------------------------------------------------------
def test_strips_domains_stay_with_pyperplan():
    task = ground_task(DOMAIN_PDDL, generate_problem(4, seed=0))
    assert task.is_strips and task.features == ()
    assert type(next(iter(task.operators.values()))).__module__.startswith("pyperplan")
    typed = DOMAIN_PDDL.replace("(:requirements :strips)", "(:requirements :strips :typing) (:types block)")
    assert adl.needs_rich_grounder(typed) == ()


@pytest.mark.parametrize(
    ("snippet", "feature"),
    [("(not (holding ?x))", ":negative-preconditions"), ("(or (clear ?x) (holding ?x))", ":disjunctive-preconditions"),
     ("(exists (?y) (on ?x ?y))", ":existential-preconditions"),
     ("(forall (?y) (clear ?y))", ":universal-preconditions"),
     ("(not (= ?x ?x))", ":equality")],
)
def test_a_construct_used_in_a_precondition_is_enough(snippet, feature):
    domain = DOMAIN_PDDL.replace("(and (clear ?x) (ontable ?x) (handempty))",
                                 f"(and (clear ?x) (ontable ?x) (handempty) {snippet})")
    assert domain != DOMAIN_PDDL and feature in adl.needs_rich_grounder(domain)


@needs_reader
def test_a_domain_that_only_declares_adl_grounds_to_the_same_actions_either_way(monkeypatch):
    declared = DOMAIN_PDDL.replace("(:requirements :strips)", "(:requirements :adl)")
    problem = generate_problem(4, seed=3)
    rich = ground_task(declared, problem)
    assert rich.features == (":adl",)
    monkeypatch.setitem(sys.modules, "unified_planning", None)
    monkeypatch.setitem(sys.modules, "unified_planning.io", None)
    plain = ground_task(declared, problem)
    assert plain.is_strips and list(plain.operators) == list(rich.operators) and plain.init == rich.init
    for state in [rich.init, *_walk(rich, 20)]:
        for name, op in rich.operators.items():
            other = plain.operators[name]
            assert op.applicable(state.facts) == other.applicable(state.facts)
            if op.applicable(state.facts):
                assert op.apply(state.facts) == other.apply(state.facts)


def _walk(task, steps):
    state = task.init
    out = []
    for i in range(steps):
        ops = [op for op in task.operators.values() if op.applicable(state.facts)]
        state = State(ops[i % len(ops)].apply(state.facts))
        out.append(state)
    return out


def test_without_the_extra_a_rich_domain_names_the_extra_and_the_requirement(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "unified_planning", None)
    monkeypatch.setitem(sys.modules, "unified_planning.io", None)
    (tmp_path / "d.pddl").write_text(DOMAIN)
    (tmp_path / "p.pddl").write_text(PROBLEM)
    with pytest.raises(ConfigError) as info:
        PDDLEnvironment(tmp_path / "d.pddl", tmp_path / "p.pddl")
    message = str(info.value)
    assert "\n" not in message
    assert message == (f"{tmp_path / 'd.pddl'} needs :negative-preconditions, beyond STRIPS: install the 'pddl' "
                       "extra (pip install -e '.[pddl]') for unified-planning's PDDL reader")


# -- bad input -------------------------------------------------------------------------------------
@needs_reader
@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("(wet c3)", "(glows c3)", ":init atom (glows c3) names predicate glows, which the domain does not declare"),
        ("(wet c3)", "(wet c3 c2)", ":init atom (wet c3 c2) has 2 argument(s); predicate wet takes 1"),
        ("(wet c3)", "(wet c9)", ":init atom (wet c9) names object c9, which is neither in :objects nor a "
                                 "domain constant"),
        ("(painted c2)", "(painted c7)", ":goal atom (painted c7) names object c7, which is neither in :objects "
                                         "nor a domain constant"),
        ("(painted c2)", "(forall (?x - cell) (paint ?x))", ":goal atom (paint ?x) names predicate paint, which "
                                                            "the domain does not declare"),
        ("l1 l2 - lamp", "l1 l2 - light", "object l1 has type light, which the domain does not declare"),
        ("(:domain cells)", "(:domain rooms)", "the problem is for domain rooms, not cells"),
    ],
)
def test_problem_errors_name_the_file_and_the_bad_value(tmp_path, old, new, why):
    (tmp_path / "d.pddl").write_text(DOMAIN)
    problem = tmp_path / "p.pddl"
    assert old in PROBLEM
    problem.write_text(PROBLEM.replace(old, new, 1))
    with pytest.raises(DomainError) as info:
        PDDLEnvironment(tmp_path / "d.pddl", problem)
    assert str(info.value) == f"invalid PDDL in {problem}: {why}"


@needs_reader
@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("(not (wet ?to))", "(not (soaked ?to))", "soaked"),
        ("(at r ?from) (next", "(at r ?from ?to) (next", "arity 2 but 3"),
        ("(?from ?to - cell)", "(?from ?to - square)", "square"),
        ("(:action paint", "(:action paint :cost 3", "Expected"),
        ("(painted ?c))))))", "(painted ?c)))))", "missing closing parenthesis"),
        ("(flag))", "(flag) (speed ?r - robot))", "bad"),
    ],
    ids=["predicate", "arity", "type", "parse", "unbalanced", "unused-bad-is-fine"],
)
def test_domain_errors_name_the_domain_file(tmp_path, old, new, names):
    domain = tmp_path / "d.pddl"
    assert old in DOMAIN
    domain.write_text(DOMAIN.replace(old, new, 1))
    (tmp_path / "p.pddl").write_text(PROBLEM)
    if names == "bad":  # a predicate declared but unused is no error
        PDDLEnvironment(domain, tmp_path / "p.pddl")
        return
    with pytest.raises(DomainError) as info:
        PDDLEnvironment(domain, tmp_path / "p.pddl")
    message = str(info.value)
    assert "\n" not in message and len(message) < 1000
    assert message.startswith(f"invalid PDDL domain in {domain}") and names in message, message


@needs_reader
def test_a_problem_that_does_not_parse_names_the_problem_file(tmp_path):
    (tmp_path / "d.pddl").write_text(DOMAIN)
    problem = tmp_path / "p.pddl"
    problem.write_text(PROBLEM.replace("(lit l1))", "(lit l1)) (:goal"))
    with pytest.raises(DomainError, match=re.escape(f"invalid PDDL in {problem}: ")):
        PDDLEnvironment(tmp_path / "d.pddl", problem)


@needs_reader
def test_a_cyclic_type_hierarchy_is_refused():
    domain = """(define (domain t) (:requirements :adl) (:types a - b b - a)
      (:predicates (p ?x - a)) (:action act :parameters (?x - a) :precondition (not (p ?x)) :effect (p ?x)))"""
    with pytest.raises(DomainError, match="type a is its own ancestor"):
        ground_task(domain, "(define (problem q) (:domain t) (:objects o - a) (:init) (:goal (p o)))", source="d")


@needs_reader
def test_numeric_fluents_are_refused_by_name():
    domain = """(define (domain n) (:requirements :adl :numeric-fluents) (:predicates (p ?x)) (:functions (fuel))
      (:action act :parameters (?x) :precondition (not (p ?x)) :effect (and (p ?x) (decrease (fuel) 1))))"""
    problem = "(define (problem q) (:domain n) (:objects o) (:init (= (fuel) 3)) (:goal (p o)))"
    with pytest.raises(DomainError, match=r"invalid PDDL domain in d\.pddl line 1: numeric fluents \(:functions\) "
                                          r"are not supported"):
        ground_task(domain, problem, source="d.pddl")


@needs_reader
@pytest.mark.parametrize("construct, named", [
    ("(:derived (q ?x) (p ?x))", "derived predicates"), ("(:durative-action d)", "durative actions"),
    ("(:types a - (either b c))", "either types")])
def test_unsupported_constructs_are_named_with_their_line(construct, named):
    domain = ("(define (domain n) (:requirements :adl)\n  " + construct +
              "\n  (:predicates (p ?x)) (:action act :parameters (?x) :precondition (not (p ?x)) :effect (p ?x)))")
    with pytest.raises(DomainError, match=rf"d\.pddl line 2: {named}.* are not supported"):
        ground_task(domain, "(define (problem q) (:domain n) (:objects o) (:init) (:goal (p o)))", source="d.pddl")


@needs_reader
def test_a_goal_false_in_every_state_is_named():
    domain = DOMAIN_PDDL.replace("(:requirements :strips)", "(:requirements :adl)")
    problem = generate_problem(3, seed=0).replace("(:goal (and (on b2 b3) (ontable b1) (ontable b3)))",
                                                  "(:goal (and (= b1 b2)))")
    with pytest.raises(DomainError, match=r"invalid PDDL in p: the :goal .* is false in every state"):
        ground_task(domain, problem, source="p")


# -- bounds ----------------------------------------------------------------------------------------
def _wide(params: int, objects: int) -> tuple[str, str]:
    variables = " ".join(f"?v{i}" for i in range(params))
    domain = (f"(define (domain w) (:requirements :negative-preconditions) (:predicates (p ?x) (done)) "
              f"(:action act :parameters ({variables}) :precondition (not (done)) :effect (done)))")
    names = " ".join(f"o{i}" for i in range(objects))
    return domain, f"(define (problem big) (:domain w) (:objects {names}) (:init) (:goal (done)))"


@needs_reader
def test_too_many_ground_actions_are_refused_with_their_count():
    domain, problem = _wide(3, 47)  # 47³ = 103,823
    with pytest.raises(DomainError) as info:
        ground_task(domain, problem, source="p.pddl")
    assert str(info.value) == ("problem too large in p.pddl: grounding its 47 objects would build 103,823 ground "
                               "actions, more than the 100,000 allowed")
    domain, problem = _wide(3, 46)  # 97,336
    assert len(ground_task(domain, problem).operators) == 97_336


@needs_reader
def test_parameter_bindings_and_ground_atoms_are_bounded(monkeypatch):
    monkeypatch.setattr(adl, "MAX_BINDINGS", 5_000)
    monkeypatch.setattr(adl, "MAX_GROUND_ACTIONS", 1_000)
    domain, problem = _wide(3, 30)  # 27,000 ground actions, 27,930 partial bindings
    with pytest.raises(DomainError, match=r"would build more than 4,\d{3} ground actions, more than the 1,000 allowed"):
        ground_task(domain, problem, source="p.pddl")
    monkeypatch.setattr(adl, "MAX_GROUND_ACTIONS", 100_000)
    with pytest.raises(DomainError, match=r"30 objects tries more than 5,000 parameter bindings, the most allowed"):
        ground_task(domain, problem, source="p.pddl")
    monkeypatch.setattr(adl, "MAX_GROUND_ATOMS", 50)
    small_domain, small_problem = _wide(1, 30)  # two atoms an action
    with pytest.raises(DomainError, match=r"more than 50 ground precondition and effect atoms"):
        ground_task(small_domain, small_problem, source="p.pddl")


@needs_reader
def test_grounding_stays_fast_near_ten_thousand_actions(tmp_path):
    """Blocksworld with 70 blocks (9,940 ground actions) through the rich grounder."""
    import time

    blocks = [f"b{i}" for i in range(70)]
    init = "(handempty) " + " ".join(f"(ontable {b}) (clear {b})" for b in blocks)
    goal = " ".join(f"(on b{i} b{i + 1})" for i in range(69))
    problem = (f"(define (problem big) (:domain blocksworld) (:objects {' '.join(blocks)}) (:init {init}) "
               f"(:goal (and {goal})))")
    domain = DOMAIN_PDDL.replace("(:requirements :strips)", "(:requirements :strips :negative-preconditions)")
    ground_task(domain, generate_problem(3, seed=0))  # the reader's one-time start-up
    start = time.perf_counter()
    task = ground_task(domain, problem)
    assert len(task.operators) == 9_940 and not task.is_strips
    assert time.perf_counter() - start < 30
    strips = ground_task(DOMAIN_PDDL, problem)
    assert list(strips.operators) == list(task.operators)


@needs_reader
def test_shortest_plan_is_a_shortest_plan_on_small_tasks(tmp_path):
    for seed, n in itertools.product(range(3), (3, 4)):
        domain = DOMAIN_PDDL.replace("(:requirements :strips)", "(:requirements :adl)")
        (tmp_path / "d.pddl").write_text(domain)
        (tmp_path / "p.pddl").write_text(generate_problem(n, seed=seed))
        env = PDDLEnvironment(tmp_path / "d.pddl", tmp_path / "p.pddl")
        assert not env.task.is_strips
        plan = adl.shortest_plan(env.task)
        assert plan is not None and len(plan) == _bfs_length(env)
        state = env.task.init
        for name in plan:
            prediction = env.simulate(state, Action(name))
            assert prediction.applicable
            state = prediction.next_state
        assert env.goal.satisfied(state)


def test_shortest_plan_gives_up_past_its_bound(cells):
    with pytest.raises(DomainError, match="no plan for line found within 2 expanded states"):
        adl.shortest_plan(cells.task, max_states=2)


def test_read_sexpr_and_features_of_text_that_does_not_parse():
    assert adl.read_sexpr("(a (b c) ; note\n d)") == ["a", ["b", "c"], "d"]
    assert adl.read_sexpr("(a (b c)") is None and adl.read_sexpr("a)") is None
    assert adl.rich_features("(define (domain x) (:action") == () and adl.rich_features("") == ()
