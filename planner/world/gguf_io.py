"""Writing and inspecting GGUF world models (Llama architecture, the project's tokenizer).

Weights are numpy arrays in PyTorch's ``Linear`` layout (``out_features × in_features``);
rotary embeddings rotate adjacent pairs (llama.cpp's "normal" RoPE for the llama
architecture), so no permutation is needed. Besides the architecture and tokenizer, a file
records the codec it speaks (``planner.codec``, ``planner.codec_version``) and the domain
schemas the codec needs.

Metadata is validated when it is read (and before it is written) by :class:`ModelMetadata`:
a value of the wrong type or out of bounds raises :class:`~planner.errors.ModelLoadError`
naming the file, the key and the value, before anything is built from it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from planner.errors import ConfigError, ModelLoadError, ModelWriteError
from planner.io import atomic_output
from planner.world.codec import CODEC_NAME, CODEC_VERSIONS, MARKERS
from planner.world.vocab import MAX_ARITY, MAX_GROUND_WORDS, MAX_OBJECTS, Vocabulary, ground_word_count

GGUF_MAGIC = b"GGUF"
KEY_CODEC = "planner.codec"
KEY_CODEC_VERSION = "planner.codec_version"
KEY_PREDICATES = "planner.predicates"
KEY_ACTIONS = "planner.actions"
KEY_MAX_OBJECTS = "planner.max_objects"
KEY_DOMAIN = "planner.domain"
KEY_TRAINING = "planner.training"
KEY_SIGNATURE = "planner.signature"

MAX_CONTEXT = 2**24
"""Largest training context (tokens) accepted from a file's ``<arch>.context_length``."""
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$"
"""Predicate and action names: a letter, then letters, digits, ``_`` or ``-`` (at most 64)."""

_Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
_Arity = Annotated[int, Field(ge=0, le=MAX_ARITY)]
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
_JSON_KEYS = ("predicates", "actions", "training", "signature")
MAX_LAYERS = 512
"""llama.cpp's ``LLAMA_MAX_LAYERS``: it aborts on a block count of 0 or above this."""
MAX_EXPERTS = 512
"""Most mixture-of-experts experts accepted (llama.cpp aborts on counts beyond its own limit,
and on a used-expert count above the expert count)."""
_ARCH_KEYS = {
    "context": "context_length",
    "block_count": "block_count",
    "expert_count": "expert_count",
    "expert_used_count": "expert_used_count",
    "rope_freq_base": "rope.freq_base",
    "norm_eps": "attention.layer_norm_rms_epsilon",
}
"""Fields read from ``<architecture>.<key>``: the hyperparameters llama.cpp asserts on."""
_FIELD_KEYS = {
    "architecture": "general.architecture",
    "codec": KEY_CODEC,
    "codec_version": KEY_CODEC_VERSION,
    "predicates": KEY_PREDICATES,
    "actions": KEY_ACTIONS,
    "max_objects": KEY_MAX_OBJECTS,
    "domain": KEY_DOMAIN,
    **{name: f"<arch>.{key}" for name, key in _ARCH_KEYS.items()},
    "training": KEY_TRAINING,
    "signature": KEY_SIGNATURE,
}


