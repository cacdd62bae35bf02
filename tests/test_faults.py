"""The fault suite: bad input gives a :class:`PlannerError` naming the bad value — never a
traceback from deep inside, never a native abort.

- GGUF metadata of the wrong type or out of bounds → :class:`ModelLoadError`;
- configurations → :class:`ConfigError`, or a configuration that runs without any other error;
- model answers → a :class:`Prediction` or :class:`WorldModelError`;
- problems the model's vocabulary cannot write → :class:`VocabularyError` naming what it lacks;
- the values that used to abort llama.cpp (``n_ctx``, ``n_threads``, arities, tokenizer
  metadata) → a clean error, checked in subprocesses so that an abort cannot take the test run
  down with it;
- input nested beyond Python's recursion limit → :class:`ConfigError`, never a RecursionError.

Hypothesis generates the inputs; the default run keeps example counts small (seconds), and
the ``slow`` variants run many more.
"""

from __future__ import annotations

import json
import math
import os
import string
import subprocess
import sys
import textwrap
from pathlib import Path

import gguf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.config import PlannerConfig, load_config
from planner.env.blocksworld import DOMAIN_PDDL, generate_problem, write_problem
from planner.env.pddl import PDDLEnvironment
from planner.errors import (
    ConfigError,
    ContextOverflowError,
    DomainError,
    ModelLoadError,
    PlannerError,
    VocabularyError,
    WorldModelError,
)
from planner.types import Action, FactGoal, Prediction, State
from planner.world.cache import CachedWorldModel
from planner.world.codec import MARKERS, FactDeltaCodec
from planner.world.gguf_io import (
    KEY_ACTIONS,
    KEY_CODEC,
    KEY_CODEC_VERSION,
    KEY_DOMAIN,
    KEY_MAX_OBJECTS,
    KEY_PREDICATES,
    KEY_SIGNATURE,
    KEY_TRAINING,
    read_model_info,
)
from planner.world.llama import LlamaWorldModel
from planner.world.oracle import OracleWorldModel
from planner.world.vocab import MAX_ARITY, MAX_GROUND_WORDS, MAX_OBJECTS, ground_words
from tests.conftest import BW_ACTIONS, BW_PREDICATES, build_tiny_gguf, rewrite_gguf

T = gguf.GGUFValueType
ROOT = Path(__file__).resolve().parents[1]
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NATIVE_CRASH_CODES = {-6, -11, 134, 139}  # SIGABRT / SIGSEGV, as a signal or as a shell exit code


@pytest.fixture(scope="module")
def base_gguf(tmp_path_factory) -> Path:
    return build_tiny_gguf(tmp_path_factory.mktemp("faults") / "base.gguf")


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults-work")


@pytest.fixture(scope="module")
def env3(tmp_path_factory) -> PDDLEnvironment:
    return PDDLEnvironment(*write_problem(tmp_path_factory.mktemp("env3"), 3, seed=0))


# -- (a) GGUF metadata -------------------------------------------------------------------------
_ints = st.integers(-(2**31), 2**31 - 1)
_junk_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_wrong_gguf_types = st.one_of(
    _ints.map(lambda v: (v, T.INT32)),
    st.integers(0, 2**64 - 1).map(lambda v: (v, T.UINT64)),
    st.floats(width=32, allow_nan=True).map(lambda v: (v, T.FLOAT32)),
    st.booleans().map(lambda v: (v, T.BOOL)),
    st.lists(st.integers(0, 100), min_size=1, max_size=4).map(lambda v: (v, T.ARRAY, T.INT32)),
    st.lists(st.text(string.ascii_letters, max_size=4), min_size=1, max_size=3).map(lambda v: (v, T.ARRAY, T.STRING)),
)


def _as_string(text: str) -> tuple[str, gguf.GGUFValueType]:
    return (text, T.STRING)


# A JSON text that is not an object: arrays, null, numbers, strings, broken or deeply nested text.
_not_an_object = st.one_of(
    _junk_json.filter(lambda v: not isinstance(v, dict)).map(json.dumps),
    st.sampled_from(["[1,2,3]", "null", "", "{", "{'on': 2}", "nan", "[" * 5000, '{"a": ' * 3000]),
    st.text(max_size=12).filter(lambda t: not t.strip().startswith("{")),
).map(_as_string)

_bad_arity = st.one_of(
    st.integers(max_value=-1), st.integers(min_value=MAX_ARITY + 1), st.floats(allow_nan=True), st.booleans(),
    st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=2),
)
_bad_name = st.one_of(
    st.just(""), st.text(min_size=1, max_size=6).filter(lambda t: not (t[:1].isascii() and t[:1].isalpha())),
    st.text(string.ascii_letters, min_size=1, max_size=3).map(lambda t: t + " x"),
    st.text(string.ascii_letters, min_size=1, max_size=3).map(lambda t: t + "(x1)"),
    st.text(string.ascii_letters, min_size=65, max_size=80),
)
_bad_schema_object = st.one_of(
    st.builds(lambda name, arity: {"on": 2, name: arity}, st.sampled_from(["on", "glows"]), _bad_arity),
    st.builds(lambda name, arity: {name: arity}, _bad_name, st.integers(0, MAX_ARITY)),
).map(lambda obj: _as_string(json.dumps(obj)))
_bad_int = st.one_of(
    st.integers(min_value=1).map(lambda v: _as_string(str(v))),  # a number written as text
    st.floats(width=32).map(lambda v: (v, T.FLOAT32)),
    st.booleans().map(lambda v: (v, T.BOOL)),
    st.integers(-(2**31), -1).map(lambda v: (v, T.INT32)),
    st.lists(st.integers(0, 9), min_size=1, max_size=3).map(lambda v: (v, T.ARRAY, T.INT32)),
)
_bad_text = st.one_of(
    _ints.map(lambda v: (v, T.INT32)), st.floats(width=32).map(lambda v: (v, T.FLOAT32)),
    st.booleans().map(lambda v: (v, T.BOOL)), st.lists(st.text(max_size=3), min_size=1, max_size=3).map(
        lambda v: (v, T.ARRAY, T.STRING)),
)

