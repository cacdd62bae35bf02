"""A tiny Llama-architecture language model in PyTorch (RMSNorm, RoPE, SwiGLU, untied output).

Laid out so its weights map one to one onto llama.cpp's ``llama`` GGUF tensors: RoPE rotates
adjacent pairs of each head's dimensions, which is llama.cpp's "normal" rotary mode.

*Factored* word tables (the default for training): the fact-delta codec writes one token per
ground fact, ``in(x3,x5)``, so a domain's vocabulary holds thousands of words that are few
parts combined. With factoring, the input embedding and output row of a ground word are the sum
of its name's row and one row per argument (placeholder ``xK`` in position ``i``): what the
model learns about ``in(x3,x5)`` serves ``in(x4,x7)`` too, and a word never seen in training
still has a meaningful row. The sums are materialised into ordinary matrices on export, so the
GGUF file and llama.cpp see a plain Llama model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from planner.training.errors import TrainingDataError
from planner.world.codec import parse_word
from planner.world.gguf_io import LlamaShape
from planner.world.vocab import MAX_ARITY, Vocabulary

EMBEDDINGS = ("auto", "factored", "free")
"""Word tables: ``factored`` (ground words as sums of name and argument rows), ``free`` (one
independent row per piece), or ``auto``: factored above :data:`FACTOR_ABOVE` words."""

FACTOR_ABOVE = 1000
"""``auto`` factors the word tables of a vocabulary with more words than this. Measured: on
household data (1,900 words) factored tables reach 92.8% answer-token accuracy in 400 steps
where free ones reach 83.8%; on 4×4 FrozenLake (about 140 words, 1,000 steps) free tables give
100% next-state exact match on held-out maps and factored ones 95.2%."""


def resolve_embeddings(embeddings: str, vocab: Vocabulary) -> str:
    """``embeddings`` with ``auto`` decided for ``vocab`` (:data:`FACTOR_ABOVE`)."""
    if embeddings != "auto":
        return embeddings
    return "factored" if len(vocab.words) > FACTOR_ABOVE else "free"


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim: int, length: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (length, head_dim // 2)."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]); x: (batch, heads, time, head_dim)."""
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return out.flatten(-2)