class ModelMetadata(BaseModel):
    """The metadata of a world-model GGUF file, validated (strict types: no numbers as text).

    Every key is optional (a general GGUF model has none of the ``planner.*`` keys); a key that
    is present must be valid.

    Attributes:
        architecture: ``general.architecture`` (e.g. ``"llama"``).
        codec: ``planner.codec``, the format the model speaks (e.g. ``"fact-delta"``).
        codec_version: ``planner.codec_version``, at least 1.
        predicates: ``planner.predicates``, a JSON object: predicate name → arity in
            ``0..MAX_ARITY``; names match :data:`NAME_PATTERN`.
        actions: ``planner.actions``, the same for action schemas.
        max_objects: ``planner.max_objects``, placeholder objects ``1..MAX_OBJECTS`` (0 when
            the file declares no schemas).
        domain: ``planner.domain``, the name of the domain the model was trained on.
        context: ``<arch>.context_length`` in tokens, ``1..MAX_CONTEXT`` (0 only when absent).
        block_count: ``<arch>.block_count``, ``1..MAX_LAYERS`` (0 only when absent).
        expert_count, expert_used_count: ``<arch>.expert_count`` (``0..MAX_EXPERTS``) and
            ``<arch>.expert_used_count`` (at most the expert count; at least 1 with experts).
        rope_freq_base: ``<arch>.rope.freq_base``, finite and > 0 (``None`` when absent).
        norm_eps: ``<arch>.attention.layer_norm_rms_epsilon``, finite and ≥ 0.
        training: ``planner.training``, a JSON object describing the training run.
        signature: ``planner.signature``, a JSON object describing the domain (``None`` when
            absent).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    architecture: str = Field("?", min_length=1, max_length=64)
    codec: str | None = Field(None, min_length=1, max_length=64)
    codec_version: int | None = Field(None, ge=1, le=2**31 - 1)
    predicates: dict[_Name, _Arity] = Field(default_factory=dict)
    actions: dict[_Name, _Arity] = Field(default_factory=dict)
    max_objects: int = Field(0, ge=0, le=MAX_OBJECTS)
    domain: str | None = Field(None, max_length=256)
    context: int = Field(0, ge=1, le=MAX_CONTEXT)  # the default (absent) is not validated
    block_count: int = Field(0, ge=1, le=MAX_LAYERS)
    expert_count: int = Field(0, ge=0, le=MAX_EXPERTS)
    expert_used_count: int = Field(0, ge=0, le=MAX_EXPERTS)
    rope_freq_base: float | None = Field(None, gt=0, allow_inf_nan=False)
    norm_eps: float | None = Field(None, ge=0, allow_inf_nan=False)
    training: dict[str, Any] = Field(default_factory=dict)
    signature: dict[str, Any] | None = None

    @field_validator(*_JSON_KEYS, mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if value is None or isinstance(value, dict):
            return value
        if not isinstance(value, str):
            raise ValueError(f"must be a JSON object written as a string, got a value of type {type(value).__name__}")
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"is not valid JSON ({type(exc).__name__})") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"must be a JSON object, got a JSON {_JSON_TYPES.get(type(parsed), 'value')}")
        return parsed

    @model_validator(mode="after")
    def _experts(self) -> ModelMetadata:
        if self.expert_used_count > self.expert_count or (self.expert_count > 0 and self.expert_used_count < 1):
            arch = self.architecture
            raise ValueError(f"{arch}.expert_used_count = {self.expert_used_count} must lie in 1..{arch}.expert_count "
                             f"(= {self.expert_count}), or both be 0")
        return self

    @model_validator(mode="after")
    def _bounded_vocabulary(self) -> ModelMetadata:
        both = sorted(set(self.predicates) & set(self.actions))
        if both:
            raise ValueError(f"{KEY_PREDICATES} and {KEY_ACTIONS} both name {both[:5]}")
        schemas = {**self.predicates, **self.actions}
        if schemas and self.max_objects < 1:
            raise ValueError(f"{KEY_MAX_OBJECTS} must be at least 1 when schemas are declared, got {self.max_objects}")
        count = ground_word_count(schemas, self.max_objects)
        if count > MAX_GROUND_WORDS:
            raise ValueError(
                f"{KEY_PREDICATES} and {KEY_ACTIONS} grounded over {KEY_MAX_OBJECTS} = {self.max_objects} objects "
                f"give {count:,} words, more than {MAX_GROUND_WORDS:,} (largest arity {max(schemas.values())})")
        return self


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: ValidationError, raw: Mapping[str, Any]) -> str:
    """One line per problem: the GGUF key, the bad value and what is wrong with it."""
    arch = raw.get("architecture")
    keys = dict(_FIELD_KEYS)
    if isinstance(arch, str):
        keys |= {name: f"{arch}.{key}" for name, key in _ARCH_KEYS.items()}
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p != "[key]"]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc:
            lines.append(msg)
            continue
        key = keys.get(loc[0], loc[0])
        where = key + "".join(f"[{p!r}]" for p in loc[1:])
        value = raw.get(loc[0], err.get("input"))
        entry = f"; entry value {_short(err.get('input'))}" if len(loc) > 1 else ""
        lines.append(f"{where} = {_short(value)}: {msg}{entry}")
    return "; ".join(lines)


def validate_metadata(raw: Mapping[str, Any]) -> ModelMetadata:
    """Validate metadata values (field name → value as stored); ``ValueError`` subclasses
    from pydantic name each bad key."""
    return ModelMetadata.model_validate(dict(raw))


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

    def __post_init__(self) -> None:
        for name, high in (("dim", 2**16), ("n_layers", MAX_LAYERS), ("n_heads", 2**10), ("ffn_dim", 2**18),
                           ("context", MAX_CONTEXT)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ConfigError(f"{name} must be a whole number in 1..{high}, got {value!r}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ConfigError(f"dim ({self.dim}) must be n_heads ({self.n_heads}) times an even head width "
                              "(rotary embeddings rotate pairs)")
        for name, low_ok in (("rope_base", False), ("norm_eps", True)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value < 0 or (value == 0 and not low_ok)):
                raise ConfigError(f"{name} must be a finite number {'≥' if low_ok else '>'} 0, got {value!r}")


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
    signature: Mapping[str, Any] | None = None,
    name: str = "planner world model",
) -> Path:
    """Write an F32 GGUF world model (atomically: a temporary file, then a rename).

    ``signature`` (a JSON-serialisable mapping describing the domain) is stored under
    :data:`KEY_SIGNATURE` and read back as :attr:`ModelInfo.signature`. Raises
    :class:`~planner.errors.ModelWriteError` for missing or misshapen tensors and for
    metadata that :func:`read_model_info` would refuse.
    """
    expected = tensor_shapes(shape, len(vocab))
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ModelWriteError(f"missing tensors: {missing[:3]}")
    for key, dims in expected.items():
        if tuple(weights[key].shape) != dims:
            raise ModelWriteError(f"tensor {key} has shape {weights[key].shape}, expected {dims}")
    meta = _metadata_to_write(codec=codec, codec_version=codec_version, predicates=predicates, actions=actions,
                              max_objects=max_objects, domain=domain, shape=shape,
                              training=training, signature=signature)
    with atomic_output(path) as tmp:
        _write_gguf(tmp, vocab=vocab, shape=shape, weights=weights, meta=meta, name=name, tensors=list(expected))
    return Path(path)


def _metadata_to_write(*, codec: str, codec_version: int, predicates: Mapping[str, int], actions: Mapping[str, int],
                       max_objects: int, domain: str, shape: LlamaShape, training: Mapping[str, Any] | None,
                       signature: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``planner.*`` values as stored (JSON objects as text), validated like a reader does."""
    try:
        stored = {
            "architecture": "llama",
            "codec": codec,
            "codec_version": codec_version,
            "predicates": json.dumps(dict(sorted(predicates.items()))),
            "actions": json.dumps(dict(sorted(actions.items()))),
            "max_objects": max_objects,
            "domain": domain,
            "context": shape.context,
            "block_count": shape.n_layers,
            "rope_freq_base": float(shape.rope_base),
            "norm_eps": float(shape.norm_eps),
            "training": json.dumps(dict(training or {}), sort_keys=True),
            "signature": None if signature is None else json.dumps(dict(signature), sort_keys=True),
        }
    except (TypeError, ValueError) as exc:
        raise ModelWriteError(f"model metadata is not JSON-serialisable: {exc}") from None
    try:
        validate_metadata(stored)
    except ValidationError as exc:
        raise ModelWriteError(f"model metadata out of bounds: {_describe(exc, stored)}") from None
    return stored