BAD_METADATA: dict[str, st.SearchStrategy] = {
    KEY_PREDICATES: st.one_of(_not_an_object, _bad_schema_object, _wrong_gguf_types),
    KEY_ACTIONS: st.one_of(_not_an_object, _bad_schema_object, _wrong_gguf_types),
    KEY_TRAINING: st.one_of(_not_an_object, _wrong_gguf_types),
    KEY_SIGNATURE: st.one_of(_not_an_object, _wrong_gguf_types),
    KEY_CODEC_VERSION: st.one_of(_bad_int, st.just((0, T.UINT32))),
    KEY_MAX_OBJECTS: st.one_of(_bad_int, st.integers(MAX_OBJECTS + 1, 2**32 - 1).map(lambda v: (v, T.UINT32)),
                               st.just((0, T.UINT32))),
    "llama.context_length": st.one_of(_bad_int, st.just((0, T.UINT32)), st.just((2**40, T.UINT64))),
    "llama.block_count": st.one_of(_bad_int, st.sampled_from([(0, T.UINT32), (513, T.UINT32), (2**31, T.UINT32)])),
    "llama.expert_count": st.one_of(_bad_int, st.integers(513, 2**32 - 1).map(lambda v: (v, T.UINT32)),
                                    st.integers(1, 512).map(lambda v: (v, T.UINT32))),  # experts, none used
    "llama.expert_used_count": st.one_of(_bad_int, st.integers(1, 2**32 - 1).map(lambda v: (v, T.UINT32))),
    "llama.rope.freq_base": st.one_of(
        st.floats(max_value=0.0, width=32).map(lambda v: (v, T.FLOAT32)),
        st.sampled_from([math.nan, math.inf]).map(lambda v: (v, T.FLOAT32)), st.text(max_size=3).map(_as_string)),
    KEY_CODEC: st.one_of(_bad_text, st.just(_as_string(""))),
    KEY_DOMAIN: st.one_of(_bad_text, st.text(min_size=257, max_size=300).map(_as_string)),
}


def _bad_metadata_case():
    return st.sampled_from(sorted(BAD_METADATA)).flatmap(lambda key: st.tuples(st.just(key), BAD_METADATA[key]))


def _check_bad_metadata(base: Path, out: Path, key: str, change: tuple) -> None:
    rewrite_gguf(base, changes={key: change}, out=out)
    with pytest.raises(ModelLoadError) as info:
        read_model_info(out)
    message = str(info.value)
    assert str(out) in message and key in message, message
    with pytest.raises(ModelLoadError):
        LlamaWorldModel(out, objects=("a", "b"), goal=FactGoal())


@FAST
@given(case=_bad_metadata_case())
def test_bad_gguf_metadata_is_a_model_load_error(base_gguf, work_dir, case):
    key, change = case
    _check_bad_metadata(base_gguf, work_dir / "bad.gguf", key, change)


@pytest.mark.slow
@SLOW
@given(case=_bad_metadata_case())
def test_bad_gguf_metadata_is_a_model_load_error_many(base_gguf, work_dir, case):
    key, change = case
    _check_bad_metadata(base_gguf, work_dir / "bad-many.gguf", key, change)


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        (("[1,2,3]", T.STRING), "'[1,2,3]'"),
        (("null", T.STRING), "'null'"),
        (('{"on": "2"}', T.STRING), "'2'"),
        (('{"on": 12}', T.STRING), "12"),
        (('{"on": -1}', T.STRING), "-1"),
    ],
)
def test_metadata_errors_name_file_key_and_value(base_gguf, work_dir, change, shown):
    out = work_dir / "named.gguf"
    rewrite_gguf(base_gguf, changes={KEY_PREDICATES: change}, out=out)
    with pytest.raises(ModelLoadError) as info:
        read_model_info(out)
    assert str(out) in str(info.value) and KEY_PREDICATES in str(info.value) and shown in str(info.value)


@pytest.mark.parametrize(("predicates", "max_objects"), [({"on": 4, "big": 4}, 64), ({"on": 3}, 64)])
def test_vocabulary_size_is_bounded(base_gguf, work_dir, predicates, max_objects):
    # 2 * 64**4 and 64**3 + the actions over 64 objects: beyond MAX_GROUND_WORDS words
    out = work_dir / "big.gguf"
    rewrite_gguf(base_gguf, out=out, changes={KEY_PREDICATES: (json.dumps(predicates), T.STRING),
                                               KEY_MAX_OBJECTS: (max_objects, T.UINT32)})
    with pytest.raises(ModelLoadError, match=f"more than {MAX_GROUND_WORDS:,}"):
        read_model_info(out)


