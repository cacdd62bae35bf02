"""Writing and inspecting GGUF world models (Llama architecture, the project's tokenizer).

Weights are numpy arrays in PyTorch's ``Linear`` layout (``out_features × in_features``);
rotary embeddings rotate adjacent pairs (llama.cpp's "normal" RoPE for the llama
architecture), so no permutation is needed. Besides the architecture and tokenizer, a file
records the codec it speaks (``planner.codec``, ``planner.codec_version``) and the domain
schemas the codec needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from planner.errors import ModelLoadError
from planner.io import atomic_output
from planner.world.vocab import Vocabulary

GGUF_MAGIC = b"GGUF"
KEY_CODEC = "planner.codec"
KEY_CODEC_VERSION = "planner.codec_version"
KEY_PREDICATES = "planner.predicates"
KEY_ACTIONS = "planner.actions"
KEY_MAX_OBJECTS = "planner.max_objects"
KEY_DOMAIN = "planner.domain"
KEY_TRAINING = "planner.training"


@dataclass(frozen=True)
class LlamaShape:
    """Hyperparameters of a small Llama-architecture model.

    Attributes:
        dim: embedding width.
        n_layers: transformer blocks.
        n_heads: attention heads (``dim`` must divide by it).
        ffn_dim: SwiGLU hidden width.
        context: longest sequence in tokens.
        rope_base: RoPE frequency base.
        norm_eps: RMSNorm epsilon.
    """

    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ffn_dim: int = 512
    context: int = 128
    rope_base: float = 10000.0
    norm_eps: float = 1e-5


def tensor_shapes(shape: LlamaShape, n_vocab: int) -> dict[str, tuple[int, ...]]:
    """GGUF tensor names → numpy shapes (PyTorch layout) for ``shape``."""
    d, f = shape.dim, shape.ffn_dim
    out: dict[str, tuple[int, ...]] = {"token_embd.weight": (n_vocab, d)}
    for i in range(shape.n_layers):
        out |= {
            f"blk.{i}.attn_norm.weight": (d,),
            f"blk.{i}.attn_q.weight": (d, d),
            f"blk.{i}.attn_k.weight": (d, d),
            f"blk.{i}.attn_v.weight": (d, d),
            f"blk.{i}.attn_output.weight": (d, d),
            f"blk.{i}.ffn_norm.weight": (d,),
            f"blk.{i}.ffn_gate.weight": (f, d),
            f"blk.{i}.ffn_up.weight": (f, d),
            f"blk.{i}.ffn_down.weight": (d, f),
        }
    out |= {"output_norm.weight": (d,), "output.weight": (n_vocab, d)}
    return out


def random_weights(shape: LlamaShape, n_vocab: int, *, seed: int = 0, scale: float = 0.02) -> dict[str, np.ndarray]:
    """Deterministic random weights (norms at 1.0), for tests and initialisation."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, dims in tensor_shapes(shape, n_vocab).items():
        if len(dims) == 1:
            weights[name] = np.ones(dims, dtype=np.float32)
        else:
            weights[name] = (rng.standard_normal(dims) * scale).astype(np.float32)
    return weights


def write_world_model(
    path: str | Path,
    *,
    vocab: Vocabulary,
    shape: LlamaShape,
    weights: Mapping[str, np.ndarray],
    codec: str,
    codec_version: int,
    predicates: Mapping[str, int],
    actions: Mapping[str, int],
    max_objects: int,
    domain: str,
    training: Mapping[str, Any] | None = None,
    name: str = "planner world model",
) -> Path:
    """Write an F32 GGUF world model (atomically: a temporary file, then a rename)."""
    expected = tensor_shapes(shape, len(vocab))
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ValueError(f"missing tensors: {missing[:3]}")
    for key, dims in expected.items():
        if tuple(weights[key].shape) != dims:
            raise ValueError(f"tensor {key} has shape {weights[key].shape}, expected {dims}")
    with atomic_output(path) as tmp:
        _write_gguf(tmp, vocab=vocab, shape=shape, weights=weights, codec=codec, codec_version=codec_version,
                    predicates=predicates, actions=actions, max_objects=max_objects, domain=domain,
                    training=training, name=name, tensors=list(expected))
    return Path(path)


