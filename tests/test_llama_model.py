"""The GGUF world model through llama.cpp, with real tiny GGUF files built at test time."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
from planner.env.pddl import ground_task
from planner.errors import ContextOverflowError, ModelLoadError, UnknownActionError, WorldModelError
from planner.types import Action, FactGoal, State
from planner.world.base import ModelStats
from planner.world.cache import CachedWorldModel
from planner.world.codec import FactDeltaCodec, schemas_of
from planner.world.decoder import Decoder
from planner.world.gguf_io import read_model_info
from planner.world.llama import LlamaWorldModel
from tests.conftest import BW_ACTIONS, BW_PREDICATES, build_tiny_gguf


def _model(path, env, **kw):
    kw.setdefault("retries", 0)
    return LlamaWorldModel.for_environment(path, env, **kw)


def _raw(model, state, action):
    try:
        return model.predict(state, action).raw
    except WorldModelError as exc:
        return exc.raw


def test_loads_and_reads_metadata(tiny_gguf, tiny_env):
    info = read_model_info(tiny_gguf)
    assert info.codec == "fact-delta" and info.codec_version == 1
    assert info.predicates == BW_PREDICATES and info.max_objects == 8
    model = _model(tiny_gguf, tiny_env)
    assert model.codec.objects == ("b1", "b2", "b3", "b4")
    model.close()


def test_codec_mismatch_is_a_clear_error(tmp_path, tiny_env):
    path = build_tiny_gguf(tmp_path / "text.gguf", codec="text")
    with pytest.raises(ModelLoadError, match="codec 'text'"):
        _model(path, tiny_env)
    path = build_tiny_gguf(tmp_path / "v4.gguf", codec_version=4)
    with pytest.raises(ModelLoadError, match="version 4, but LlamaWorldModel speaks 'fact-delta' versions 1, 2, 3"):
        _model(path, tiny_env)


def test_domain_mismatch_is_a_clear_error(tmp_path, tiny_gguf):
    from planner.env.pddl import PDDLEnvironment

    domain = DOMAIN_PDDL.replace("pick-up", "grab")
    (tmp_path / "d.pddl").write_text(domain)
    (tmp_path / "p.pddl").write_text(generate_problem(3, seed=0))
    env = PDDLEnvironment(tmp_path / "d.pddl", tmp_path / "p.pddl")
    with pytest.raises(ModelLoadError, match="grab/1"):
        _model(tiny_gguf, env)


@pytest.mark.parametrize("damage", ["missing", "empty", "garbage", "truncated", "directory"])
def test_bad_files_raise_model_load_error(tmp_path, tiny_gguf, tiny_env, damage):
    target = tmp_path / f"{damage}.gguf"
    if damage == "empty":
        target.write_bytes(b"")
    elif damage == "garbage":
        target.write_bytes(b"\x00not a model at all" * 100)
    elif damage == "truncated":
        data = tiny_gguf.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif damage == "directory":
        target.mkdir()
    with pytest.raises(ModelLoadError) as info:
        _model(target, tiny_env)
    assert str(target) in str(info.value)


def test_prompt_golden_string():
    task = ground_task(DOMAIN_PDDL, generate_problem(3, seed=0))
    codec = FactDeltaCodec(objects=("red", "blue", "green"), predicates=BW_PREDICATES,
                           actions=BW_ACTIONS, max_objects=8)
    state = State.from_facts(["(on red blue)", "(ontable blue)", "(ontable green)", "(clear red)",
                              "(clear green)", "(handempty)"])
    goal = FactGoal(frozenset({"(on blue green)"}))
    assert codec.prompt_text(goal, state, Action("(unstack red blue)")) == (
        "goal on(x1,x2) state clear(x2) clear(x3) handempty on(x3,x1) ontable(x1) ontable(x2) "
        "action unstack(x3,x1) =>"
    )
    assert task.goal.facts  # the generator's problem parses with the same domain


def test_llama_cpp_tokenizes_exactly_as_the_codec(tiny_gguf, tiny_env):
    model = _model(tiny_gguf, tiny_env)
    rng = random.Random(0)
    state = tiny_env.state
    for _ in range(200):
        action = rng.choice(list(tiny_env.candidate_actions(state)))
        text = model.codec.prompt_text(tiny_env.goal, state, action)
        assert model.engine.tokenize(text) == [model.engine.bos] + [model.word_ids[w] for w in text.split()]
        pred = tiny_env.simulate(state, action)
        answer = " ".join(model.codec.answer_words(pred, state))
        assert model.engine.tokenize(answer, add_bos=False) == [model.word_ids[w] for w in answer.split()]
        state = pred.next_state
    model.close()


def test_random_model_is_retried_then_raises_with_raw_text(tiny_gguf, tiny_env):
    model = _model(tiny_gguf, tiny_env, retries=2, consistent=False)  # the raw model answers invalid
    action = tiny_env.candidate_actions(tiny_env.state)[0]
    with pytest.raises(WorldModelError) as info:
        for a in tiny_env.candidate_actions(tiny_env.state):
            action = a
            model.predict(tiny_env.state, action)
    assert info.value.raw and info.value.raw.split()[0] in ("ok", "fail")
    assert info.value.raw in str(info.value)
    assert model.stats.retries >= 2


def _answers(model, state, actions):
    prefix, suffixes, max_new = model._prompt(model.codec, state, actions)
    answers = model._decode(prefix, suffixes, max_new, frozenset(model.codec.state_words(state)), temperature=0.0)
    return [" ".join(model._id_word[t] for t in ans.tokens) for ans in answers]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_batched_equals_sequential_and_prefix_reuse_saves_tokens(tmp_path, tiny_env, version):
    path = build_tiny_gguf(tmp_path / f"v{version}.gguf", codec_version=version)
    state = tiny_env.state
    actions = list(tiny_env.candidate_actions(state))
    results, evaluated = {}, {}
    for mode in ("naive", "prefix", "batched"):
        model = _model(path, tiny_env, mode=mode)
        assert model.codec.version == version
        results[mode] = _answers(model, state, actions)
        evaluated[mode] = model.stats.prompt_tokens
        # The public path gives the same raw text (or fails validation on it).
        assert _raw(model, state, actions[0]) == results[mode][0]
        model.close()
    assert results["naive"] == results["prefix"] == results["batched"]
    codec = _model(path, tiny_env).codec
    prefix_len = 1 + len(codec.prefix_words(tiny_env.goal, state))
    suffix_lens = [len(codec.suffix_words(a, state)) for a in actions]
    # version 1 writes "action A =>"; versions 2 and 3 also facts naming A's arguments
    assert (set(suffix_lens) == {3}) == (version == 1)
    # naive evaluates the whole prompt for every action; prefix reuse and batching evaluate the
    # shared prefix once and then only each action's tokens.
    assert evaluated["naive"] == len(actions) * prefix_len + sum(suffix_lens)
    assert evaluated["prefix"] == prefix_len + sum(suffix_lens)
    assert evaluated["batched"] == evaluated["prefix"]


class _Toy:
    """A toy answer format: a token from ``choices``, a forced ``then``, a last token from ``choices``."""

    def __init__(self, choices, then):
        self.choices, self.then, self.n = np.array(choices), then, 0

    def allowed(self):
        return self.choices

    def push(self, token):
        self.n += 1
        return (self.then,) if self.n == 1 else None


def test_decoder_is_codec_agnostic(tiny_gguf, tiny_env):
    model = _model(tiny_gguf, tiny_env)
    ids = sorted(model.word_ids.values())
    prefix, suffixes = [model.engine.bos, *ids[:5]], [[t] for t in ids[5:12]] + [ids[12:14]]
    choices, then = ids[20:30], ids[0]
    results = {}
    for name, siblings, reuse in (("one at a time", 1, False), ("batched", 8, True), ("groups of 3", 3, True)):
        stats = ModelStats()
        decoder = Decoder(model.engine, stats=stats, max_siblings=siblings, reuse_prefix=reuse)
        decoder.clear()
        answers = decoder.decode(prefix, suffixes, rules=lambda: _Toy(choices, then), max_new=3)
        results[name] = [(a.tokens, round(a.logprob, 4)) for a in answers]
        assert all(len(a.tokens) == 3 and a.tokens[1] == then and {a.tokens[0], a.tokens[2]} <= set(choices)
                   and a.logprob < 0 for a in answers)
        assert stats.generated_tokens == 3 * len(suffixes)
        suffix_tokens = sum(map(len, suffixes))
        groups = -(-len(suffixes) // siblings)
        assert stats.prompt_tokens == suffix_tokens + len(prefix) * (groups if not reuse else 1)
        decoder.decode(prefix, suffixes[:1], rules=lambda: _Toy(choices, then), max_new=3)
        assert stats.prompt_tokens == suffix_tokens + 1 + len(prefix) * (groups + 1 if not reuse else 1)
    assert results["one at a time"] == results["batched"] == results["groups of 3"]
    model.close()


def test_context_overflow_is_a_clear_error(tmp_path, tiny_env):
    path = build_tiny_gguf(tmp_path / "small.gguf", context=16)
    with pytest.raises(ContextOverflowError, match="exceeds the model's context of 16"):
        _model(path, tiny_env)  # checked when the model is bound to the problem
    model = LlamaWorldModel(path, objects=tiny_env.task.objects, goal=tiny_env.goal, retries=0)
    with pytest.raises(ContextOverflowError, match="exceeds the model's context of 16"):
        model.predict(tiny_env.state, tiny_env.candidate_actions(tiny_env.state)[0])
    model.close()


def test_unknown_action_and_too_many_objects(tiny_gguf, tiny_env, tmp_path):
    model = _model(tiny_gguf, tiny_env)
    with pytest.raises(UnknownActionError, match="fly"):
        model.predict(tiny_env.state, Action("(fly b1)"))
    with pytest.raises(UnknownActionError, match="b9"):
        model.predict(tiny_env.state, Action("(pick-up b9)"))
    with pytest.raises(ModelLoadError, match="at most 8"):
        LlamaWorldModel(tiny_gguf, objects=[f"o{i}" for i in range(9)], goal=FactGoal())


def test_cache_hits_with_a_real_model(tiny_gguf, tiny_env):
    # "reject": an invalid answer of the random model is a prediction too, so this always asserts.
    model = _model(tiny_gguf, tiny_env, on_invalid="reject")
    cached = CachedWorldModel(model)
    state = tiny_env.state
    first, second = tiny_env.candidate_actions(state)[:2]
    pred = cached.predict(state, first)
    evaluated = model.stats.prompt_tokens
    assert evaluated > 0 and model.stats.cache_hits == 0 and model.stats.predictions == 1
    assert cached.predict(state, first) is pred
    assert model.stats.cache_hits == 1 and model.stats.prompt_tokens == evaluated
    # Only the action not yet cached reaches the model: three tokens of its suffix.
    preds = cached.predict_many(state, [first, second])
    assert preds[0] is pred and model.stats.cache_hits == 2
    assert model.stats.prompt_tokens == evaluated + 3
    assert model.stats.predictions == 4


def test_confidence_is_a_probability(tmp_path, tiny_env):
    # A model whose weights are all zero answers uniformly at random among allowed tokens,
    # structurally valid: its confidence is the product of 1/n_vocab factors.
    path = build_tiny_gguf(tmp_path / "flat.gguf", scale=0.0)
    model = _model(path, tiny_env)
    answers = model._decode(*model._prompt(model.codec, tiny_env.state, tiny_env.candidate_actions(tiny_env.state)[:1]),
                            frozenset(model.codec.state_words(tiny_env.state)), temperature=0.0)
    import math

    assert 0.0 < math.exp(answers[0].logprob) <= 1.0
    chosen = [t for t in answers[0].tokens if t != model.word_ids["add"]]  # "add" is forced, not chosen
    assert answers[0].logprob == pytest.approx(-len(chosen) * math.log(model.engine.n_vocab), rel=1e-3)


_words = st.sampled_from(["ok", "fail", "add", "del", "done", "cont", "on(x1,x2)", "clear(x1)", "clear(x3)",
                          "holding(x1)", "handempty", "ontable(x2)", "on(x9,x1)", "fly(x1)", "on(x1)"])


@settings(max_examples=300, deadline=None)
@given(words=st.lists(_words, max_size=10))
def test_parser_accepts_only_valid_answers(words):
    codec = FactDeltaCodec(objects=("a", "b", "c"), predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=8)
    state = State.from_facts(["(on a b)", "(ontable b)", "(ontable c)", "(clear a)", "(clear c)", "(handempty)"])
    try:
        pred = codec.parse(words, state)
    except WorldModelError as exc:
        assert exc.raw == " ".join(words)
        return
    if not pred.applicable:
        assert words == ["fail"] and pred.next_state == state
        return
    assert words[0] == "ok" and words[-1] in ("done", "cont")


def test_an_applicable_action_may_change_nothing():
    # Switching on a lamp that is already on applies and changes nothing: "ok add del cont",
    # which the codec writes for such a transition and must read back as applicable.
    from planner.types import Prediction

    codec = FactDeltaCodec(objects=("desk_1", "desklamp_1"), predicates={"in": 2, "istoggled": 1},
                           actions={"use": 1}, max_objects=8)
    state = State.from_facts(["(in desklamp_1 desk_1)", "(istoggled desklamp_1)"])
    truth = Prediction(applicable=True, next_state=state)
    assert codec.answer_words(truth, state) == ["ok", "add", "del", "cont"]
    pred = codec.parse(["ok", "add", "del", "cont"], state)
    assert pred.applicable and pred.next_state == state and pred.same_outcome(truth)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 6), seed=st.integers(0, 1000), walk=st.integers(0, 1000))
def test_parser_round_trips_true_answers(n, seed, walk):
    task = ground_task(DOMAIN_PDDL, generate_problem(n, seed=seed))
    codec = FactDeltaCodec(objects=task.objects, predicates=dict(task.predicates),
                           actions=schemas_of(task.operators), max_objects=8)
    rng = random.Random(walk)
    facts = task.init.facts
    for _ in range(10):
        op = rng.choice(list(task.operators.values()))
        state = State(facts)
        applicable = op.applicable(facts)
        nxt = State(op.apply(facts)) if applicable else state
        from planner.types import Prediction

        truth = Prediction(applicable=applicable, next_state=nxt, done=task.goal.satisfied(nxt) and applicable)
        pred = codec.parse(codec.answer_words(truth, state), state)
        assert pred.same_outcome(truth)
        facts = nxt.facts


def test_consistent_decoding_writes_only_valid_answers(tiny_gguf, tiny_env):
    """A random model answers invalid by itself (the test above); held to the state, every
    answer it writes is valid: added facts do not hold, removed facts do."""
    raw = _model(tiny_gguf, tiny_env, consistent=False, on_invalid="reject")
    held = _model(tiny_gguf, tiny_env, on_invalid="raise")  # raises on any invalid answer
    rng = random.Random(5)
    for state in tiny_env.random_walk(tiny_env.state, 4, rng):
        actions = list(tiny_env.candidate_actions(state))
        raw.predict_many(state, actions)
        preds = held.predict_many(state, actions)  # would raise on an invalid answer
        assert all(p.applicable or p.next_state == state for p in preds)
    assert raw.stats.invalid > 0 and held.stats.invalid == 0
    raw.close()
    held.close()


def test_fail_wins_when_likelier_than_the_whole_applicable_answer(tmp_path, tiny_env):
    # All-zero weights: every token is equally likely, so "fail" (one token) is likelier than
    # any applicable answer (at least two chosen tokens). Greedy decoding alone picks "ok"
    # (the first of equal logits); the rule turns it into "not applicable".
    path = build_tiny_gguf(tmp_path / "flat.gguf", scale=0.0)
    state, actions = tiny_env.state, list(tiny_env.candidate_actions(tiny_env.state))
    model = _model(path, tiny_env)
    assert all(raw.split()[0] == "ok" for raw in _answers(model, state, actions))
    preds = model.predict_many(state, actions)
    assert not any(p.applicable for p in preds)
    assert all(0.5 < p.confidence <= 1.0 for p in preds)  # fail's share of the two answers
    model.close()