def test_signature_round_trips_and_is_validated(tmp_path, base_gguf):
    from planner.world.codec import domain_vocabulary
    from planner.world.gguf_io import LlamaShape, random_weights, write_world_model

    vocab = domain_vocabulary(BW_PREDICATES, BW_ACTIONS, 3)
    shape = LlamaShape(dim=16, n_layers=1, n_heads=2, ffn_dim=32, context=64)
    signature = {"predicates": {"on": 2}, "actions": [{"name": "stack", "parameters": 2}]}
    path = write_world_model(tmp_path / "sig.gguf", vocab=vocab, shape=shape, weights=random_weights(shape, len(vocab)),
                             codec="fact-delta", codec_version=1, predicates=BW_PREDICATES, actions=BW_ACTIONS,
                             max_objects=3, domain="blocksworld", signature=signature)
    assert read_model_info(path).signature == signature
    assert read_model_info(base_gguf).signature is None
    from planner.errors import ModelWriteError

    with pytest.raises(ModelWriteError, match=r"planner\.predicates"):
        write_world_model(tmp_path / "bad.gguf", vocab=vocab, shape=shape, weights=random_weights(shape, len(vocab)),
                          codec="fact-delta", codec_version=1, predicates={"on": 12}, actions=BW_ACTIONS,
                          max_objects=3, domain="blocksworld")
    assert not (tmp_path / "bad.gguf").exists()


# Any value of any type for any key: a ModelInfo or a ModelLoadError, nothing else.
_any_change = st.one_of(_wrong_gguf_types, _junk_json.map(lambda v: _as_string(json.dumps(v))),
                        st.text(max_size=20).map(_as_string), st.integers(0, 2**32 - 1).map(lambda v: (v, T.UINT32)))


@FAST
@given(key=st.sampled_from(sorted(BAD_METADATA)), change=_any_change)
def test_any_metadata_value_loads_or_is_a_model_load_error(base_gguf, work_dir, key, change):
    out = work_dir / "any.gguf"
    rewrite_gguf(base_gguf, changes={key: change}, out=out)
    try:
        read_model_info(out)
    except ModelLoadError as exc:
        assert key in str(exc)


# -- (b) configurations ----------------------------------------------------------------------
_scalar = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.integers(-3, 70), st.floats(allow_nan=True), st.floats(0, 2),
    st.booleans(), st.text(string.ascii_letters + string.digits + " ._-/", max_size=10),
    st.sampled_from(["beam", "mcts", "uct", "puct", "goal", "ff", "add", "max", "lmcut", "plan", "receding",
                     "oracle", "gguf"]),
    st.lists(st.integers(0, 3), max_size=2),
)
_VALID = {
    "search": {
        "algorithm": st.sampled_from(["beam", "mcts"]), "beam_width": st.integers(1, 10_000),
        "max_expansions": st.integers(1, 1_000_000), "simulations": st.integers(1, 1_000_000),
        "selection": st.sampled_from(["uct", "puct"]), "exploration": st.floats(0, 100),
        "max_depth": st.integers(1, 10_000), "time_limit_s": st.floats(1e-6, 7 * 24 * 3600.0),
        "discount": st.floats(1e-9, 1), "heuristic": st.sampled_from(["goal", "ff", "add", "max", "lmcut"]),
        "seed": st.integers(0, 2**32 - 1),
    },
    "agent": {"mode": st.sampled_from(["plan", "receding"]), "max_steps": st.integers(1, 100_000),
              "max_replans": st.integers(0, 10_000), "reuse_tree": st.booleans()},
    "model": {"kind": st.sampled_from(["oracle", "gguf"]), "cache_size": st.integers(0, 2_000_000),
              "n_threads": st.integers(1, 1024), "n_gpu_layers": st.integers(-1, 4096),
              "n_ctx": st.integers(32, 2**18)},
}
_valid_configs = st.fixed_dictionaries(
    {section: st.fixed_dictionaries({}, optional=keys) for section, keys in _VALID.items()})
_mixed_configs = st.fixed_dictionaries(
    {section: st.dictionaries(st.sampled_from([*keys, "bogus"]), _scalar | st.one_of(*keys.values()), max_size=5)
     for section, keys in _VALID.items()})
_configs = _valid_configs | _mixed_configs


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _toml(config: dict[str, dict]) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
    return "\n".join(lines) + "\n"


def _run_small_episode(config: PlannerConfig, env: PDDLEnvironment) -> None:
    """An episode with the exact model, its time per search and its steps capped (for speed)."""
    from planner.agent import Agent

    s, a = config.search, config.agent
    fast = config.updated(search={"time_limit_s": min(s.time_limit_s or 0.05, 0.05)},
                          agent={"max_steps": min(a.max_steps, 12), "max_replans": min(a.max_replans, 3)})
    model = OracleWorldModel(env)
    wrapped = CachedWorldModel(model, maxsize=config.model.cache_size) if config.model.cache_size > 0 else model
    Agent(env, wrapped, config=fast).run(seed=0)


def _check_config(env: PDDLEnvironment, work: Path, config: dict[str, dict]) -> None:
    path = work / "config.toml"
    path.write_text(_toml(config))
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
        return
    _run_small_episode(loaded, env)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=_configs)
def test_config_is_rejected_or_runs(env3, work_dir, config):
    _check_config(env3, work_dir, config)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=_configs)
def test_config_is_rejected_or_runs_many(env3, work_dir, config):
    _check_config(env3, work_dir, config)


_python_values = _scalar | st.none() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2) | st.tuples(
    st.integers())
_dict_configs = st.dictionaries(
    st.sampled_from([*_VALID, "bogus"]),
    st.dictionaries(st.sampled_from(sorted({k for keys in _VALID.values() for k in keys})), _python_values, max_size=4)
    | _python_values, max_size=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sections=_dict_configs)