def _write_gguf(tmp: Path, *, vocab: Vocabulary, shape: LlamaShape, weights: Mapping[str, np.ndarray], codec: str,
                codec_version: int, predicates: Mapping[str, int], actions: Mapping[str, int], max_objects: int,
                domain: str, training: Mapping[str, Any] | None, name: str, tensors: list[str]) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(name)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.dim)
    writer.add_block_count(shape.n_layers)
    writer.add_feed_forward_length(shape.ffn_dim)
    writer.add_head_count(shape.n_heads)
    writer.add_head_count_kv(shape.n_heads)
    writer.add_rope_dimension_count(shape.dim // shape.n_heads)
    writer.add_rope_freq_base(shape.rope_base)
    writer.add_layer_norm_rms_eps(shape.norm_eps)
    writer.add_vocab_size(len(vocab))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(vocab.pieces))
    writer.add_token_scores(vocab.scores())
    writer.add_token_types(vocab.token_types())
    writer.add_bos_token_id(vocab.bos_id)
    writer.add_eos_token_id(vocab.eos_id)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)
    writer.add_string(KEY_CODEC, codec)
    writer.add_uint32(KEY_CODEC_VERSION, codec_version)
    writer.add_string(KEY_PREDICATES, json.dumps(dict(sorted(predicates.items()))))
    writer.add_string(KEY_ACTIONS, json.dumps(dict(sorted(actions.items()))))
    writer.add_uint32(KEY_MAX_OBJECTS, max_objects)
    writer.add_string(KEY_DOMAIN, domain)
    writer.add_string(KEY_TRAINING, json.dumps(dict(training or {}), sort_keys=True))
    for key in tensors:
        writer.add_tensor(key, np.ascontiguousarray(weights[key], dtype=np.float32))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


@dataclass(frozen=True)
class ModelInfo:
    """What a GGUF world model says about itself."""

    path: Path
    architecture: str
    codec: str | None
    codec_version: int | None
    predicates: dict[str, int]
    actions: dict[str, int]
    max_objects: int
    domain: str | None
    context: int
    training: dict[str, Any]
    size_bytes: int


def read_model_info(path: str | Path) -> ModelInfo:
    """Read a GGUF file's metadata without loading the weights.

    Raises :class:`ModelLoadError` naming the path when the file is missing, empty, not a
    GGUF file, or truncated.
    """
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model file not found: {p}")
    if not p.is_file():
        raise ModelLoadError(f"model path is not a file: {p}")
    size = p.stat().st_size
    with p.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"not a GGUF file (magic {magic!r}, expected b'GGUF'): {p}")
    try:
        import gguf

        reader = gguf.GGUFReader(str(p))
        fields = reader.fields
        last_end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as exc:
        raise ModelLoadError(f"corrupt or truncated GGUF file {p}: {type(exc).__name__}: {exc}") from None
    if last_end > size:
        raise ModelLoadError(f"truncated GGUF file {p}: tensors need {last_end} bytes, file has {size}")

    def get(key: str) -> Any:
        field = fields.get(key)
        if field is None:
            return None
        return field.contents()

    arch = get("general.architecture") or "?"
    return ModelInfo(
        path=p,
        architecture=str(arch),
        codec=get(KEY_CODEC),
        codec_version=get(KEY_CODEC_VERSION),
        predicates=json.loads(get(KEY_PREDICATES) or "{}"),
        actions=json.loads(get(KEY_ACTIONS) or "{}"),
        max_objects=int(get(KEY_MAX_OBJECTS) or 0),
        domain=get(KEY_DOMAIN),
        context=int(get(f"{arch}.context_length") or 0),
        training=json.loads(get(KEY_TRAINING) or "{}"),
        size_bytes=size,
    )


def quantize(src: str | Path, dst: str | Path, *, kind: str = "q8_0", threads: int = 0) -> Path:
    """Quantize a GGUF model with llama.cpp's own quantizer (``q8_0`` or ``q4_0``)."""
    import llama_cpp

    ftypes = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}
    if kind not in ftypes:
        raise ValueError(f"unknown quantization {kind!r}; choose one of {sorted(ftypes)}")
    from planner.world.engine import _init_backend

    _init_backend()  # routes llama.cpp's log lines away from stderr
    read_model_info(src)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[kind]
    params.nthread = threads
    with atomic_output(dst) as tmp:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise ModelLoadError(f"llama.cpp could not quantize {src} (code {rc})")
    return Path(dst)