class Block(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        d = shape.dim
        self.n_heads = shape.n_heads
        self.attn_norm = RMSNorm(d, shape.norm_eps)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ffn_norm = RMSNorm(d, shape.norm_eps)
        self.gate = nn.Linear(d, shape.ffn_dim, bias=False)
        self.up = nn.Linear(d, shape.ffn_dim, bias=False)
        self.down = nn.Linear(shape.ffn_dim, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        h = self.attn_norm(x)
        q, k, v = (w(h).view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for w in (self.wq, self.wk, self.wv))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        x = x + self.wo(att.transpose(1, 2).reshape(b, t, d))
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


@dataclass(frozen=True)
class Factoring:
    """How each piece's row is assembled from parts (all arrays have one entry per piece).

    Attributes:
        free: the piece's own row (``-1``: none). Marker words and the begin/end tokens have one
            each; every piece the codec never writes whole (bytes, word prefixes) shares row 0.
        name: the name row of a ground word (``-1``: not a ground word).
        args: ``(pieces, MAX_ARITY)``: the placeholder index (``x1`` → 0) of each argument
            position (``-1``: no argument there).
        n_free, n_names, n_objects: rows of each table.
    """

    free: np.ndarray
    name: np.ndarray
    args: np.ndarray
    n_free: int
    n_names: int
    n_objects: int

    @classmethod
    def of(cls, vocab: Vocabulary, schemas: Mapping[str, int], max_objects: int) -> Factoring:
        """The factoring of ``vocab``, whose ground words are the groundings of ``schemas``
        (name → arity, predicates and actions together) over ``max_objects`` placeholders."""
        n = len(vocab)
        free = np.zeros(n, dtype=np.int64)
        name = np.full(n, -1, dtype=np.int64)
        args = np.full((n, MAX_ARITY), -1, dtype=np.int64)
        names = {k: i for i, k in enumerate(sorted(schemas))}
        own = 1
        free[vocab.bos_id], free[vocab.eos_id] = own, own + 1
        own += 2
        for word in vocab.words:
            piece = vocab.word_ids[word]
            base, parts = parse_word(word)
            ground = base in names and len(parts) == schemas[base] and all(_placeholder(a) for a in parts)
            if not ground:
                free[piece] = own
                own += 1
                continue
            free[piece] = -1
            name[piece] = names[base]
            for pos, arg in enumerate(parts):
                args[piece, pos] = int(arg[1:]) - 1
        return cls(free=free, name=name, args=args, n_free=own, n_names=max(1, len(names)),
                   n_objects=max(1, max_objects))


def _placeholder(text: str) -> bool:
    return len(text) > 1 and text[0] == "x" and text[1:].isdigit() and int(text[1:]) >= 1


class FactoredTable(nn.Module):
    """A ``(pieces, dim)`` matrix whose rows are sums of shared parts (see :class:`Factoring`)."""

    distinct_index: torch.Tensor
    log_count: torch.Tensor
    ground_name: torch.Tensor
    ground_args: torch.Tensor
    ground_arg_mask: torch.Tensor

    def __init__(self, factoring: Factoring, dim: int) -> None:
        super().__init__()
        f = factoring
        self.free = nn.Parameter(torch.randn(f.n_free, dim) * 0.02)
        self.names = nn.Parameter(torch.randn(f.n_names, dim) * 0.02)
        self.args = nn.Parameter(torch.randn(MAX_ARITY, f.n_objects, dim) * 0.02)
        # The distinct rows: every free row once (row 0 stands for all the pieces never written
        # whole), then one row per ground word; how many pieces each stands for, as a log.
        ground = np.flatnonzero(f.free < 0)
        distinct = np.where(f.free >= 0, f.free, 0)
        distinct[ground] = f.n_free + np.arange(len(ground))
        count = np.bincount(distinct, minlength=f.n_free + len(ground)).astype(np.float32)
        self.register_buffer("distinct_index", torch.from_numpy(distinct), persistent=False)
        self.register_buffer("log_count", torch.from_numpy(np.log(np.maximum(count, 1.0))), persistent=False)
        args = f.args[ground]
        self.register_buffer("ground_name", torch.from_numpy(f.name[ground]), persistent=False)
        self.register_buffer("ground_args", torch.from_numpy(np.maximum(args, 0)), persistent=False)
        self.register_buffer("ground_arg_mask", torch.from_numpy((args >= 0).astype(np.float32))[:, :, None],
                             persistent=False)

    def weight(self) -> torch.Tensor:
        """The full matrix, one row per piece."""
        return self.distinct_weight()[self.distinct_index]

    def distinct_weight(self) -> torch.Tensor:
        """Each distinct row once (see :attr:`distinct_index`): the free rows, then the ground
        words'. Pieces that share a row share their logit, so a softmax over the pieces is one
        over these rows with :attr:`log_count` added — at a fraction of the cost when most
        pieces are word prefixes no answer ever writes."""
        w = self.names[self.ground_name]
        for pos in range(MAX_ARITY):
            w = w + self.args[pos][self.ground_args[:, pos]] * self.ground_arg_mask[:, pos]
        return torch.cat([self.free, w])


class TinyLlama(nn.Module):
    """Decoder-only transformer. ``forward(tokens)`` → logits (batch, time, vocab).

    ``factoring`` (optional) makes the input embedding and the output matrix
    factored tables (:class:`FactoredTable`) instead of free ones."""

    def __init__(self, shape: LlamaShape, n_vocab: int, factoring: Factoring | None = None) -> None:
        super().__init__()
        self.shape = shape
        self.factored = factoring is not None
        self.embed: nn.Module
        self.output: nn.Module
        if factoring is not None:
            if len(factoring.free) != n_vocab:
                raise TrainingDataError(f"the factoring covers {len(factoring.free)} pieces, the vocabulary "
                                        f"has {n_vocab}")
            self.embed = FactoredTable(factoring, shape.dim)
            self.output = FactoredTable(factoring, shape.dim)
        else:
            self.embed = nn.Embedding(n_vocab, shape.dim)
            self.output = nn.Linear(shape.dim, n_vocab, bias=False)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layers))
        self.norm = RMSNorm(shape.dim, shape.norm_eps)
        cos, sin = rope_tables(shape.dim // shape.n_heads, shape.context, shape.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init)
        for module in self.blocks:
            block: Block = module  # type: ignore[assignment]
            nn.init.normal_(block.wo.weight, std=0.02 / math.sqrt(2 * shape.n_layers))
            nn.init.normal_(block.down.weight, std=0.02 / math.sqrt(2 * shape.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def embedding_matrix(self) -> torch.Tensor:
        """The input embedding, ``(pieces, dim)``."""
        return self.embed.weight() if self.factored else self.embed.weight  # type: ignore[operator, return-value]

    def output_matrix(self) -> torch.Tensor:
        """The output projection, ``(pieces, dim)``."""
        return self.output.weight() if self.factored else self.output.weight  # type: ignore[operator, return-value]

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """The final normalised hidden states, ``(batch, time, dim)``."""
        t = tokens.shape[1]
        if t > self.shape.context:
            raise TrainingDataError(f"a sequence of {t} tokens exceeds the model's context of {self.shape.context}")
        x = F.embedding(tokens, self.embedding_matrix())
        cos, sin = self.cos[:t], self.sin[:t]  # type: ignore[index]
        for block in self.blocks:
            x = block(x, cos, sin, None)
        return self.norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.hidden(tokens) @ self.output_matrix().T

    def answer_logits(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, vocab)`` at the ``n`` positions whose target is not ``-100`` only: the
        output projection is the costliest matrix of a small model with a large vocabulary, and
        training needs it at the answers alone."""
        return self.hidden(tokens)[targets != -100] @ self.output_matrix().T

    def _answer_scores(self, tokens: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, targets) at the answer positions, over the distinct output rows when the
        tables are factored (logits without the rows' multiplicities), else over the pieces."""
        mask = targets != -100
        hidden = self.hidden(tokens)[mask]
        if not self.factored:
            return hidden @ self.output_matrix().T, targets[mask]
        table: FactoredTable = self.output  # type: ignore[assignment]
        return hidden @ table.distinct_weight().T, table.distinct_index[targets[mask]]

    def answer_loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the answer positions (targets other than ``-100``), under the
        softmax over every piece."""
        logits, wanted = self._answer_scores(tokens, targets)
        if self.factored:
            logits = logits + self.output.log_count  # type: ignore[operator]
        return F.cross_entropy(logits, wanted)

    def answer_accuracy(self, tokens: torch.Tensor, targets: torch.Tensor) -> float:
        """The fraction of answer positions whose most likely piece is the target."""
        logits, wanted = self._answer_scores(tokens, targets)
        return float((logits.argmax(-1) == wanted).float().mean())

    def load_gguf_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set every weight from llama.cpp's GGUF tensors (the inverse of :meth:`gguf_weights`;
        free word tables only: a factored table's parts cannot be read back from its sums).

        Raises :class:`TrainingDataError` naming a missing tensor or one of another shape."""
        if self.factored:
            raise TrainingDataError("GGUF weights load into free word tables only (embeddings='free')")
        targets: dict[str, torch.Tensor] = {"token_embd.weight": self.embed.weight,  # type: ignore[dict-item]
                                            "output_norm.weight": self.norm.weight,
                                            "output.weight": self.output.weight}  # type: ignore[dict-item]
        for i, module in enumerate(self.blocks):
            b: Block = module  # type: ignore[assignment]
            targets |= {
                f"blk.{i}.attn_norm.weight": b.attn_norm.weight, f"blk.{i}.attn_q.weight": b.wq.weight,
                f"blk.{i}.attn_k.weight": b.wk.weight, f"blk.{i}.attn_v.weight": b.wv.weight,
                f"blk.{i}.attn_output.weight": b.wo.weight, f"blk.{i}.ffn_norm.weight": b.ffn_norm.weight,
                f"blk.{i}.ffn_gate.weight": b.gate.weight, f"blk.{i}.ffn_up.weight": b.up.weight,
                f"blk.{i}.ffn_down.weight": b.down.weight,
            }
        with torch.no_grad():
            for name, target in targets.items():
                if name not in weights:
                    raise TrainingDataError(f"the GGUF weights lack tensor {name}")
                value = torch.from_numpy(np.array(weights[name], dtype=np.float32))  # a writable copy
                if tuple(value.shape) != tuple(target.shape):
                    raise TrainingDataError(f"GGUF tensor {name} has shape {tuple(value.shape)}, the model needs "
                                            f"{tuple(target.shape)}")
                target.copy_(value)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def gguf_weights(self) -> dict[str, np.ndarray]:
        """The weights under llama.cpp's GGUF tensor names (float32 numpy arrays)."""
        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().to(torch.float32).cpu().numpy()

        out = {"token_embd.weight": arr(self.embedding_matrix()),
               "output_norm.weight": arr(self.norm.weight),
               "output.weight": arr(self.output_matrix())}
        for i, module in enumerate(self.blocks):
            b: Block = module  # type: ignore[assignment]
            out |= {
                f"blk.{i}.attn_norm.weight": arr(b.attn_norm.weight),
                f"blk.{i}.attn_q.weight": arr(b.wq.weight),
                f"blk.{i}.attn_k.weight": arr(b.wk.weight),
                f"blk.{i}.attn_v.weight": arr(b.wv.weight),
                f"blk.{i}.attn_output.weight": arr(b.wo.weight),
                f"blk.{i}.ffn_norm.weight": arr(b.ffn_norm.weight),
                f"blk.{i}.ffn_gate.weight": arr(b.gate.weight),
                f"blk.{i}.ffn_up.weight": arr(b.up.weight),
                f"blk.{i}.ffn_down.weight": arr(b.down.weight),
            }
        return out