def test_config_updates_are_rejected_or_run(env3, sections):
    try:
        config = PlannerConfig().updated(**sections)
    except ConfigError:
        return
    _run_small_episode(config, env3)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[search]\nexploration = inf\n", "exploration"),
        ("[search]\nexploration = nan\n", "exploration"),
        ("[search]\ndiscount = nan\n", "discount"),
        ("[search]\ntime_limit_s = inf\n", "time_limit_s"),
        ("[search]\nsimulations = 10000000000\n", "simulations"),
        ('[search]\nsimulations = "50"\n', "simulations"),
        ("[search]\nseed = -1\n", "seed"),
        ("[search]\nbeam_width = true\n", "beam_width"),
        ("[model]\nn_ctx = 16\n", "n_ctx"),
        ("[model]\nn_ctx = 4294967312\n", "n_ctx"),
        ("[model]\nn_threads = 100000\n", "100000"),
        ("[model]\nn_gpu_layers = -2\n", "n_gpu_layers"),
        ("[model]\ncache_size = 1000000000\n", "cache_size"),
        ('[model]\npath = ""\n', "path"),
        ("[agent]\nmax_steps = 0\n", "max_steps"),
        ("search = 3\n", "search"),
    ],
)
def test_config_bounds_name_the_value(tmp_path, text, match):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_config_updates_are_checked():
    with pytest.raises(ConfigError, match="exploration"):
        PlannerConfig().updated(search={"exploration": math.inf})
    with pytest.raises(ConfigError, match="nosuch"):
        PlannerConfig().updated(nosuch={"x": 1})


# -- (c) model answers -------------------------------------------------------------------------
_CODEC = FactDeltaCodec(objects=("a", "b", "c"), predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=8)
_STATE = State.from_facts(["(on a b)", "(ontable b)", "(ontable c)", "(clear a)", "(clear c)", "(handempty)"])
_answer_words = st.one_of(
    st.sampled_from(list(MARKERS)),
    st.sampled_from(ground_words({**BW_PREDICATES, **BW_ACTIONS}, 4)),
    st.sampled_from(["on(x1)", "on(x1,x2,x3)", "on(,)", "on(x1,", "(on a b)", "glows(x1)", "x1", "ok(", ")", "",
                     "on(x9,x1)", "handempty()", "clear(x1))", "clear((x1)"]),
    st.text(max_size=8),
)


def _check_answer(words: list[str]) -> None:
    try:
        pred = _CODEC.parse(words, _STATE)
    except WorldModelError as exc:
        assert exc.raw == " ".join(words)
        return
    assert isinstance(pred, Prediction)
    assert pred.next_state.is_symbolic


@settings(max_examples=300, deadline=None)
@given(words=st.lists(_answer_words, max_size=12))
def test_model_answers_parse_or_raise_world_model_error(words):
    _check_answer(words)


@pytest.mark.slow
@settings(max_examples=5000, deadline=None)
@given(words=st.lists(_answer_words, max_size=30))
def test_model_answers_parse_or_raise_world_model_error_many(words):
    _check_answer(words)


# -- (d) problems the vocabulary cannot write --------------------------------------------------
def _problem_env(tmp: Path, extra_init: str = "", extra_goal: str = "", n: int = 3) -> PDDLEnvironment:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "domain.pddl").write_text(DOMAIN_PDDL)
    text = generate_problem(n, seed=0)
    text = text.replace("(:init ", f"(:init {extra_init} ").replace("(:goal (and ", f"(:goal (and {extra_goal} ")
    (tmp / "p.pddl").write_text(text)
    return PDDLEnvironment(tmp / "domain.pddl", tmp / "p.pddl")


@pytest.mark.parametrize(
    ("init", "match"),
    [
        ("(on b1)", r":init atom \(on b1\) has 1 argument\(s\); predicate on takes 2"),
        ("(glows b1)", r":init atom \(glows b1\) names predicate glows, which the domain does not declare"),
        ("(on b1 b2 b3)", r":init atom \(on b1 b2 b3\) has 3 argument\(s\); predicate on takes 2"),
        ("(handempty b1)", r":init atom \(handempty b1\) has 1 argument\(s\); predicate handempty takes 0"),
    ],
)
def test_problem_facts_the_domain_lacks(tmp_path, init, match):
    # The environment refuses them before any world model sees the problem (the model's own
    # vocabulary check is exercised by test_unwritable_facts_are_named).
    with pytest.raises(DomainError, match=match):
        _problem_env(tmp_path, init)


def test_more_objects_than_the_model_knows(tmp_path, base_gguf):
    env = _problem_env(tmp_path, n=9)
    with pytest.raises(VocabularyError, match="9 objects but the model knows at most 8"):
        LlamaWorldModel.for_environment(base_gguf, env)


_identifiers = st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True)


@st.composite
def _bad_facts(draw):
    """A fact the vocabulary cannot write, and the name or object its error must mention."""
    kind = draw(st.sampled_from(["predicate", "arity", "object"]))
    objects = ["a", "b", "c"]
    if kind == "predicate":
        name = draw(_identifiers.filter(lambda n: n not in BW_PREDICATES and n not in MARKERS))
        args = draw(st.lists(st.sampled_from(objects), max_size=3))
        return "(" + " ".join([name, *args]) + ")", repr(name)
    if kind == "arity":
        name = draw(st.sampled_from(sorted(BW_PREDICATES)))
        n = draw(st.integers(0, 4).filter(lambda k: k != BW_PREDICATES[name]))
        return "(" + " ".join([name, *draw(st.lists(st.sampled_from(objects), min_size=n, max_size=n))]) + ")", repr(
            name)
    stranger = draw(_identifiers.filter(lambda o: o not in objects))
    return f"(clear {stranger})", repr(stranger)


