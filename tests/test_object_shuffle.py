"""Renaming a training example's objects (``planner train --shuffle-objects``): the renamed
example is exactly the example of the same transition with its objects so renamed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.data.collect import TransitionRecord
from planner.training.data import Encoded, ObjectShuffle, encode_records, sample_sequence
from planner.world.codec import domain_vocabulary

PREDICATES = {"on": 2, "ontable": 1, "clear": 1, "handempty": 0, "holding": 1}
ACTIONS = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
MAX_OBJECTS = 12  # past x9, where the placeholders' word order is not their numbers' (x10 < x2)
VOCAB = domain_vocabulary(PREDICATES, ACTIONS, MAX_OBJECTS)
SHUFFLE = ObjectShuffle.of(VOCAB, MAX_OBJECTS, 1.0)


def _record(objects: list[str], state: list[str], action: str, applicable: bool, nxt: list[str],
            goal: list[str]) -> TransitionRecord:
    return TransitionRecord(problem="p", domain="blocksworld", objects=objects, goal=goal, state=state,
                            action=action, applicable=applicable, next_state=nxt if applicable else state,
                            reward=0.0, done=False, episode="p/random-0", step=0, source="random", split="train")


@st.composite
def transitions(draw: st.DrawFn) -> TransitionRecord:
    n = draw(st.integers(2, MAX_OBJECTS))
    objects = [f"b{i}" for i in range(n)]
    obj = st.sampled_from(objects)

    def facts() -> list[str]:
        one = st.one_of(
            st.tuples(st.sampled_from(["ontable", "clear", "holding"]), obj).map(lambda t: f"({t[0]} {t[1]})"),
            st.tuples(obj, obj).map(lambda t: f"(on {t[0]} {t[1]})"),
            st.just("(handempty)"))
        return sorted(set(draw(st.lists(one, max_size=3 * n))))

    state, nxt = facts(), facts()
    goal = sorted(set(draw(st.lists(st.tuples(obj, obj).map(lambda t: f"(on {t[0]} {t[1]})"), min_size=1,
                                    max_size=3))))
    verb = draw(st.sampled_from(sorted(ACTIONS)))
    action = f"({verb} {' '.join(draw(obj) for _ in range(ACTIONS[verb]))})"
    return _record(objects, state, action, draw(st.booleans()), nxt, goal)


def _renamed(record: TransitionRecord, perm: np.ndarray) -> TransitionRecord:
    """``record`` with its ``i``-th object (sorted, from 1) named so that it sorts ``perm[i]``-th."""
    new = {o: f"o{perm[i + 1]:02d}" for i, o in enumerate(sorted(record.objects))}

    def atom(text: str) -> str:
        name, *args = text.strip("()").split()
        return f"({' '.join([name, *(new[a] for a in args)])})"

    return record.model_copy(update={
        "objects": sorted(new.values()), "goal": sorted(map(atom, record.goal)),
        "state": sorted(map(atom, record.state)), "next_state": sorted(map(atom, record.next_state)),
        "action": atom(record.action)})


def _same(a: Encoded, b: Encoded) -> None:
    for field in ("goal", "state", "answer", "next_state", "goal_next", "goal_now"):
        assert getattr(a, field).tolist() == getattr(b, field).tolist(), field
    assert sorted(a.fact_pool.tolist()) == sorted(b.fact_pool.tolist())
    assert (a.action, a.applicable, a.objects) == (b.action, b.applicable, b.objects)


@settings(max_examples=200, deadline=None)
@given(transitions(), st.randoms(use_true_random=False))
def test_a_renamed_example_is_the_example_of_the_renamed_transition(record, random):
    perm = np.arange(MAX_OBJECTS + 1)
    order = list(range(1, len(record.objects) + 1))
    random.shuffle(order)
    perm[1:len(record.objects) + 1] = order
    [example] = encode_records([record], VOCAB, PREDICATES, ACTIONS, MAX_OBJECTS)
    [expected] = encode_records([_renamed(record, perm)], VOCAB, PREDICATES, ACTIONS, MAX_OBJECTS)
    _same(SHUFFLE.permuted(example, perm), expected)


def test_the_identity_changes_nothing_and_a_swap_is_undone_by_itself():
    record = _record([f"b{i}" for i in range(11)], ["(clear b0)", "(handempty)", "(on b0 b10)", "(ontable b10)"],
                     "(unstack b0 b10)", True, ["(clear b10)", "(holding b0)", "(ontable b10)"], ["(on b10 b0)"])
    [example] = encode_records([record], VOCAB, PREDICATES, ACTIONS, MAX_OBJECTS)
    _same(SHUFFLE.permuted(example, np.arange(MAX_OBJECTS + 1)), example)
    swap = np.arange(MAX_OBJECTS + 1)
    swap[[1, 2]] = swap[[2, 1]]  # b0 (x1) and b1 (x2)
    once = SHUFFLE.permuted(example, swap)
    assert VOCAB.decode([once.action]) == ["unstack(x2,x3)"]  # b10 is x3 (sorted after b1)
    _same(SHUFFLE.permuted(once, swap), example)


def test_sequences_are_renamed_with_the_probability_and_not_at_all_without_it():
    record = _record(["a", "b", "c"], ["(clear a)", "(handempty)", "(on a b)", "(ontable b)", "(ontable c)"],
                     "(unstack a b)", True, ["(clear b)", "(holding a)", "(ontable b)", "(ontable c)"], ["(on c a)"])
    [example] = encode_records([record], VOCAB, PREDICATES, ACTIONS, MAX_OBJECTS)
    plain = sample_sequence(example, VOCAB, np.random.default_rng(7), relabel=False)
    # probability 0 draws nothing more from the generator: the batches of earlier runs stay the same
    assert sample_sequence(example, VOCAB, np.random.default_rng(7), relabel=False,
                           shuffle=ObjectShuffle.of(VOCAB, MAX_OBJECTS, 0.0)) == plain
    rng = np.random.default_rng(0)
    renamed = [sample_sequence(example, VOCAB, rng, relabel=False, shuffle=ObjectShuffle.of(VOCAB, MAX_OBJECTS, 0.5))
               != plain for _ in range(400)]
    # 1/2 chance of a permutation, 1/6 of those the identity: 5/12 of sequences differ
    assert 0.33 < np.mean(renamed) < 0.5


def test_a_word_over_something_else_than_placeholders_is_named():
    from planner.training.errors import TrainingDataError
    from planner.world.vocab import Vocabulary

    with pytest.raises(TrainingDataError, match=r"'on\(x1,table\)'.*'table'"):
        ObjectShuffle.of(Vocabulary(("ok", "on(x1,table)")), 2, 1.0)


def test_a_vocabulary_without_every_renaming_of_its_words_is_refused():
    from planner.training.errors import TrainingDataError
    from planner.world.vocab import Vocabulary

    # on(x1,x2) with x1 and x2 swapped is on(x2,x1), which the vocabulary lacks
    with pytest.raises(TrainingDataError, match=r"has 'on\(x1,x2\)' but not every renaming"):
        ObjectShuffle.of(Vocabulary(("ok", "on(x1,x2)", "on(x2,x3)")), 3, 1.0)
