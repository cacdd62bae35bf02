"""The completion-API world model of ``examples/completion_world_model.py`` (text and chat
codecs), on real tiny GGUF files."""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from examples.completion_world_model import ChatAnswer, ChatCodec, ChatExample, CompletionWorldModel, TextCodec
from planner.errors import ConfigError, ModelLoadError, WorldModelError
from planner.types import Action, FactGoal, State
from tests.conftest import BW_PREDICATES, CHAT_TEMPLATE, build_tiny_gguf

STATE = State.from_facts(["(on a b)", "(ontable b)", "(clear a)", "(handempty)"])
GOAL = FactGoal(frozenset({"(ontable a)"}))


def _chat_codec() -> ChatCodec:
    example = ChatExample(STATE, Action("(unstack a b)"),
                          ChatAnswer(applicable=True, added=["(holding a)", "(clear b)"],
                                     removed=["(on a b)", "(clear a)", "(handempty)"], done=False))
    return ChatCodec(goal=GOAL, predicates=BW_PREDICATES, objects=("a", "b"), examples=(example,))


def test_chat_prompt_uses_the_models_template():
    prompt = _chat_codec().render(STATE, Action("(pick-up a)"), template=CHAT_TEMPLATE)
    assert prompt.startswith("<|system|>\n")
    assert prompt.count("<|user|>") == 2 and prompt.endswith("<|assistant|>\n")
    assert "Action: (pick-up a)" in prompt and '"applicable":true' in prompt


def test_chat_template_runs_sandboxed():
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(ModelLoadError, match="chat template"):
        _chat_codec().render(STATE, Action("(pick-up a)"), template=evil)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"applicable": false, "added": [], "removed": [], "done": false}', True),
        ('{"applicable": true, "added": ["(holding a)", "(clear b)"], '
         '"removed": ["(on a b)", "(clear a)", "(handempty)"], "done": false}', True),
        ('{"applicable": true, "added": ["(fly a)"], "removed": [], "done": false}', False),
        ('{"applicable": true, "added": [], "removed": ["(ontable a)"], "done": false}', False),
        ('{"applicable": true, "added": ["(on a a)", "(on a a)"], "removed": [], "done": false}', False),
        ("not json", False),
    ],
)
def test_chat_answers_are_validated(text, ok):
    codec = _chat_codec()
    if ok:
        pred = codec.parse(text, STATE, Action("(unstack a b)"))
        assert pred.raw == text
    else:
        with pytest.raises(WorldModelError) as info:
            codec.parse(text, STATE, Action("(unstack a b)"))
        assert info.value.raw == text


def test_chat_model_answers_json_under_the_grammar(tmp_path):
    path = build_tiny_gguf(tmp_path / "chat.gguf", codec="chat", chat_template=CHAT_TEMPLATE, context=2048)
    model = CompletionWorldModel(path, codec=_chat_codec(), n_ctx=2048, max_tokens=48, retries=1)
    try:
        pred = model.predict(STATE, Action("(pick-up a)"))
        assert 0.0 < pred.confidence <= 1.0
    except WorldModelError as exc:
        # A random model may break validation or run out of tokens; the raw text is kept.
        assert exc.raw is not None
    assert model.stats.prompt_tokens > 0 and model.stats.generated_tokens > 0


def test_chat_model_without_template_is_refused(tmp_path):
    path = build_tiny_gguf(tmp_path / "plain.gguf", codec="chat", context=2048)
    model = CompletionWorldModel(path, codec=_chat_codec(), n_ctx=2048, max_tokens=8)
    with pytest.raises(ModelLoadError, match="chat template"):
        model.predict(STATE, Action("(pick-up a)"))


def test_text_codec_bounded_history_and_parsing():
    codec = TextCodec(history=2)
    state = State.from_text("You are in a kitchen.\n\n> open fridge\nThe fridge is open.\n\n> take milk\nTaken.")
    prompt = codec.render(state, Action("drink milk"))
    assert "kitchen" not in prompt and prompt.endswith("> drink milk\n=>")
    drink = Action("drink milk")
    pred = codec.parse("ok\nYou drink the milk.\ndone: yes", state, drink)
    assert pred.applicable and pred.done
    assert codec.turns(pred.next_state)[-1] == "> drink milk\nYou drink the milk."
    assert len(codec.turns(pred.next_state)) == 2
    assert not codec.parse("fail", state, drink).applicable
    for bad in ("maybe", "ok\ndone: yes", "ok\nsomething"):
        with pytest.raises(WorldModelError):
            codec.parse(bad, state, drink)


def test_text_model_on_a_real_gguf(tmp_path):
    path = build_tiny_gguf(tmp_path / "text.gguf", codec="text", context=512)
    model = CompletionWorldModel(path, codec=TextCodec(), n_ctx=512, max_tokens=16, retries=1)
    with pytest.raises(WorldModelError) as info:
        model.predict(State.from_text("A room."), Action("look"))
    assert info.value.raw is not None
    assert model.stats.retries == 1
    with pytest.raises(ModelLoadError, match="codec 'text'"):
        CompletionWorldModel(path, codec=_chat_codec())


def test_chat_schema_is_valid_json():
    schema = json.loads(_chat_codec().grammar() or "{}")
    assert set(schema["properties"]) == {"applicable", "added", "removed", "done"}


def test_thread_counts_are_bounded_or_refused(tmp_path):
    path = build_tiny_gguf(tmp_path / "text.gguf", codec="text")
    with pytest.raises(ConfigError, match="n_threads must be"):
        CompletionWorldModel(path, codec=TextCodec(), n_threads=100000)
    for threads in (1024, 1):
        model = CompletionWorldModel(path, codec=TextCodec(), n_threads=threads, max_tokens=2, retries=0)
        with contextlib.suppress(WorldModelError):  # random weights: a malformed answer is expected
            model.predict(State.from_text("a room"), Action("look"))
        assert 1 <= model.llm.context_params.n_threads <= (os.cpu_count() or 1)  # bounded to the cores
        model.close()