def _check_bad_problem(path: Path, fact: str, named: str, where: str) -> None:
    objects = ("a", "b", "c")
    good = ["(ontable a)", "(ontable b)", "(ontable c)", "(clear a)", "(clear b)", "(clear c)", "(handempty)"]
    goal = FactGoal(frozenset([fact] if where == "goal" else ["(on a b)"]))
    state = State.from_facts(good + ([fact] if where == "state" else []))
    actions = [Action("(pick-up a)")] + ([Action(fact)] if where == "action" else [])
    with pytest.raises(VocabularyError) as info:
        LlamaWorldModel(path, objects=objects, goal=goal, state=state, actions=actions)
    assert named in str(info.value) and info.value.problems


@FAST
@given(bad=_bad_facts(), where=st.sampled_from(["goal", "state"]))
def test_unwritable_facts_are_named(base_gguf, bad, where):
    _check_bad_problem(base_gguf, *bad, where)


@FAST
@given(name=_identifiers.filter(lambda n: n not in BW_ACTIONS and n not in MARKERS),
       args=st.lists(st.sampled_from(["a", "b", "c"]), max_size=3))
def test_unknown_actions_are_named(base_gguf, name, args):
    _check_bad_problem(base_gguf, "(" + " ".join([name, *args]) + ")", repr(name), "action")


def test_rebind_checks_the_new_problem(base_gguf, env3):
    model = LlamaWorldModel.for_environment(base_gguf, env3)
    try:
        with pytest.raises(VocabularyError, match="12 objects but the model knows at most 8"):
            model.rebind(objects=[f"o{i}" for i in range(12)], goal=FactGoal())
        with pytest.raises(VocabularyError, match="glows"):
            model.rebind(objects=["a"], goal=FactGoal(frozenset(["(glows a)"])))
        model.rebind(objects=["a", "b"], goal=FactGoal(frozenset(["(on a b)"])))  # still usable
        assert model.codec.objects == ("a", "b")
    finally:
        model.close()


def test_unwritable_state_at_predict_time(base_gguf, env3):
    model = LlamaWorldModel.for_environment(base_gguf, env3, retries=0)
    try:
        with pytest.raises(VocabularyError, match="glows"):
            model.predict(State.from_facts(["(glows b1)"]), env3.candidate_actions(env3.state)[0])
    finally:
        model.close()


# -- (e) values that used to abort llama.cpp, in subprocesses -------------------------------------
def _run_script(body: str, *, timeout: int = 240, memory_bytes: int | None = None) -> str:
    """Run ``body`` in a fresh interpreter; fail on a native crash; return its output."""
    prelude = "import resource\n"
    if memory_bytes is not None:
        prelude += f"resource.setrlimit(resource.RLIMIT_AS, ({memory_bytes}, {memory_bytes}))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(body)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode not in NATIVE_CRASH_CODES, f"native crash (code {proc.returncode}):\n{out[-3000:]}"
    assert "GGML_ASSERT" not in out and "bad_alloc" not in out, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    return proc.stdout


_LOAD = """
    from planner.env.pddl import PDDLEnvironment
    from planner.env.blocksworld import write_problem
    from planner.errors import PlannerError
    from planner.world.llama import LlamaWorldModel
    from tests.conftest import build_tiny_gguf

    FOLDER = {folder!r}
    path = build_tiny_gguf(FOLDER + "/m.gguf", context={context})
    env = PDDLEnvironment(*write_problem(FOLDER + "/pddl", 4, seed=1))
    state = env.state
    actions = env.candidate_actions(state)

    def attempt(**kwargs):
        try:
            model = LlamaWorldModel.for_environment(path, env, retries=0, on_invalid="reject", **kwargs)
            preds = model.predict_many(state, actions)
            model.close()
            return "ok %d %d" % (len(preds), model.max_siblings)
        except PlannerError as exc:
            return "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0])
"""


def _results(output: str) -> list[list[str]]:
    """The ``RESULT`` lines a script printed, split into the key and the rest."""
    return [line.split(" ", 2)[1:] for line in output.splitlines() if line.startswith("RESULT ")]


def test_small_contexts_give_clean_errors_or_run(tmp_path):
    script = _LOAD.format(folder=str(tmp_path), context=128) + """
    for n_ctx in (1, 16, 31, 32, 36, 37, 38, 64, 100, 127, 128, 129, 200, 256):
        print("RESULT", n_ctx, attempt(n_ctx=n_ctx))
    for siblings in (1, 2, 255, 256, 100000):
        print("RESULT", "s%d" % siblings, attempt(n_ctx=64, max_siblings=siblings))
    """
    out = dict(_results(_run_script(script)))
    for n_ctx in ("1", "16", "31"):
        assert out[n_ctx].startswith("ConfigError: n_ctx must be"), out
    assert out["32"].startswith("ConfigError: n_ctx=32 is too small for this problem"), out
    for n_ctx in ("64", "100", "127", "128", "129", "200", "256"):
        assert out[n_ctx].startswith("ok 40"), out
    assert all(v.startswith("ok 40") for k, v in out.items() if k.startswith("s")), out


