"""The fact-delta codec's prompt layouts: version 1 (``action A =>``), version 2 (the state's
facts that name one of the action's arguments written again after it) and version 3 (only those
whose first argument is one of the action's), at run time and in training alike."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import CodecError, ContextOverflowError
from planner.types import Action, FactGoal, Prediction, State
from planner.world.codec import CODEC_VERSIONS, FactDeltaCodec, argument_facts, domain_vocabulary, parse_word
from tests.conftest import BW_ACTIONS, BW_PREDICATES, build_tiny_gguf

OBJECTS = ("red", "blue", "green", "amber")
STATE = State.from_facts(["(on red blue)", "(ontable blue)", "(ontable green)", "(clear red)",
                          "(clear green)", "(handempty)"])
GOAL = FactGoal(frozenset({"(on blue green)"}))


def _codec(version, numbering=()):
    return FactDeltaCodec(objects=OBJECTS[:3], predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=8,
                          version=version, numbering=numbering)


def test_version_2_writes_the_facts_naming_the_actions_arguments_after_it():
    assert _codec(2).prompt_text(GOAL, STATE, Action("(unstack red blue)")) == (
        "goal on(x1,x2) state clear(x2) clear(x3) handempty on(x3,x1) ontable(x1) ontable(x2) "
        "action unstack(x3,x1) clear(x3) on(x3,x1) ontable(x1) =>"
    )
    # an action whose argument no fact names: nothing between it and "=>"
    empty = State.from_facts(["(handempty)"])
    assert _codec(2).suffix_words(Action("(pick-up green)"), empty) == ["action", "pick-up(x2)", "=>"]
    assert _codec(1).prompt_text(GOAL, STATE, Action("(unstack red blue)")).endswith("action unstack(x3,x1) =>")


def test_version_3_writes_only_the_facts_whose_subject_is_an_argument_of_the_action():
    # on(x3,x1) names blue (x1) second: version 2 writes it for stack(x2,x1) and pick-up(x1), 3 does not
    state = State.from_facts(["(on red blue)", "(ontable blue)", "(clear red)", "(holding green)"])
    assert _codec(3).suffix_words(Action("(stack green blue)"), state) == [
        "action", "stack(x2,x1)", "holding(x2)", "ontable(x1)", "=>"]
    assert _codec(2).suffix_words(Action("(stack green blue)"), state) == [
        "action", "stack(x2,x1)", "holding(x2)", "on(x3,x1)", "ontable(x1)", "=>"]
    assert _codec(3).suffix_words(Action("(unstack red blue)"), state) == [
        "action", "unstack(x3,x1)", "clear(x3)", "on(x3,x1)", "ontable(x1)", "=>"]
    assert _codec(3).prefix_words(GOAL, state) == _codec(1).prefix_words(GOAL, state)


@pytest.mark.parametrize("version", [0, 4, True, "2", None, 2.0])
def test_a_version_the_codec_does_not_speak_is_named(version):
    with pytest.raises(CodecError, match=f"version must be one of \\[1, 2, 3\\], got {version!r}"):
        _codec(version)


@pytest.mark.parametrize("version", [2, 3])
def test_versions_2_and_3_need_the_state_for_their_suffix(version):
    with pytest.raises(CodecError, match="a state is needed"):
        _codec(version).suffix_words(Action("(pick-up red)"))
    assert _codec(1).suffix_words(Action("(pick-up red)")) == ["action", "pick-up(x3)", "=>"]


_facts = st.lists(st.sampled_from([f"(on {a} {b})" for a in OBJECTS for b in OBJECTS if a != b]
                                  + [f"({p} {a})" for p in ("clear", "ontable", "holding") for a in OBJECTS]
                                  + ["(handempty)"]), max_size=14, unique=True)
_actions = st.one_of(st.sampled_from([f"({n} {a})" for n in ("pick-up", "put-down") for a in OBJECTS]),
                     st.sampled_from([f"({n} {a} {b})" for n in ("stack", "unstack") for a in OBJECTS
                                      for b in OBJECTS if a != b]))


@settings(max_examples=300, deadline=None)
@given(facts=_facts, action=_actions, order=st.permutations(OBJECTS))
def test_version_2_adds_exactly_the_facts_sharing_an_object_with_the_action(facts, action, order):
    """Under any numbering: the same prefix as version 1 (siblings share it), and a suffix that
    is version 1's with, before ``=>``, every state fact naming one of the action's objects —
    and no other — in the state's order."""
    state = State.from_facts(facts)
    v1 = FactDeltaCodec(objects=OBJECTS, predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=8,
                        numbering=tuple(order))
    v2 = FactDeltaCodec(objects=OBJECTS, predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=8,
                        numbering=tuple(order), version=2)
    assert v2.prefix_words(GOAL, state) == v1.prefix_words(GOAL, state)
    one, two = v1.suffix_words(Action(action), state), v2.suffix_words(Action(action), state)
    assert two[:2] == one[:2] and two[-1] == one[-1] == "=>"
    named = set(action.strip("()").split()[1:])
    expected = [v1.fact_word(f) for f in sorted(facts, key=v1.fact_word)
                if named & set(f.strip("()").split()[1:])]
    assert two[2:-1] == expected
    assert [v2.word_fact(w) for w in two[2:-1]] == [v2.word_fact(w) for w in v2.state_words(state)
                                                     if v2.word_fact(w) in {v1.word_fact(e) for e in expected}]


