"""The vocabulary and STRIPS operators inferred from transition logs, and the learned hFF."""

from __future__ import annotations

import random
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from planner.data.collect import TransitionRecord, read_records
from planner.data.explore import collect_from_env
from planner.data.schema import LearnedSchema, SchemaError, infer_schema, learned_heuristic, schema_differences
from planner.env.base import StepResult
from planner.env.blocksworld import DOMAIN_PDDL, write_problem
from planner.env.pddl import PDDLEnvironment, parse_domain
from planner.search.beam import beam_search
from planner.search.policies import distance_value
from planner.search.problem import Budget, SearchProblem
from planner.types import Action, FactGoal, State
from planner.world.oracle import OracleWorldModel
from planner.world.signature import domain_signature


@pytest.fixture(scope="module")
def bw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bw")


def bw_env(root: Path, n: int, seed: int) -> PDDLEnvironment:
    return PDDLEnvironment(*write_problem(root / f"{n}-{seed}", n, seed=seed))


@pytest.fixture(scope="module")
def bw_schema(bw_dir: Path) -> LearnedSchema:
    """The schema learned from Blocksworld explored as a black box (3–5 blocks, 6 seeds)."""
    collect_from_env(lambda s: bw_env(bw_dir, 3 + s % 3, s), out_dir=bw_dir / "logs", seeds={"train": range(6)},
                     episodes_per_seed=3, max_steps=60, domain="blocksworld")
    return infer_schema(read_records(bw_dir / "logs" / "train.jsonl"))


