"""Training a fact-delta world model from transition logs, and exporting it to GGUF.

Reproducible from a seed (the batch of step ``k`` depends only on the seed and ``k``), with a
progress bar and resumable checkpoints (written atomically every ``checkpoint_every`` steps).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from planner.training.data import Encoded, encode_records, load_records, sample_sequence
from planner.training.model import TinyLlama
from planner.world.codec import CODEC_NAME, CODEC_VERSION, domain_vocabulary
from planner.world.gguf_io import LlamaShape, write_world_model
from planner.world.vocab import Vocabulary


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. ``steps`` × ``batch_size`` sequences are seen in all."""

    steps: int = 5000
    batch_size: int = 64
    lr: float = 3e-3
    min_lr: float = 1e-4
    warmup: int = 200
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 2
    checkpoint_every: int = 250
    eval_every: int = 500
    shape: LlamaShape = field(default_factory=LlamaShape)
    max_objects: int = 8


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


def make_batch(examples: list[Encoded], vocab: Vocabulary, rng: np.random.Generator, batch_size: int,
               relabel: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (batch, time) and loss targets (-100 outside the answers)."""
    picks = rng.integers(len(examples), size=batch_size)
    seqs = [sample_sequence(examples[i], vocab, rng, relabel=relabel) for i in picks]
    width = max(len(s) for s, _ in seqs)
    tokens = np.full((batch_size, width), vocab.eos_id, dtype=np.int64)
    targets = np.full((batch_size, width), -100, dtype=np.int64)
    for row, (seq, start) in enumerate(seqs):
        tokens[row, :len(seq)] = seq
        # position t predicts token t+1: the answer tokens seq[start:] are targets at t = start-1…
        targets[row, start - 1:len(seq) - 1] = seq[start:]
    return torch.from_numpy(tokens), torch.from_numpy(targets)


def _save_checkpoint(path: Path, model: TinyLlama, opt: torch.optim.Optimizer, step: int,
                     meta: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "meta": dict(meta)}, tmp)
    os.replace(tmp, path)


def train(
    *,
    train_path: str | Path,
    val_path: str | Path | None,
    out_dir: str | Path,
    predicates: Mapping[str, int],
    actions: Mapping[str, int],
    domain: str,
    config: TrainConfig = TrainConfig(),
    resume: bool = True,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train and write ``out_dir/model-f32.gguf``; returns a summary (also in the GGUF)."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = domain_vocabulary(predicates, actions, config.max_objects)
    records = load_records(train_path)
    examples = encode_records(records, vocab, predicates, actions, config.max_objects)
    val_examples = (encode_records(load_records(val_path, limit=4000), vocab, predicates, actions,
                                   config.max_objects) if val_path else [])
    model = TinyLlama(config.shape, len(vocab))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95),
                            weight_decay=config.weight_decay)
    ckpt_path = out / "checkpoint.pt"
    start_step = 0
    elapsed_before = 0.0
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        start_step = int(ckpt["step"])
        elapsed_before = float(ckpt["meta"].get("train_seconds", 0.0))
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    model.train()
    for step in range(start_step, config.steps):
        rng = np.random.default_rng([config.seed, step])
        tokens, targets = make_batch(examples, vocab, rng, config.batch_size)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        info = {"loss": loss.item(), "lr": lr_at(step, config)}
        done_steps = step + 1
        if val_examples and (done_steps % config.eval_every == 0 or done_steps == config.steps):
            info["val_token_acc"] = evaluate_tokens(model, val_examples, vocab, seed=config.seed)
            history.append({"step": done_steps, **info})
        if done_steps % config.checkpoint_every == 0 or done_steps == config.steps:
            _save_checkpoint(ckpt_path, model, opt, done_steps, {
                "train_seconds": elapsed_before + time.perf_counter() - started})
        if progress is not None:
            progress(done_steps, info)
    train_seconds = elapsed_before + time.perf_counter() - started
    summary = {
        "domain": domain,
        "train_records": len(records),
        "train_problems": len({r["problem"] for r in records}),
        "steps": config.steps,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "train_seconds": round(train_seconds, 1),
        "params": model.n_params(),
        "shape": asdict(config.shape),
        "history": history[-5:],
    }
    write_world_model(out / "model-f32.gguf", vocab=vocab, shape=config.shape, weights=model.gguf_weights(),
                      codec=CODEC_NAME, codec_version=CODEC_VERSION, predicates=predicates, actions=actions,
                      max_objects=config.max_objects, domain=domain, training=summary,
                      name=f"{domain} fact-delta world model")
    (out / "train-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@torch.no_grad()
def evaluate_tokens(model: TinyLlama, examples: list[Encoded], vocab: Vocabulary, *, seed: int,
                    n: int = 512) -> float:
    """Teacher-forced accuracy on answer tokens of ``n`` validation sequences (no relabelling)."""
    was = model.training
    model.eval()
    rng = np.random.default_rng([seed, 10**9])
    tokens, targets = make_batch(examples, vocab, rng, min(n, len(examples)), relabel=False)
    pred = model(tokens).argmax(-1)
    mask = targets != -100
    acc = float((pred[mask] == targets[mask]).float().mean())
    model.train(was)
    return acc