@settings(max_examples=300, deadline=None)
@given(facts=_facts, action=_actions, order=st.permutations(OBJECTS))
def test_version_3_writes_the_facts_of_version_2_whose_first_argument_is_the_actions(facts, action, order):
    """Under any numbering: version 2's prompt less the facts whose first argument is none of
    the action's objects, in the same order."""
    state = State.from_facts(facts)
    v2, v3 = (FactDeltaCodec(objects=OBJECTS, predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=8,
                             numbering=tuple(order), version=v) for v in (2, 3))
    assert v3.prefix_words(GOAL, state) == v2.prefix_words(GOAL, state)
    two, three = v2.suffix_words(Action(action), state), v3.suffix_words(Action(action), state)
    named = set(action.strip("()").split()[1:])
    assert three == [w for w in two if w in ("action", "=>") or w == two[1]
                     or v3.word_fact(w).strip("()").split()[1] in named]


def test_argument_facts_keeps_the_states_order_and_reads_arguments_through_the_callable():
    rows = {10: (1, 2), 11: (3,), 12: (), 13: (2, 4)}
    assert argument_facts([13, 10, 12, 11], [2], rows.__getitem__) == [13, 10]
    assert argument_facts([13, 10, 12, 11], [], rows.__getitem__) == []


def _records(folder, blocks, n=60):
    """Real Blocksworld transitions (collected through the PDDL engine)."""
    from planner.data.collect import collect_blocksworld, read_records

    collect_blocksworld(folder, problems={"train": 1, "val": 0, "test": 0}, blocks=(blocks,), seed=0)
    return read_records(folder / "train.jsonl")[:n]