def _write_gguf(tmp: Path, *, vocab: Vocabulary, shape: LlamaShape, weights: Mapping[str, np.ndarray],
                meta: Mapping[str, Any], name: str, tensors: list[str]) -> None:
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
    writer.add_string(KEY_CODEC, meta["codec"])
    writer.add_uint32(KEY_CODEC_VERSION, meta["codec_version"])
    writer.add_string(KEY_PREDICATES, meta["predicates"])
    writer.add_string(KEY_ACTIONS, meta["actions"])
    writer.add_uint32(KEY_MAX_OBJECTS, meta["max_objects"])
    writer.add_string(KEY_DOMAIN, meta["domain"])
    writer.add_string(KEY_TRAINING, meta["training"])
    if meta["signature"] is not None:
        writer.add_string(KEY_SIGNATURE, meta["signature"])
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
    """What a GGUF world model says about itself (validated; see :class:`ModelMetadata`).

    Attributes:
        path: the file.
        architecture: ``general.architecture``.
        codec, codec_version: the format the model speaks (``None`` for a general model).
        predicates, actions: schema name → arity.
        max_objects: placeholder objects the model knows (0: none declared).
        domain: the training domain's name.
        context: training context in tokens (0: not recorded).
        training: a description of the training run.
        size_bytes: file size in bytes.
        signature: the training domain's signature (``None``: not recorded).
    """

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
    signature: dict[str, Any] | None = None


