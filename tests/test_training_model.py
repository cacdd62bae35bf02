"""The training model's word tables, and its export: llama.cpp computes what PyTorch computes."""

from __future__ import annotations

import numpy as np
import pytest

from planner.world.codec import domain_vocabulary
from planner.world.gguf_io import LlamaShape, write_world_model

PREDICATES = {"in": 2, "holding": 1, "handempty": 0}
ACTIONS = {"take": 2, "go": 1}
MAX_OBJECTS = 5


def _model(embeddings: str, seed: int = 0):
    import torch

    from planner.training.train import TrainConfig, new_model

    torch.manual_seed(seed)
    vocab = domain_vocabulary(PREDICATES, ACTIONS, MAX_OBJECTS)
    config = TrainConfig(shape=LlamaShape(dim=32, n_layers=2, n_heads=2, ffn_dim=64, context=64),
                         max_objects=MAX_OBJECTS, embeddings=embeddings)
    return vocab, new_model(config, vocab, {**PREDICATES, **ACTIONS})


def test_a_factored_row_is_its_name_row_plus_its_argument_rows():
    pytest.importorskip("torch")
    vocab, model = _model("factored")
    table = model.embed
    w = model.embedding_matrix().detach().numpy()
    names = sorted({**PREDICATES, **ACTIONS})

    def row(word):
        return w[vocab.word_ids[word]]

    expected = (table.names[names.index("in")] + table.args[0][2] + table.args[1][4]).detach().numpy()
    np.testing.assert_allclose(row("in(x3,x5)"), expected, rtol=1e-6)
    np.testing.assert_allclose(row("handempty"), table.names[names.index("handempty")].detach().numpy())
    # the same argument in the same position contributes the same row, whatever the name
    np.testing.assert_allclose(row("take(x3,x1)") - row("take(x2,x1)"), row("in(x3,x4)") - row("in(x2,x4)"),
                               atol=1e-6)
    # markers and the begin/end tokens have rows of their own; pieces never written share one
    own = {vocab.word_ids[m] for m in ("ok", "fail", "add", "del", "=>")} | {vocab.bos_id, vocab.eos_id}
    assert len({tuple(w[i]) for i in own}) == len(own)
    prefix = vocab.pieces.index("\u2581in(x3")
    assert np.array_equal(w[prefix], w[vocab.pieces.index("<0x41>")])
    assert model.n_params() < _model("free")[1].n_params()


def test_answer_logits_are_the_full_logits_at_the_answer_positions():
    torch = pytest.importorskip("torch")
    vocab, model = _model("factored")
    tokens = torch.randint(3, len(vocab), (3, 12))
    targets = torch.full((3, 12), -100)
    targets[0, 4], targets[2, 7], targets[2, 8] = 5, 6, 7
    full = model(tokens)
    np.testing.assert_allclose(model.answer_logits(tokens, targets).detach().numpy(),
                               full[targets != -100].detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("embeddings", ["factored", "free"])
def test_the_answer_loss_is_the_cross_entropy_over_every_piece(embeddings):
    """Factored tables compute the loss over distinct rows (word prefixes share one): the same
    value as the softmax over every piece, and the same accuracy."""
    torch = pytest.importorskip("torch")
    from torch.nn import functional as F

    vocab, model = _model(embeddings, seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(5.0)
    tokens = torch.randint(3, len(vocab), (4, 10))
    targets = torch.full((4, 10), -100)
    words = [vocab.word_ids[w] for w in ("ok", "fail", "in(x1,x2)", "holding(x5)", "del", "take(x4,x3)")]
    for k, (row, col) in enumerate([(0, 3), (1, 5), (1, 6), (2, 2), (3, 8), (3, 9)]):
        targets[row, col] = words[k]
    with torch.no_grad():
        full = model.answer_logits(tokens, targets)
        wanted = targets[targets != -100]
        expected = F.cross_entropy(full, wanted)
        assert float(model.answer_loss(tokens, targets)) == pytest.approx(float(expected), rel=1e-5)
    assert model.answer_accuracy(tokens, targets) == float((full.argmax(-1) == wanted).float().mean())


@pytest.mark.parametrize("embeddings", ["factored", "free"])
def test_llama_cpp_computes_the_exported_models_logits(tmp_path, embeddings):
    """The GGUF written from the training model gives llama.cpp the same next-token logits
    PyTorch computes (float32 export; factored tables are materialised on export), up to the
    rounding of llama.cpp's half-precision KV cache."""
    torch = pytest.importorskip("torch")
    from planner.world.engine import LlamaEngine

    vocab, model = _model(embeddings, seed=3)
    with torch.no_grad():  # larger weights than the initialisation, so differences would show
        for p in model.parameters():
            p.mul_(4.0)
    path = tmp_path / "m.gguf"
    write_world_model(path, vocab=vocab, shape=model.shape, weights=model.gguf_weights(), codec="fact-delta",
                      codec_version=1, predicates=PREDICATES, actions=ACTIONS, max_objects=MAX_OBJECTS,
                      domain="toy")
    words = ["goal", "in(x1,x2)", "state", "handempty", "in(x1,x3)", "action", "take(x1,x3)", "=>", "ok"]
    ids = [vocab.bos_id, *vocab.encode(words)]
    with torch.no_grad():
        expected = model(torch.tensor([ids]))[0, -1].numpy()
    engine = LlamaEngine(path, n_ctx=64, n_seq_max=1, n_threads=1)
    try:
        handles = engine.decode([(tok, pos, 0, pos == len(ids) - 1) for pos, tok in enumerate(ids)])
        got = np.asarray(engine.logits(handles[-1]), dtype=np.float64)
    finally:
        engine.close()
    assert got.shape == expected.shape
    assert int(np.argmax(got)) == int(np.argmax(expected))
    np.testing.assert_allclose(got, expected, atol=0.02 * float(np.ptp(expected)))


def test_auto_factors_large_vocabularies_only():
    pytest.importorskip("torch")
    from planner.training.model import FACTOR_ABOVE, resolve_embeddings

    small = domain_vocabulary(PREDICATES, ACTIONS, MAX_OBJECTS)
    large = domain_vocabulary({"in": 2, "fits": 2}, {"move": 2}, 20)
    assert len(small.words) <= FACTOR_ABOVE < len(large.words)
    assert resolve_embeddings("auto", small) == "free" and resolve_embeddings("auto", large) == "factored"
    assert resolve_embeddings("factored", small) == "factored" and resolve_embeddings("free", large) == "free"
