"""Collection from any environment through reset/step/candidate_actions only."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from planner.data.collect import TransitionRecord, read_records
from planner.data.explore import collect_from_env, local_view
from planner.env.base import StepResult
from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.errors import ConfigError, EnvironmentStepError, PlannerError
from planner.types import Action, State, objects_of, parse_atom


def bw_maker(tmp: Path) -> Callable[[int], PDDLEnvironment]:
    """Seed ``s`` → a Blocksworld problem of 3 + s % 3 blocks (files under ``tmp``)."""
    def make(seed: int) -> PDDLEnvironment:
        return PDDLEnvironment(*write_problem(tmp / f"p{seed}", 3 + seed % 3, seed=seed))
    return make


class Counter:
    """A goal that is no FactGoal: the counter reaches 3."""

    def satisfied(self, state: State) -> bool:
        return "(at c3)" in state.facts

    def progress(self, state: State) -> float:
        return 1.0 if self.satisfied(state) else 0.0


class CounterEnv:
    """A counter stepped by ``(inc cI cJ)`` (applies when at cI and J = I + 1); raises at
    ``boom`` steps when asked to."""

    def __init__(self, seed: int, *, boom: int | None = None) -> None:
        self.seed, self.boom, self.steps = seed, boom, 0
        self.state = State.from_facts(["(at c0)"])
        self.goal = Counter()

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        self.state, self.steps = State.from_facts(["(at c0)"]), 0
        return self.state, {}

    def candidate_actions(self, state: State) -> list[Action]:
        return [Action(f"(inc c{i} c{j})") for i in range(4) for j in range(4) if i != j]

    def step(self, action: Action) -> StepResult:
        self.steps += 1
        if self.boom is not None and self.steps >= self.boom:
            raise RuntimeError("motor stalled")
        i, j = (int(a[1:]) for a in action.args)
        ok = f"(at c{i})" in self.state.facts and j == i + 1
        if ok:
            self.state = State.from_facts([f"(at c{j})"])
        done = ok and self.goal.satisfied(self.state)
        return StepResult(self.state, 1.0 if done else 0.0, done, False, MappingProxyType({}), ok)


def test_parse_atom_and_objects() -> None:
    assert parse_atom("(on a b)") == ("on", ("a", "b"))
    assert parse_atom(" (handempty) ") == ("handempty", ())
    assert objects_of(["(on a b)", "(handempty)"], [Action("(stack c a)")]) == ["a", "b", "c"]
    for bad in ("on a b", "()", "(on (a) b)"):
        with pytest.raises(ConfigError, match="not a Lisp-form"):
            parse_atom(bad)


def test_local_view_lifts_the_facts_an_action_can_see() -> None:
    state = State.from_facts(["(on a b)", "(clear a)", "(clear c)", "(handempty)"])
    assert local_view(state, Action("(unstack a b)")) == ("unstack", frozenset({"on(?0,?1)", "clear(?0)", "handempty"}))


def test_blocksworld_collection_writes_every_step_by_split(tmp_path: Path) -> None:
    stats = collect_from_env(bw_maker(tmp_path), out_dir=tmp_path / "logs",
                             seeds={"train": range(0, 3), "test": range(10, 12)},
                             episodes_per_seed=3, max_steps=30, domain="blocksworld")
    train, test = (read_records(tmp_path / "logs" / f"{s}.jsonl") for s in ("train", "test"))
    assert stats["train"].transitions == len(train) and stats["test"].transitions == len(test)
    assert stats["train"].seeds == 3 and stats["train"].episodes == 9
    assert stats["train"].applicable == sum(r.applicable for r in train) > 0
    assert {r.problem for r in train} == {"blocksworld-0", "blocksworld-1", "blocksworld-2"}
    assert {r.problem for r in test} == {"blocksworld-10", "blocksworld-11"}
    assert {r.source for r in train} == {"random", "novelty", "probe"}
    for r in train + test:
        assert r.domain == "blocksworld" and r.goal and set(r.objects) >= {"b1", "b2", "b3"}
        if not r.applicable:
            assert r.state == r.next_state
    # steps of an episode are numbered from 0 and chain states
    episode = [r for r in train if r.episode == train[0].episode]
    assert [r.step for r in episode] == list(range(len(episode)))
    assert all(a.next_state == b.state for a, b in itertools.pairwise(episode))


def test_collection_is_reproducible(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = dict(seeds={"train": range(2)}, episodes_per_seed=2, max_steps=20, seed=7)
    collect_from_env(bw_maker(tmp_path), out_dir=tmp_path / "a", **kwargs)
    collect_from_env(bw_maker(tmp_path), out_dir=tmp_path / "b", **kwargs)
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()


def test_novelty_meets_more_distinct_outcomes_than_random(tmp_path: Path) -> None:
    def outcomes(behaviour: str) -> int:
        collect_from_env(bw_maker(tmp_path), out_dir=tmp_path / behaviour, seeds={"train": range(3)},
                         episodes_per_seed=2, max_steps=40, behaviours=[behaviour])  # type: ignore[list-item]
        recs = read_records(tmp_path / behaviour / "train.jsonl")
        return len({(local_view(r.state_obj(), Action(r.action)), r.applicable) for r in recs})

    novelty, random_walk = outcomes("novelty"), outcomes("random")
    assert novelty > random_walk, (novelty, random_walk)


def test_demonstrations_replay_and_non_fact_goals(tmp_path: Path) -> None:
    plan = ["(inc c0 c1)", "(inc c2 c0)", "(inc c1 c2)", "(inc c2 c3)", "(inc c3 c0)"]
    stats = collect_from_env(CounterEnv, out_dir=tmp_path, seeds={"train": range(1)}, episodes_per_seed=0,
                             max_steps=10, demonstrations={0: plan}, domain="counter")
    recs = read_records(tmp_path / "train.jsonl")
    assert stats["train"].episodes == 1 and [r.action for r in recs] == plan[:4]  # stops at the goal
    assert [r.applicable for r in recs] == [True, False, True, True]
    assert recs[-1].done and recs[-1].reward == 1.0
    assert all(r.source == "demo" and r.goal == [] for r in recs)
    assert recs[0].objects == ["c0", "c1", "c2", "c3"]


def test_a_raising_environment_is_named_and_what_was_written_stays(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentStepError, match=r"seed 0, step 4, action \(inc .*motor stalled") as info:
        collect_from_env(lambda s: CounterEnv(s, boom=5), out_dir=tmp_path, seeds={"train": range(2)},
                         episodes_per_seed=1, max_steps=10)
    assert isinstance(info.value, PlannerError)
    assert len(read_records(tmp_path / "train.jsonl")) == 4


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(seeds={"train": range(5), "test": range(4, 8)}), "seed 4 is in both split train and split test"),
    (dict(seeds={"dev": range(2)}), "unknown split 'dev'"),
    (dict(seeds={"train": range(2)}, behaviours=["greedy"]), "unknown behaviour 'greedy'"),
    (dict(seeds={"train": range(2)}, max_steps=0), "max_steps must be >= 1, got 0"),
    (dict(seeds={"train": range(2)}, demonstrations={9: ["(inc c0 c1)"]}), "seed 9, which is in no split"),
])
def test_bad_requests_are_refused_before_writing(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        collect_from_env(CounterEnv, out_dir=tmp_path, **kwargs)
    assert not (tmp_path / "train.jsonl").exists()


def test_text_states_are_refused(tmp_path: Path) -> None:
    class TextEnv(CounterEnv):
        def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
            return State.from_text("You are in a hall."), {}

    with pytest.raises(ConfigError, match="seed 0: reset\\(\\) gave a text state"):
        collect_from_env(TextEnv, out_dir=tmp_path, seeds={"train": range(1)})


def test_record_sources_widened_and_old_logs_still_read(tmp_path: Path) -> None:
    base = dict(problem="p", domain="d", objects=[], goal=[], state=[], action="(a)", applicable=True,
                next_state=[], reward=0.0, done=False, episode="p/e", step=0, split="train")
    for source in ("random", "plan", "novelty", "probe", "demo"):
        TransitionRecord(**base, source=source)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        TransitionRecord(**base, source="dream")  # type: ignore[arg-type]
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({**base, "source": "plan"}) + "\n")
    assert read_records(old)[0].source == "plan"


def test_an_environment_that_cannot_be_built_is_named(tmp_path: Path) -> None:
    def broken(seed: int) -> CounterEnv:
        raise OSError("no such robot")

    with pytest.raises(EnvironmentStepError, match="environment of seed 3 raised: OSError: no such robot"):
        collect_from_env(broken, out_dir=tmp_path, seeds={"val": range(3, 5)})


class Fountain:
    """A fountain that pours a new portion of water, named ``water_K``, on each ``(pour f)``:
    a world that makes objects its start state did not name."""

    def __init__(self, seed: int) -> None:
        self.goal = Counter()
        self.poured = 0
        self.state = State.from_facts(["(in water_1 f)"])

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        self.poured = 0
        self.state = State.from_facts(["(in water_1 f)"])
        return self.state, {}

    def candidate_actions(self, state: State) -> list[Action]:
        return [Action("(pour f)"), Action("(drink water_1)")]

    def step(self, action: Action) -> StepResult:
        if action.name == "(pour f)":
            self.poured += 1
            self.state = State(self.state.facts | {f"(in water_{self.poured + 1} f)"})
            return StepResult(self.state, 0.0, False, False, MappingProxyType({}), True)
        return StepResult(self.state, 0.0, False, False, MappingProxyType({}), False)


def test_a_step_that_makes_a_new_object_names_it_in_that_record_and_later_ones(tmp_path):
    from planner.types import objects_of

    stats = collect_from_env(Fountain, out_dir=tmp_path, seeds={"train": range(0, 3)}, episodes_per_seed=2,
                             max_steps=10, domain="fountain")
    records = read_records(tmp_path / "train.jsonl")
    assert stats["train"].new_objects >= 1
    assert any("water_3" in r.objects for r in records)
    for r in records:  # every record can be written with its own objects
        assert set(objects_of([*r.state, *r.next_state], [Action(r.action)])) <= set(r.objects)
    firsts = [r for r in records if r.step == 0]
    assert firsts and all(set(r.objects) == {"f", "water_1"} | set(objects_of(r.next_state)) for r in firsts)


def test_a_near_miss_is_one_fact_from_a_view_seen_to_apply() -> None:
    from planner.data.explore import _Memory

    memory = _Memory()
    memory.note(("take", frozenset({"in(?0,?1)", "at(?1)"})), True)
    memory.note(("take", frozenset({"in(?0,?1)", "at(?1)", "openable(?1)", "opened(?1)"})), True)
    assert memory.near_miss(("take", frozenset({"in(?0,?1)", "at(?1)", "openable(?1)"})))  # closed
    assert memory.near_miss(("take", frozenset({"in(?0,?1)"})))  # not there
    assert not memory.near_miss(("take", frozenset({"openable(?1)"})))  # two facts off
    assert not memory.near_miss(("take", frozenset({"in(?0,?1)", "at(?1)"})))  # seen to apply
    assert not memory.near_miss(("move", frozenset({"in(?0,?1)"})))  # no view of its schema applied
    memory.note(("take", frozenset({"in(?0,?1)"})), True)  # applies after all: no longer a miss
    assert not memory.near_miss(("take", frozenset({"in(?0,?1)"})))


def _near_misses(records: list[TransitionRecord]) -> int:
    """Refused records whose view is one fact from a view seen to apply anywhere in ``records``."""
    views = [(local_view(r.state_obj(), Action(r.action)), r.applicable) for r in records]
    applied = {key for key, ok in views if ok}
    return sum(not ok and key not in applied
               and any(name == key[0] and len(view ^ key[1]) == 1 for name, view in applied)
               for key, ok in views)


def test_boundary_walks_try_more_near_misses_than_the_other_behaviours(tmp_path: Path) -> None:
    def collect(behaviour: str) -> list[TransitionRecord]:
        collect_from_env(bw_maker(tmp_path), out_dir=tmp_path / behaviour, seeds={"train": range(4)},
                         episodes_per_seed=2, max_steps=40, behaviours=[behaviour])  # type: ignore[list-item]
        return read_records(tmp_path / behaviour / "train.jsonl")

    found = {b: _near_misses(collect(b)) for b in ("boundary", "novelty", "probe", "random")}
    assert found["boundary"] > max(found["novelty"], found["probe"], found["random"]), found
    boundary = read_records(tmp_path / "boundary" / "train.jsonl")
    assert {r.source for r in boundary} == {"boundary"} and any(r.applicable for r in boundary)


def test_boundary_is_asked_for_not_a_default(tmp_path: Path) -> None:
    collect_from_env(bw_maker(tmp_path), out_dir=tmp_path, seeds={"train": range(1)}, episodes_per_seed=4,
                     max_steps=5)
    assert "boundary" not in {r.source for r in read_records(tmp_path / "train.jsonl")}