def test_blocksworld_signature_learned_exactly(bw_schema: LearnedSchema) -> None:
    real = domain_signature(parse_domain(DOMAIN_PDDL))
    assert schema_differences(bw_schema, real) == []
    assert bw_schema.signature() == real
    assert bw_schema.predicates == {"clear": 1, "handempty": 0, "holding": 1, "on": 2, "ontable": 1}
    assert bw_schema.actions == {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
    assert bw_schema.not_strips == {} and bw_schema.unobserved == () and bw_schema.constants == ()
    assert bw_schema.inapplicable > 0 and bw_schema.explained == bw_schema.inapplicable


def test_learned_pddl_domain_parses_back_to_the_same_signature(bw_schema: LearnedSchema) -> None:
    assert domain_signature(parse_domain(bw_schema.pddl_domain())) == bw_schema.signature()


def test_too_little_data_shows_as_differences(bw_dir: Path) -> None:
    recs = [r for r in read_records(bw_dir / "logs" / "train.jsonl") if not r.action.startswith("(stack")]
    found = schema_differences(infer_schema(recs[:120]), domain_signature(parse_domain(DOMAIN_PDDL)))
    assert "operator stack: missing operator" in found


def test_learned_hff_equals_pyperplan_hff_on_the_real_domain(bw_dir: Path, bw_schema: LearnedSchema) -> None:
    rng = random.Random(3)
    for n, seed in ((4, 40), (5, 41), (6, 42)):
        env = bw_env(bw_dir, n, seed)
        real = env.distance_heuristic("ff")
        learned = learned_heuristic(bw_schema, env.goal, objects=env.task.objects)
        states = env.random_walk(env.task.init, 25, rng)
        assert [learned(s) for s in states] == [real(s) for s in states]


def test_beam_search_with_the_learned_heuristic_solves_six_blocks(bw_dir: Path, bw_schema: LearnedSchema) -> None:
    env = bw_env(bw_dir, 6, 7)
    value = distance_value(learned_heuristic(bw_schema, env.goal, objects=env.task.objects))
    problem = SearchProblem.from_env(env, OracleWorldModel(env), value=value)
    result = beam_search(problem, env.task.init, Budget(beam_width=8))
    assert result.plan.reaches_goal
    state = env.reset()[0]
    for action in result.plan.actions:
        state = env.step(action).state
    assert env.goal.satisfied(state)


def test_heuristic_refuses_goals_outside_the_schema(bw_schema: LearnedSchema) -> None:
    with pytest.raises(SchemaError, match=r"goal fact \(above b1 b2\) does not fit"):
        learned_heuristic(bw_schema, FactGoal(frozenset({"(above b1 b2)"})))
    with pytest.raises(SchemaError, match="unknown heuristic 'best'"):
        learned_heuristic(bw_schema, [], name="best")
    assert learned_heuristic(bw_schema, [])(State.from_facts(["(handempty)"])) == 0.0


class Lamps:
    """Lamps switched by ``(toggle l)`` (a conditional effect: on → off, off → on) and marked
    by ``(tag l)`` (plain STRIPS: adds ``(tagged l)``, also lights the ``hall`` lamp)."""

    goal = FactGoal(frozenset({"(lit l1)", "(lit l2)"}))

    def __init__(self, seed: int) -> None:
        self.state = State.from_facts(["(lamp l1)", "(lamp l2)"])

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        self.state = State.from_facts(["(lamp l1)", "(lamp l2)"])
        return self.state, {}

    def candidate_actions(self, state: State) -> list[Action]:
        return [Action(f"({op} {lamp})") for op in ("toggle", "tag") for lamp in ("l1", "l2")]

    def step(self, action: Action) -> StepResult:
        (lamp,) = action.args
        fact = f"(lit {lamp})"
        if action.operator == "toggle":
            facts = self.state.facts - {fact} if fact in self.state.facts else self.state.facts | {fact}
        else:
            facts = self.state.facts | {f"(tagged {lamp})", "(lit hall)"}
        self.state = State.from_facts(facts)
        return StepResult(self.state, 0.0, False, False, MappingProxyType({}), True)


def test_non_strips_effects_are_reported_not_learned_wrong(tmp_path: Path) -> None:
    collect_from_env(Lamps, out_dir=tmp_path, seeds={"train": range(2)}, episodes_per_seed=2, max_steps=12,
                     domain="lamps")
    schema = infer_schema(read_records(tmp_path / "train.jsonl"))
    assert set(schema.not_strips) == {"toggle"} and "toggle" not in schema.operators
    example = schema.not_strips["toggle"]
    assert example.predicted != example.next_state and "conditional effect" in example.reason
    assert schema.operators["tag"].add == ("lit(hall)", "tagged(?0)")
    assert schema.operators["tag"].precondition == ("lamp(?0)",)
    assert schema.constants == ("hall",) and "(:constants hall)" in schema.pddl_domain()
    assert "toggle" not in schema.signature().operators and schema.signature().constants == {"hall": "object"}


def record(action: str, state: list[str], next_state: list[str], **fields: Any) -> TransitionRecord:
    base: dict[str, Any] = dict(problem="p", domain="d", objects=[], goal=[], applicable=True, reward=0.0,
                                done=False, episode="p/e", step=0, source="random", split="train")
    return TransitionRecord(**{**base, "action": action, "state": state, "next_state": next_state, **fields})


def test_inconsistent_records_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"predicate at is used with 2 and 1 arguments \(\(at a\)\)"):
        infer_schema([record("(go a)", ["(at a)"], ["(at a b)"])])
    with pytest.raises(SchemaError, match="no applicable transition among the 1 records"):
        infer_schema([record("(go a)", ["(at a)"], ["(at a)"], applicable=False)])
    with pytest.raises(SchemaError, match=r"one domain, got \['d', 'e'\]"):
        infer_schema([record("(go a)", [], ["(at a)"]), record("(go a)", [], ["(at a)"], domain="e")])


def test_unexplained_refusals_are_counted_with_examples() -> None:
    recs = [record("(go a)", ["(free a)"], ["(at a)", "(free a)"]),
            record("(go b)", ["(free b)"], ["(at b)", "(free b)"]),
            record("(go a)", ["(at a)", "(free a)"], ["(at a)", "(free a)"], applicable=False),  # negative pre.
            record("(go b)", [], [], applicable=False)]
    schema = infer_schema(recs)
    assert schema.operators["go"].precondition == ("free(?0)",)
    assert (schema.inapplicable, schema.explained) == (2, 1)
    assert schema.unexplained == ("(go a) at {(at a) (free a)}",)
