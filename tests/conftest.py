"""Shared fixtures: generated Blocksworld problems on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment


@pytest.fixture
def bw_files(tmp_path: Path):
    """A factory writing a Blocksworld problem: ``bw_files(n, seed) -> (domain, problem)``."""

    def make(n: int, seed: int = 0) -> tuple[Path, Path]:
        return write_problem(tmp_path / "pddl", n, seed=seed)

    return make


@pytest.fixture
def bw_env(bw_files):
    """A factory for Blocksworld environments: ``bw_env(n, seed)``."""

    def make(n: int, seed: int = 0, **kwargs) -> PDDLEnvironment:
        return PDDLEnvironment(*bw_files(n, seed), **kwargs)

    return make


# -- tiny GGUF models built at test time ------------------------------------------------------
BW_PREDICATES = {"on": 2, "ontable": 1, "clear": 1, "handempty": 0, "holding": 1}
BW_ACTIONS = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_gguf(path, *, context=128, codec="fact-delta", codec_version=1, seed=0, scale=0.5,
                    chat_template=None, max_objects=8):
    """A real Llama-architecture GGUF with the project's tokenizer and random weights."""
    from planner.world.codec import domain_vocabulary
    from planner.world.gguf_io import LlamaShape, random_weights, write_world_model

    vocab = domain_vocabulary(BW_PREDICATES, BW_ACTIONS, max_objects)
    shape = LlamaShape(dim=32, n_layers=1, n_heads=2, ffn_dim=64, context=context)
    write_world_model(path, vocab=vocab, shape=shape, weights=random_weights(shape, len(vocab), seed=seed, scale=scale),
                      codec=codec, codec_version=codec_version, predicates=BW_PREDICATES, actions=BW_ACTIONS,
                      max_objects=max_objects, domain="blocksworld")
    if chat_template is not None:
        _add_chat_template(path, chat_template)
    return path


def _add_chat_template(path, template):
    """Rewrite ``path`` with a ``tokenizer.chat_template`` key (gguf's writer cannot append)."""
    import gguf

    rewrite_gguf(path, changes={"tokenizer.chat_template": (template, gguf.GGUFValueType.STRING)})


DROP = object()
"""A value for :func:`rewrite_gguf` that removes the key."""


def rewrite_gguf(path, *, changes, out=None):
    """Copy the GGUF at ``path`` to ``out`` (default: in place) with some metadata changed.

    ``changes`` maps a key to ``(value, gguf.GGUFValueType)``, to ``(list, GGUFValueType.ARRAY,
    item_type)`` for arrays, or to :data:`DROP`. Any type may be given to any key, so tests can
    write metadata of the wrong type.
    """
    import os

    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(path))
    target = str(out or path)
    tmp = target + ".rewrite"
    writer = gguf.GGUFWriter(tmp, "llama")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture" or field.name in changes:
            continue
        vtype = field.types[0]
        value = field.contents()
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_array(field.name, value)
        else:
            writer.add_key_value(field.name, value, vtype)
    for key, change in changes.items():
        if change is DROP:
            continue
        if change[1] == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, change[0], change[1], sub_type=change[2])
        else:
            writer.add_key_value(key, change[0], change[1])
    for t in reader.tensors:
        writer.add_tensor(t.name, np.array(t.data), raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, target)
    return target


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory):
    return build_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tinyenv")
    return PDDLEnvironment(*write_problem(folder, 4, seed=1))