@pytest.mark.parametrize("blocks", [4, 11])  # 11: x10 and x11 sort before x2
def test_training_writes_the_runtime_prompts_of_either_version_under_any_renaming(tmp_path, blocks):
    """A training sequence (no goal relabelling) is the runtime codec's prompt and answer, in
    versions 1, 2 and 3, for the example as recorded and with its objects renamed — the codec
    with the matching numbering writes the same tokens."""
    from planner.training.data import ObjectShuffle, encode_records, sample_sequence, suffix_arguments

    records = _records(tmp_path, blocks)
    assert any(r.applicable for r in records) and not all(r.applicable for r in records)
    top = 12
    vocab = domain_vocabulary(BW_PREDICATES, BW_ACTIONS, top)
    examples = encode_records(records, vocab, BW_PREDICATES, BW_ACTIONS, top)
    shuffle = ObjectShuffle.of(vocab, top, 1.0)
    arguments = {v: suffix_arguments(vocab, top, v, BW_PREDICATES) for v in CODEC_VERSIONS}
    assert arguments[1] is None
    rng = np.random.default_rng(1)
    for record, example in zip(records, examples, strict=True):
        perm = np.arange(top + 1)
        perm[1:blocks + 1] = rng.permutation(blocks) + 1
        # x_i becomes x_perm[i]: the object sorted i-th is numbered perm[i]
        numbering = [""] * blocks
        for i, name in enumerate(sorted(record.objects), start=1):
            numbering[perm[i] - 1] = name
        for version in CODEC_VERSIONS:
            for ex, order in ((example, ()), (shuffle.permuted(example, perm), tuple(numbering))):
                tokens, start = sample_sequence(ex, vocab, rng, relabel=False,
                                                arguments=arguments[version])
                codec = FactDeltaCodec(objects=tuple(record.objects), predicates=BW_PREDICATES, actions=BW_ACTIONS,
                                       max_objects=top, numbering=order, version=version)
                state = record.state_obj()
                prompt = (codec.prefix_words(FactGoal(frozenset(record.goal)), state)
                          + codec.suffix_words(Action(record.action), state))
                answer = codec.answer_words(Prediction(applicable=record.applicable,
                                                       next_state=record.next_state_obj()), state)
                assert vocab.decode(tokens[1:start]) == prompt
                assert vocab.decode(tokens[start:]) == answer


@pytest.mark.parametrize("version", [2, 3])
def test_the_context_check_counts_the_longer_suffix_of_versions_2_and_3(tmp_path, tiny_env, version):
    """Binding a problem checks that its start state's prompt fits the model's context with the
    longest suffix the version writes — of the problem's actions when they are given, else a
    bound for any action: a context that holds version 1's prompt may not hold version 2's or 3's."""
    from planner.world.llama import LlamaWorldModel, pddl_problem

    problem = pddl_problem(tiny_env.task)
    state, goal, actions = problem["state"], problem["goal"], problem["actions"]
    v1, vn = (FactDeltaCodec(objects=tuple(problem["objects"]), predicates=BW_PREDICATES, actions=BW_ACTIONS,
                             max_objects=8, version=v) for v in (1, version))
    need = 1 + len(v1.prefix_words(goal, state)) + 3 + 2 * len(state.facts) + 6
    longest = max(len(s) for s in vn.suffixes(actions, state))
    bound = 3 + sum(1 for f in state.facts if parse_word(v1.fact_word(f))[1])
    assert 3 < longest < bound
    LlamaWorldModel.for_environment(build_tiny_gguf(tmp_path / "v1.gguf", context=need), tiny_env).close()
    exact = need - 3 + longest
    for context, fits in ((need, False), (exact, True)):
        path = build_tiny_gguf(tmp_path / f"v{version}-{context}.gguf", codec_version=version,
                               context=context)
        if fits:
            LlamaWorldModel.for_environment(path, tiny_env).close()
        else:
            with pytest.raises(ContextOverflowError, match=f"\\({exact}\\) exceeds the model's context of "
                                                           f"{context} tokens"):
                LlamaWorldModel.for_environment(path, tiny_env)
    # without the problem's actions: a bound for any action's suffix
    path = tmp_path / f"v{version}-{exact}.gguf"
    with pytest.raises(ContextOverflowError, match=f"\\({need - 3 + bound}\\) exceeds"):
        LlamaWorldModel(path, objects=problem["objects"], goal=goal, state=state)


def test_an_action_the_model_cannot_write_is_named_among_many(tmp_path, tiny_env):
    """Version 2 writes every suffix of a batch at once; the error still names the bad action,
    wherever it stands in the batch."""
    from planner.errors import UnknownActionError
    from planner.world.llama import LlamaWorldModel

    model = LlamaWorldModel.for_environment(build_tiny_gguf(tmp_path / "v2.gguf", codec_version=2), tiny_env,
                                            on_invalid="reject")
    try:
        good = list(tiny_env.candidate_actions(tiny_env.state))[:2]
        for bad in (Action("(fly b1)"), Action("(pick-up zeppelin)")):
            with pytest.raises(UnknownActionError, match=re.escape(repr(bad.name))):
                model.predict_many(tiny_env.state, [*good, bad])
    finally:
        model.close()