def test_thread_counts_give_clean_errors_or_run(tmp_path):
    script = _LOAD.format(folder=str(tmp_path), context=128) + """
    for threads in (0, -3, 1, 2, 1024, 1025, 100000):
        print("RESULT", threads, attempt(n_ctx=64, n_threads=threads))
    """
    out = dict(_results(_run_script(script)))
    for bad in ("0", "-3", "1025", "100000"):
        assert out[bad].startswith("ConfigError: n_threads must be"), out
    for good in ("1", "2", "1024"):
        assert out[good].startswith("ok 40"), out


def test_huge_arity_is_refused_before_building_words(tmp_path, base_gguf):
    bad = tmp_path / "arity12.gguf"
    rewrite_gguf(base_gguf, out=bad, changes={KEY_PREDICATES: (json.dumps({**BW_PREDICATES, "big": 12}), T.STRING)})
    script = f"""
    from planner.errors import ModelLoadError
    from planner.types import FactGoal
    from planner.world.llama import LlamaWorldModel
    try:
        LlamaWorldModel({str(bad)!r}, objects=["a"], goal=FactGoal())
    except ModelLoadError as exc:
        print("ModelLoadError", exc)
    """
    out = _run_script(script, timeout=120, memory_bytes=4 * 2**30)
    assert out.startswith("ModelLoadError") and "planner.predicates" in out and "12" in out, out


def test_hyperparameters_llama_cpp_aborts_on_are_refused(tmp_path, base_gguf):
    # Each of these made llama.cpp abort the process (GGML_ASSERT) while loading the model.
    cases = {"b0": {"llama.block_count": (0, T.UINT32)}, "b513": {"llama.block_count": (513, T.UINT32)},
             "e8": {"llama.expert_count": (8, T.UINT32)}, "e100000": {"llama.expert_count": (100000, T.UINT32)},
             "u4": {"llama.expert_used_count": (4, T.UINT32)},
             "nan": {"llama.rope.freq_base": (math.nan, T.FLOAT32)}, "zero": {"llama.rope.freq_base": (0.0, T.FLOAT32)}}
    for name, changes in cases.items():
        rewrite_gguf(base_gguf, changes=changes, out=tmp_path / f"{name}.gguf")
    script = f"""
    from planner.errors import PlannerError
    from planner.types import FactGoal
    from planner.world.llama import LlamaWorldModel
    for name in {sorted(cases)!r}:
        try:
            LlamaWorldModel({str(tmp_path)!r} + "/" + name + ".gguf", objects=["a"], goal=FactGoal())
            print("RESULT", name, "loaded")
        except PlannerError as exc:
            print("RESULT", name, type(exc).__name__)
    """
    out = dict(_results(_run_script(script)))
    assert out == dict.fromkeys(cases, "ModelLoadError"), out


def test_non_finite_logits_are_a_world_model_error(tmp_path, env3):
    from planner.world.codec import domain_vocabulary
    from planner.world.gguf_io import LlamaShape, random_weights, write_world_model

    vocab = domain_vocabulary(BW_PREDICATES, BW_ACTIONS, 8)
    shape = LlamaShape(dim=32, n_layers=1, n_heads=2, ffn_dim=64, context=128)
    weights = random_weights(shape, len(vocab))
    weights["output.weight"][:] = math.nan
    path = write_world_model(tmp_path / "nan.gguf", vocab=vocab, shape=shape, weights=weights, codec="fact-delta",
                             codec_version=1, predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=8,
                             domain="blocksworld")
    for on_invalid in ("raise", "reject"):
        model = LlamaWorldModel.for_environment(path, env3, retries=1, on_invalid=on_invalid)
        try:
            with pytest.raises(WorldModelError, match="non-finite logits"):
                model.predict_many(env3.state, env3.candidate_actions(env3.state))
        finally:
            model.close()


_SWEEP = """
    import random
    from planner.env.pddl import PDDLEnvironment
    from planner.env.blocksworld import write_problem
    from planner.errors import PlannerError
    from planner.world.llama import LlamaWorldModel
    from tests.conftest import build_tiny_gguf

    rng = random.Random({seed})
    paths = {{c: build_tiny_gguf({folder!r} + "/m%d.gguf" % c, context=c) for c in (64, 128, 512)}}
    for i in range({runs}):
        n, context = rng.randint(2, 8), rng.choice([64, 128, 512])
        kwargs = dict(n_ctx=rng.choice([32, 33, 40, 50, 64, 77, 100, 128, 129, 200, 256, 300, 512, 1000, 4096]),
                      mode=rng.choice(["batched", "prefix", "naive"]),
                      max_siblings=rng.choice([1, 2, 3, 7, 64, 128, 255, 256, 1000]),
                      retries=rng.randint(0, 2), on_invalid=rng.choice(["raise", "reject"]))
        env = PDDLEnvironment(*write_problem({folder!r} + "/p", n, seed=rng.randint(0, 5)))
        try:
            model = LlamaWorldModel.for_environment(paths[context], env, **kwargs)
            state = env.state
            for _ in range(3):
                applicable = [p for p in model.predict_many(state, env.candidate_actions(state)) if p.applicable]
                if not applicable:
                    break
                state = rng.choice(applicable).next_state
            model.close()
            print("RESULT", i, "ok")
        except PlannerError as exc:
            print("RESULT", i, type(exc).__name__)
"""