def check_codec(info: ModelInfo) -> None:
    """:class:`ModelLoadError` unless ``info`` describes a fact-delta model this project runs
    (:class:`~planner.world.llama.LlamaWorldModel`; checked without llama.cpp, so that training
    can start from a model on a machine without it)."""
    if info.codec != CODEC_NAME or info.codec_version not in CODEC_VERSIONS:
        raise ModelLoadError(
            f"{info.path} was made for codec {info.codec!r} version {info.codec_version}, "
            f"but LlamaWorldModel speaks {CODEC_NAME!r} versions {', '.join(map(str, CODEC_VERSIONS))}")
    if not info.predicates or not info.actions:
        raise ModelLoadError(f"{info.path} declares no predicates or no actions ({KEY_PREDICATES}, {KEY_ACTIONS})")
    clash = sorted(set(MARKERS) & {**info.predicates, **info.actions}.keys())
    if clash:
        raise ModelLoadError(f"{info.path} names schemas like the codec's marker words: {clash}")


def read_model_info(path: str | Path) -> ModelInfo:
    """Read and validate a GGUF file's metadata without loading the weights.

    Raises :class:`ModelLoadError` naming the path when the file is missing, empty, not a
    GGUF file or truncated, and naming the path, the key and the value when a metadata value
    has the wrong type or is out of bounds (see :class:`ModelMetadata`).
    """
    return _read(Path(path))[0]


def tensor_types(path: str | Path) -> dict[str, str]:
    """Each tensor's storage type (``F32``, ``F16``, ``Q8_0``, …) by name, after the checks of
    :func:`read_model_info` (whose errors it raises)."""
    import gguf

    read_model_info(path)
    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}


def _read(p: Path) -> tuple[ModelInfo, Mapping[str, Any]]:
    """:func:`read_model_info`'s work, with the file's metadata fields as parsed."""
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
    raw = _raw_metadata(p, fields)
    try:
        meta = validate_metadata(raw)
    except ValidationError as exc:
        raise ModelLoadError(f"invalid metadata in {p}: {_describe(exc, raw)}") from None
    check_tokenizer(p, fields, {t.name: [int(d) for d in t.shape] for t in reader.tensors})
    info = ModelInfo(
        path=p,
        architecture=meta.architecture,
        codec=meta.codec,
        codec_version=meta.codec_version,
        predicates=dict(meta.predicates),
        actions=dict(meta.actions),
        max_objects=meta.max_objects,
        domain=meta.domain,
        context=meta.context,
        training=dict(meta.training),
        size_bytes=size,
        signature=None if meta.signature is None else dict(meta.signature),
    )
    return info, fields


