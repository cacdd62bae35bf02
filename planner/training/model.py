"""A tiny Llama-architecture language model in PyTorch (RMSNorm, RoPE, SwiGLU, untied output).

Laid out so its weights map one to one onto llama.cpp's ``llama`` GGUF tensors: RoPE rotates
adjacent pairs of each head's dimensions, which is llama.cpp's "normal" rotary mode.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from planner.training.errors import TrainingDataError
from planner.world.gguf_io import LlamaShape


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


class TinyLlama(nn.Module):
    """Decoder-only transformer. ``forward(tokens)`` → logits (batch, time, vocab)."""

    def __init__(self, shape: LlamaShape, n_vocab: int) -> None:
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(n_vocab, shape.dim)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layers))
        self.norm = RMSNorm(shape.dim, shape.norm_eps)
        self.output = nn.Linear(shape.dim, n_vocab, bias=False)
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

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        if t > self.shape.context:
            raise TrainingDataError(f"a sequence of {t} tokens exceeds the model's context of {self.shape.context}")
        x = self.embed(tokens)
        cos, sin = self.cos[:t], self.sin[:t]  # type: ignore[index]
        for block in self.blocks:
            x = block(x, cos, sin, None)
        return self.output(self.norm(x))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def gguf_weights(self) -> dict[str, np.ndarray]:
        """The weights under llama.cpp's GGUF tensor names (float32 numpy arrays)."""
        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().to(torch.float32).cpu().numpy()

        out = {"token_embd.weight": arr(self.embed.weight),
               "output_norm.weight": arr(self.norm.weight),
               "output.weight": arr(self.output.weight)}
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