@pytest.mark.parametrize("runs", [pytest.param(12, id="fast"), pytest.param(300, id="many", marks=pytest.mark.slow)])
def test_random_model_settings_never_crash(tmp_path, runs):
    """Problem sizes, context sizes, decoding modes and sibling counts, drawn at random: every
    outcome is a prediction or a PlannerError, never a native abort."""
    out = _results(_run_script(_SWEEP.format(seed=runs, runs=runs, folder=str(tmp_path)), timeout=900))
    assert len(out) == runs, out


@settings(max_examples=40, deadline=None)
@given(n=st.integers(-3, 9), seed=st.integers(0, 2**40),
       names=st.none() | st.lists(st.text(string.ascii_letters + string.digits + "-_?() ", max_size=6), max_size=9))
def test_generated_problems_are_valid_or_refused(n, seed, names):
    from planner.env.pddl import ground_task
    from planner.errors import DomainError

    try:
        text = generate_problem(n, seed=seed, names=names)
    except ConfigError as exc:
        assert str(n) in str(exc) or (names is not None and "names" in str(exc))
        return
    try:
        task = ground_task(DOMAIN_PDDL, text)
    except DomainError:  # a name that is a PDDL keyword
        return
    assert not task.goal.satisfied(task.init)


@pytest.mark.parametrize("bad", [{"n_heads": 0}, {"dim": 33, "n_heads": 1}, {"dim": 30, "n_heads": 4}, {"n_layers": 0},
                                 {"n_layers": 513}, {"context": 0}, {"rope_base": math.nan}, {"norm_eps": -1.0},
                                 {"ffn_dim": True}])
def test_model_shapes_are_checked(bad):
    from planner.world.gguf_io import LlamaShape

    with pytest.raises(ConfigError, match=next(iter(bad))):
        LlamaShape(**bad)


def test_quantize_threads_are_bounded(tmp_path, base_gguf):
    from planner.world.gguf_io import quantize

    for threads in (-1, 100000):
        with pytest.raises(ConfigError, match="threads"):
            quantize(base_gguf, tmp_path / "q.gguf", threads=threads)
    assert read_model_info(quantize(base_gguf, tmp_path / "q.gguf", threads=1000)).codec == "fact-delta"


def test_oversized_context_values_are_refused(base_gguf):
    from planner.world.engine import MAX_N_CTX

    for n_ctx in (MAX_N_CTX + 1, 2**32 + 64):
        with pytest.raises(ConfigError, match="n_ctx"):
            LlamaWorldModel(base_gguf, objects=("a",), goal=FactGoal(), n_ctx=n_ctx)


def test_every_deliberate_error_is_a_planner_error():
    # the error classes callers catch keep their Python bases where they had them
    from planner.errors import CodecError, ModelWriteError

    assert issubclass(ConfigError, ValueError) and issubclass(CodecError, ValueError)
    assert issubclass(ModelWriteError, ValueError) and issubclass(VocabularyError, ModelLoadError)
    assert issubclass(ContextOverflowError, WorldModelError)
    for cls in (ConfigError, CodecError, ModelWriteError, VocabularyError, ModelLoadError, WorldModelError):
        assert issubclass(cls, PlannerError)


# -- (f) tokenizer metadata llama.cpp aborts on --------------------------------------------------
TOKENS, SCORES, TYPES = "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"


def _duplicate_token(base: Path, out: Path, index: int = 21) -> Path:
    """Copy ``base`` with token ``index``'s text overwritten in place by token ``index - 1``'s."""
    import shutil

    shutil.copy(base, out)
    reader = gguf.GGUFReader(str(out), "r+")
    field = reader.fields[TOKENS]
    source, target = field.parts[field.data[index - 1]], field.parts[field.data[index]]
    assert len(source) == len(target)
    target[:] = source
    reader.data.flush()
    del reader, field, source, target
    return out


def _stored(base: Path, key: str) -> list:
    return gguf.GGUFReader(str(base)).fields[key].contents()


def _with_tokens(base: Path, change) -> dict:
    tokens = _stored(base, TOKENS)
    change(tokens)
    return {TOKENS: (tokens, T.ARRAY, T.STRING)}