def _raw_metadata(path: Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata values as stored (absent keys left out), keyed by :class:`ModelMetadata` field."""

    def get(key: str) -> Any:
        field = fields.get(key)
        if field is None:
            return None
        try:
            return field.contents()
        except Exception as exc:
            raise ModelLoadError(f"unreadable metadata in {path}: {key}: {type(exc).__name__}: {exc}") from None

    raw: dict[str, Any] = {}
    arch = get("general.architecture")
    if arch is not None:
        raw["architecture"] = arch
    keys = {name: key for name, key in _FIELD_KEYS.items() if name != "architecture" and name not in _ARCH_KEYS}
    if isinstance(arch, str):
        keys |= {name: f"{arch}.{key}" for name, key in _ARCH_KEYS.items()}
    for name, key in keys.items():
        value = get(key)
        if value is not None:
            raw[name] = value
    return raw


# -- the tokenizer ----------------------------------------------------------------------------
TOKENIZER_MODEL = "llama"
"""The only ``tokenizer.ggml.model`` accepted: the SentencePiece-style vocabulary this project
writes (llama.cpp aborts the process on some others, e.g. ``"none"`` or ``"bert"``)."""
KEY_TOKENIZER_MODEL = "tokenizer.ggml.model"
KEY_TOKENS = "tokenizer.ggml.tokens"
KEY_SCORES = "tokenizer.ggml.scores"
KEY_TOKEN_TYPES = "tokenizer.ggml.token_type"
TOKEN_TYPES = {0: "undefined", 1: "normal", 2: "unknown", 3: "control", 4: "user-defined", 5: "unused", 6: "byte"}
"""llama.cpp's token types (``llama_token_type``), by their stored number."""
_BYTE_TYPE = 6
_BYTE_PIECES = tuple(f"<0x{b:02X}>".encode() for b in range(256))
"""The byte pieces llama.cpp falls back on for text no other piece covers (it aborts on a
byte that has none)."""
_SPECIAL_DEFAULTS = {"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
                     "tokenizer.ggml.unknown_token_id": 0}
"""llama.cpp's special token ids for a ``llama`` tokenizer when the file records none."""
_VOCAB_ROWS = ("token_embd.weight", "output.weight")
"""Tensors with one row (GGUF dimension 1) per token."""


def _tokenizer_error(path: Path, key: str, value: Any, what: str) -> ModelLoadError:
    """A :class:`ModelLoadError` naming the file, the tokenizer key, its value and the fault."""
    return ModelLoadError(f"invalid tokenizer metadata in {path}: {key} = {_short(value)}: {what}")


def check_tokenizer(path: Path, fields: Mapping[str, Any], tensors: Mapping[str, list[int]]) -> None:
    """Refuse tokenizer metadata that llama.cpp would abort on, or that is not this project's.

    ``fields`` are a ``gguf.GGUFReader``'s fields; ``tensors`` map tensor names to their GGUF
    dimensions (``ne0`` first). Checks: ``tokenizer.ggml.model`` is :data:`TOKENIZER_MODEL`;
    the tokens are non-empty, distinct strings that include the 256 byte pieces; scores
    (finite 32-bit floats) and token types (32-bit, in :data:`TOKEN_TYPES`; a byte type only
    on a byte piece) come one per token; every ``tokenizer.ggml.*_token_id`` (and the
    defaults of bos, eos and unk) names a token; ``<arch>.vocab_size`` and the rows of the
    embedding and output tensors, where recorded, equal the token count. Raises
    :class:`ModelLoadError` naming the file, the key and the value.
    """
    import gguf

    model = fields.get(KEY_TOKENIZER_MODEL)
    value = model.contents() if model is not None and list(model.types) == [gguf.GGUFValueType.STRING] else None
    if value != TOKENIZER_MODEL:
        shown = "(missing)" if model is None else value if value is not None else f"a {list(model.types)} value"
        raise _tokenizer_error(path, KEY_TOKENIZER_MODEL, shown, f"must be the string {TOKENIZER_MODEL!r}, the "
                               "SentencePiece-style vocabulary this project writes")
    texts = _token_texts(path, fields)
    scores = _token_array(path, fields, KEY_SCORES, gguf.GGUFValueType.FLOAT32, len(texts)) or []
    bad_scores = [i for i, score in enumerate(scores) if not math.isfinite(score)]
    if bad_scores:
        raise _tokenizer_error(path, f"{KEY_SCORES}[{bad_scores[0]}]", scores[bad_scores[0]], "must be finite")
    types = _token_array(path, fields, KEY_TOKEN_TYPES, gguf.GGUFValueType.INT32, len(texts))
    _check_token_types(path, texts, types or [])
    _check_special_ids(path, fields, len(texts))
    _check_vocab_rows(path, fields, tensors, len(texts))


def _token_texts(path: Path, fields: Mapping[str, Any]) -> list[bytes]:
    """The tokens' texts (UTF-8 bytes as stored): non-empty, distinct, byte pieces included."""
    import gguf

    field = fields.get(KEY_TOKENS)
    if field is None or list(field.types) != [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING]:
        shown = "(missing)" if field is None else f"a {list(field.types)} value"
        raise _tokenizer_error(path, KEY_TOKENS, shown, "must be an array of strings")
    texts = [bytes(field.parts[i]) for i in field.data]
    first: dict[bytes, int] = {}
    for i, text in enumerate(texts):
        if not text:
            raise _tokenizer_error(path, f"{KEY_TOKENS}[{i}]", "", "tokens must not be empty")
        if text in first:
            raise _tokenizer_error(path, f"{KEY_TOKENS}[{i}]", text.decode("utf-8", "replace"),
                                   f"repeats {KEY_TOKENS}[{first[text]}] (tokens must be distinct)")
        first[text] = i
    missing = [p.decode() for p in _BYTE_PIECES if p not in first]
    if missing:
        raise _tokenizer_error(path, KEY_TOKENS, f"{len(texts)} tokens",
                               f"lacks {len(missing)} of the 256 byte pieces, e.g. {missing[:3]}")
    return texts


def _token_array(path: Path, fields: Mapping[str, Any], key: str, item: Any, count: int) -> list[Any] | None:
    """The per-token array ``key`` (``None`` when absent): items of GGUF type ``item``, one per token."""
    import gguf

    field = fields.get(key)
    if field is None:
        return None
    if list(field.types) != [gguf.GGUFValueType.ARRAY, item]:
        raise _tokenizer_error(path, key, f"a {list(field.types)} value", f"must be an array of {item.name}")
    values: list[Any] = field.contents()
    if len(values) != count:
        raise _tokenizer_error(path, key, f"{len(values)} entries",
                               f"must hold one entry per token ({KEY_TOKENS} has {count})")
    return values


def _check_token_types(path: Path, texts: list[bytes], types: list[int]) -> None:
    """Every token type is one of :data:`TOKEN_TYPES`; the byte type marks byte pieces only."""
    for i, kind in enumerate(types):
        if kind not in TOKEN_TYPES:
            raise _tokenizer_error(path, f"{KEY_TOKEN_TYPES}[{i}]", kind,
                                   f"not a token type (known: {sorted(TOKEN_TYPES)})")
        if kind == _BYTE_TYPE and texts[i] not in _BYTE_PIECES:
            raise _tokenizer_error(path, f"{KEY_TOKEN_TYPES}[{i}]", kind,
                                   f"the byte type on token {texts[i].decode('utf-8', 'replace')!r}, "
                                   "which is not a byte piece <0x00>..<0xFF>")


def _check_special_ids(path: Path, fields: Mapping[str, Any], count: int) -> None:
    """Every ``tokenizer.ggml.*_token_id`` (bos, eos and unk by default) is a token id."""
    ids: dict[str, Any] = dict(_SPECIAL_DEFAULTS)
    for key, field in fields.items():
        if key.startswith("tokenizer.ggml.") and key.endswith("_token_id"):
            try:
                ids[key] = field.contents()
            except Exception as exc:
                raise _tokenizer_error(path, key, type(exc).__name__, "unreadable") from None
    for key, value in ids.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
            default = " (llama.cpp's default, the file records none)" if key not in fields else ""
            raise _tokenizer_error(path, key, value, f"must be a token id in 0..{count - 1}{default}")


def _check_vocab_rows(path: Path, fields: Mapping[str, Any], tensors: Mapping[str, list[int]], count: int) -> None:
    """``<arch>.vocab_size`` and the token rows of the embedding and output tensors equal ``count``."""
    arch = fields.get("general.architecture")
    name = arch.contents() if arch is not None else None
    size = fields.get(f"{name}.vocab_size") if isinstance(name, str) else None
    if size is not None and size.contents() != count:
        raise _tokenizer_error(path, f"{name}.vocab_size", size.contents(),
                               f"differs from the {count} tokens of {KEY_TOKENS}")
    for tensor in _VOCAB_ROWS:
        dims = tensors.get(tensor)
        if dims is not None and (len(dims) < 2 or dims[1] != count):
            raise _tokenizer_error(path, KEY_TOKENS, f"{count} tokens",
                                   f"tensor {tensor} has dimensions {dims}, not one row per token")


def quantize(src: str | Path, dst: str | Path, *, kind: str = "q8_0", threads: int = 0) -> Path:
    """Quantize a GGUF model with llama.cpp's own quantizer (``q8_0`` or ``q4_0``) using
    ``threads`` threads (0: llama.cpp's choice; more than the available cores is bounded to
    them). Raises :class:`ConfigError` for an unknown kind or thread count out of range and
    :class:`ModelLoadError` for a file llama.cpp cannot quantize."""
    import llama_cpp

    ftypes = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}
    if kind not in ftypes:
        raise ConfigError(f"unknown quantization {kind!r}; choose one of {sorted(ftypes)}")
    from planner.world.engine import MAX_THREADS, available_cores, init_backend

    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= MAX_THREADS:
        raise ConfigError(f"threads must be a whole number in 0..{MAX_THREADS} (0: all cores), got {threads!r}")
    init_backend()  # routes llama.cpp's log lines away from stderr
    read_model_info(src)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[kind]
    params.nthread = min(threads, available_cores())
    with atomic_output(dst) as tmp:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise ModelLoadError(f"llama.cpp could not quantize {src} (code {rc})")
    return Path(dst)


