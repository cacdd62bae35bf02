"""Text-only worlds: the text-observation codec, and a real model trained, exported to GGUF and
run by llama.cpp (training needs the ``train`` extra: PyTorch)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner.errors import CodecError, ModelLoadError
from planner.world.textcodec import (
    CONT,
    DONE,
    answer_words,
    join_words,
    parse_answer,
    prompt_words,
    same_observation,
    text_words,
)

printable = st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)) | st.sampled_from("\n\t"),
                    max_size=200)


def test_words_split_punctuation_and_keep_contractions():
    assert text_words("You've just walked into a Kitchen.\n\nYou see a closed oven!") == \
        ["You've", "just", "walked", "into", "a", "Kitchen", ".", "You", "see", "a", "closed", "oven", "!"]
    assert text_words("-= Kitchen =-") == ["-", "=", "Kitchen", "=", "-"]


@given(printable)
def test_joined_words_read_back_as_the_same_words(text):
    words = text_words(text)
    assert text_words(join_words(words)) == words
    assert same_observation(text, join_words(words))


@given(printable)
def test_markers_never_come_out_of_text(text):
    assert not {DONE, CONT} & set(text_words(text))


@given(printable, st.booleans())
def test_answers_parse_back(text, done):
    observation, parsed_done = parse_answer(answer_words(text, done))
    assert parsed_done == done and same_observation(observation, text)


def test_malformed_answers_are_named():
    with pytest.raises(CodecError, match="does not end"):
        parse_answer(["You", "take"])
    with pytest.raises(CodecError, match="marker"):
        parse_answer(["You", "§obs", CONT])
    with pytest.raises(CodecError, match="no words"):
        prompt_words("a room", "   ")


SYNTHETIC = [
    # state, command, observation, won
    ("Kitchen . You see an apple on the table .", "take apple from table", "You take the apple from the table.", False),
    ("Kitchen . You see a pear on the table .", "take pear from table", "You take the pear from the table.", False),
    ("Kitchen . You see a pear on the counter .", "take pear from counter", "You take the pear from the counter.",
     False),
    ("Kitchen . You carry an apple .", "eat apple", "You eat the apple. Not bad.", True),
    ("Kitchen . You carry a pear .", "eat pear", "You eat the pear. Not bad.", True),
    ("Kitchen . You see an apple on the counter .", "eat apple", "You can't see any such thing.", False),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("torch", reason="training needs the 'train' extra (PyTorch)")
    from planner.training.text import TextTrainConfig, TextTransition, train_text
    from planner.world.gguf_io import LlamaShape

    out = tmp_path_factory.mktemp("textmodel")
    data = [TextTransition(game=i, state=s, action=a, observation=o, done=d) for i, (s, a, o, d) in
            enumerate(SYNTHETIC)]
    config = TextTrainConfig(shape=LlamaShape(dim=64, n_layers=2, n_heads=2, ffn_dim=128, context=64),
                             minutes=10.0, max_steps=300, batch_size=16, lr=3e-3, warmup=20, threads=1)
    summary = train_text(data, out, config=config)
    return out, data, summary


def test_trained_model_runs_in_llama_cpp_and_learns_its_data(trained):
    from planner.training.text import evaluate_text
    from planner.world.text_model import TextObservationModel

    out, data, summary = trained
    assert summary["steps"] == 300 and summary["left_out"] == 0
    model = TextObservationModel(out / "model-q8_0.gguf", max_new=24)
    try:
        report = evaluate_text(model, data)
        assert report.exact == len(data), report.table()
        assert report.done_right == len(data)
        pred = model.predict("Kitchen . You carry an apple .", "eat apple")
        assert pred.done and 0.0 < pred.confidence <= 1.0
        unseen = model.predict("Kitchen . You see a zucchini .", "take zucchini")
        assert unseen.unknown_words == 2  # the state's and the command's unknown word, read as <unk>
    finally:
        model.close()


def test_a_fact_delta_model_is_refused_as_a_text_model():
    from planner.world.factory import default_model_path
    from planner.world.text_model import TextObservationModel

    with pytest.raises(ModelLoadError, match="text-obs"):
        TextObservationModel(default_model_path("blocksworld"))