def _tokenizer_cases(base: Path) -> dict[str, tuple[dict, str, str]]:
    """name → (metadata changes, key the error must name, value it must show)."""
    n = len(_stored(base, TOKENS))
    types, scores = _stored(base, TYPES), _stored(base, SCORES)
    from tests.conftest import DROP

    def set_item(values, index, value):
        values = list(values)
        values[index] = value
        return values

    return {
        "bert": ({"tokenizer.ggml.model": ("bert", T.STRING)}, "tokenizer.ggml.model", "'bert'"),
        "none": ({"tokenizer.ggml.model": ("none", T.STRING)}, "tokenizer.ggml.model", "'none'"),
        "no-model": ({"tokenizer.ggml.model": DROP}, "tokenizer.ggml.model", "missing"),
        "model-int": ({"tokenizer.ggml.model": (3, T.INT32)}, "tokenizer.ggml.model", "INT32"),
        "tokens-int": ({TOKENS: (list(range(n)), T.ARRAY, T.INT32)}, TOKENS, "INT32"),
        "no-tokens": ({TOKENS: DROP}, TOKENS, "missing"),
        "empty-token": (_with_tokens(base, lambda t: t.__setitem__(300, "")), f"{TOKENS}[300]", "''"),
        "same-text": (_with_tokens(base, lambda t: t.__setitem__(301, t[300])), f"{TOKENS}[301]", "repeats"),
        "no-byte-piece": (_with_tokens(base, lambda t: t.__setitem__(3 + 0xC3, "zz-not-a-byte")), TOKENS, "<0xC3>"),
        "scores-short": ({SCORES: (scores[:-1], T.ARRAY, T.FLOAT32)}, SCORES, f"{n - 1} entries"),
        "scores-int": ({SCORES: ([0] * n, T.ARRAY, T.INT32)}, SCORES, "INT32"),
        "scores-strings": ({SCORES: (["0"] * n, T.ARRAY, T.STRING)}, SCORES, "STRING"),
        "scores-nan": ({SCORES: (set_item(scores, 400, math.nan), T.ARRAY, T.FLOAT32)}, f"{SCORES}[400]", "nan"),
        "types-long": ({TYPES: ([*types, 1], T.ARRAY, T.INT32)}, TYPES, f"{n + 1} entries"),
        "types-uint8": ({TYPES: (types, T.ARRAY, T.UINT8)}, TYPES, "UINT8"),
        "type-7": ({TYPES: (set_item(types, 500, 7), T.ARRAY, T.INT32)}, f"{TYPES}[500]", "7"),
        "type-minus-1": ({TYPES: (set_item(types, 500, -1), T.ARRAY, T.INT32)}, f"{TYPES}[500]", "-1"),
        "byte-type-on-word": ({TYPES: (set_item(types, 500, 6), T.ARRAY, T.INT32)}, f"{TYPES}[500]", "byte"),
        "bos-out-of-range": ({"tokenizer.ggml.bos_token_id": (n, T.UINT32)}, "tokenizer.ggml.bos_token_id", str(n)),
        "eos-huge": ({"tokenizer.ggml.eos_token_id": (2**32 - 1, T.UINT32)}, "tokenizer.ggml.eos_token_id",
                     str(2**32 - 1)),
        "unk-negative": ({"tokenizer.ggml.unknown_token_id": (-1, T.INT32)}, "tokenizer.ggml.unknown_token_id", "-1"),
        "pad-out-of-range": ({"tokenizer.ggml.padding_token_id": (n + 5, T.UINT32)},
                             "tokenizer.ggml.padding_token_id", str(n + 5)),
        "vocab-size": ({"llama.vocab_size": (n + 1, T.UINT32)}, "llama.vocab_size", str(n + 1)),
        "one-token-more": ({TOKENS: ([*_stored(base, TOKENS), "zz-extra"], T.ARRAY, T.STRING),
                            SCORES: ([*scores, 0.0], T.ARRAY, T.FLOAT32), TYPES: ([*types, 1], T.ARRAY, T.INT32),
                            "llama.vocab_size": DROP}, TOKENS, "token_embd.weight"),
    }


@pytest.fixture(scope="module")
def tokenizer_files(base_gguf, tmp_path_factory) -> dict[str, tuple[Path, str, str]]:
    """Crafted tokenizer metadata: name → (file, key the error must name, value it must show)."""
    folder = tmp_path_factory.mktemp("tokenizer")
    files = {"duplicate": (_duplicate_token(base_gguf, folder / "duplicate.gguf"), f"{TOKENS}[21]", "'<0x11>'")}
    for name, (changes, key, shown) in _tokenizer_cases(base_gguf).items():
        files[name] = (Path(rewrite_gguf(base_gguf, changes=changes, out=folder / f"{name}.gguf")), key, shown)
    return files


def test_bad_tokenizer_metadata_is_a_model_load_error(tokenizer_files):
    for name, (path, key, shown) in tokenizer_files.items():
        with pytest.raises(ModelLoadError) as info:
            read_model_info(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message and key in message and shown in message, (name, message)


def test_the_project_tokenizers_pass_the_checks(base_gguf):
    assert read_model_info(base_gguf).codec == "fact-delta"
    assert read_model_info(ROOT / "planner" / "models" / "blocksworld-q8_0.gguf").codec == "fact-delta"


def test_tokenizer_metadata_that_aborted_llama_cpp_is_refused(tokenizer_files):
    # A duplicated token, and the "bert" and "none" tokenizers, made llama.cpp abort the
    # process (GGML_ASSERT); every crafted file must now end in a ModelLoadError.
    paths = {name: str(path) for name, (path, _, _) in tokenizer_files.items()}
    script = f"""
    from planner.errors import PlannerError
    from planner.types import FactGoal
    from planner.world.gguf_io import read_model_info
    from planner.world.llama import LlamaWorldModel
    for name, path in {paths!r}.items():
        for how in ("info", "model"):
            try:
                if how == "info":
                    read_model_info(path)
                else:
                    LlamaWorldModel(path, objects=["a", "b"], goal=FactGoal()).close()
                print("RESULT", name + "/" + how, "loaded")
            except PlannerError as exc:
                print("RESULT", name + "/" + how, type(exc).__name__)
    """
    out = dict(_results(_run_script(script)))
    expected = {f"{name}/{how}": "ModelLoadError" for name in paths for how in ("info", "model")}
    assert out == expected, out


# -- (g) input nested too deeply for Python's recursion limit -----------------------------------
@pytest.mark.parametrize("body", ["[search]\nbeam_width = " + "[" * 100_000 + "]" * 100_000 + "\n",
                                  "x = " + "{a = " * 100_000 + "1" + "}" * 100_000 + "\n",
                                  "[search]\nbeam_width = " + "[" * 900 + "]" * 900 + "\n"])
def test_deeply_nested_config_is_a_config_error(tmp_path, body):
    path = tmp_path / "deep.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=f"configuration file {path}") as info:
        load_config(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 1000