def read_model_vocabulary(path: str | Path) -> tuple[ModelInfo, list[str], int]:
    """:func:`read_model_info` and the file's vocabulary, from one reading, without loading the
    weights: each token's text as stored (``▁`` for a space) in id order, and the id of the
    begin-of-sequence token. Raises what :func:`read_model_info` raises."""
    p = Path(path)
    info, fields = _read(p)
    texts = _token_texts(p, fields)
    bos = fields.get("tokenizer.ggml.bos_token_id")
    bos_id = int(bos.contents()) if bos is not None else _SPECIAL_DEFAULTS["tokenizer.ggml.bos_token_id"]
    return info, [t.decode("utf-8", "replace") for t in texts], bos_id


def read_model_shape(path: str | Path) -> tuple[ModelInfo, LlamaShape]:
    """A Llama GGUF world model's metadata and shape, without its weights.

    Raises what :func:`read_model_info` raises, and :class:`ModelLoadError` naming the file for
    a model that is not a Llama model or lacks a shape key."""
    p = Path(path)
    info, fields = _read(p)
    if info.architecture != "llama":
        raise ModelLoadError(f"cannot read the weights of {p}: architecture {info.architecture!r}, expected 'llama'")

    def number(key: str) -> float:
        field = fields.get(f"llama.{key}")
        if field is None:
            raise ModelLoadError(f"cannot read the weights of {p}: no llama.{key} in its metadata")
        return field.contents()  # type: ignore[no-any-return]

    dim, heads = int(number("embedding_length")), int(number("attention.head_count"))
    shape = LlamaShape(dim=dim, n_layers=int(number("block_count")), n_heads=heads,
                       ffn_dim=int(number("feed_forward_length")), context=int(number("context_length")),
                       rope_base=float(number("rope.freq_base")),
                       norm_eps=round(float(number("attention.layer_norm_rms_epsilon")), 12))
    return info, shape


def read_model_weights(path: str | Path) -> tuple[ModelInfo, LlamaShape, dict[str, np.ndarray]]:
    """A Llama GGUF world model's metadata, shape (:func:`read_model_shape`) and weights (float32
    arrays in the shapes :func:`write_world_model` takes: ``(rows, columns)`` as PyTorch lays out
    a linear layer), Q8_0 and F16 tensors dequantized — to continue training from a model.

    Raises what :func:`read_model_shape` raises, and :class:`ModelLoadError` naming the file for
    a tensor type this reader does not know."""
    import gguf

    p = Path(path)
    info, shape = read_model_shape(p)
    known = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.Q8_0}
    weights: dict[str, np.ndarray] = {}
    for tensor in gguf.GGUFReader(str(p)).tensors:
        if tensor.tensor_type not in known:
            raise ModelLoadError(f"cannot read the weights of {p}: tensor {tensor.name} is "
                                 f"{tensor.tensor_type.name} (this reader knows F32, F16 and Q8_0)")
        rows = [int(d) for d in reversed(tensor.shape)]
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        weights[tensor.name] = np.asarray(values, dtype=np.float32).reshape(rows)
    return info, shape, weights
