"""How current a training step runs on a device, by the arithmetic of its matrix products.

Builds batches of real transitions beforehand (so the batch workers are not measured), then for
each variant times ``--steps`` optimizer steps of the same model on the same batches (after
``--warmup`` untimed ones, the device drained before and after) and prints steps and sequences a
second, with each variant's ratio to the first row, all measured in this one run:

- ``fp32, before``: the loop as it was before ``--precision`` existed (float32, AdamW unfused,
  the loss read back at every step);
- ``fp32``, ``tf32``, ``bf16``: the loop ``planner train`` runs now (on a GPU: AdamW fused, the
  loss read every 10 steps) in each arithmetic (``--precision``).

On a CPU the tf32 row is left out (there is no TF32 there).

    python benchmarks/train_speed.py --data runs/hh-data --init planner/models/household-q8_0.gguf \\
        [--records 20000] [--batch-sizes 256,1024] [--steps 40] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from planner.training.data import encode_records, load_records
from planner.training.train import (
    LOSS_READ_EVERY,
    TrainConfig,
    _init_from_gguf,
    _matmul_precision,
    _wait_for,
    batch_arguments,
    make_batch,
    new_model,
    resolve_device,
    training_step,
)
from planner.world.codec import domain_vocabulary
from planner.world.gguf_io import read_model_shape

VARIANTS = (("fp32, before", "fp32", False),
            ("fp32", "fp32", True),
            ("tf32", "tf32", True),
            ("bf16", "bf16", True))


def _time_steps(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
                precision: str, current: bool, warmup: int) -> float:
    """Seconds for the batches after the first ``warmup`` (steps of the chosen loop)."""
    on_gpu = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=0.01,
                            **({"fused": True} if current and on_gpu else {}))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    started = 0.0
    with _matmul_precision(precision):
        for k, (tokens, targets) in enumerate(batches):
            if k == warmup:
                _wait_for(device)
                started = time.perf_counter()
            loss = training_step(model, opt, tokens, targets, device, autocast)
            if (k + 1) % (LOSS_READ_EVERY if current and on_gpu else 1) == 0:
                loss.item()
        _wait_for(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train.jsonl")
    parser.add_argument("--init", type=Path, required=True, help="GGUF world model: its schema, shape and weights")
    parser.add_argument("--records", type=int, default=20000, help="transitions read (the first N)")
    parser.add_argument("--batch-sizes", default="256,1024")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    info, shape = read_model_shape(args.init)
    vocab = domain_vocabulary(info.predicates, info.actions, info.max_objects)
    examples = encode_records(load_records(args.data / "train.jsonl", limit=args.records), vocab, info.predicates,
                              info.actions, info.max_objects)
    config = TrainConfig(shape=shape, max_objects=info.max_objects, embeddings="free",
                         codec_version=info.codec_version or 1)  # the --init model's prompt layout
    arguments = batch_arguments(vocab, config, info.predicates)
    print(f"{len(examples)} transitions, {args.init.name} ({shape.dim} wide, {shape.n_layers} blocks), "
          f"{device}{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}, "
          f"PyTorch {torch.__version__}")
    print(f"{'variant':<30} {'batch':>6} {'steps/s':>9} {'seq/s':>9} {'× first':>8}")
    for size in (int(b) for b in args.batch_sizes.split(",")):
        rng = np.random.default_rng(0)
        batches = [make_batch(examples, vocab, rng, size, arguments=arguments) for _ in range(args.warmup + args.steps)]
        first = None
        for name, precision, current in VARIANTS:
            if precision == "tf32" and device.type != "cuda":
                continue
            torch.manual_seed(0)
            model = new_model(config, vocab, {**info.predicates, **info.actions})
            _init_from_gguf(model, args.init, vocab, shape)
            seconds = _time_steps(model.to(device), batches, device, precision, current, args.warmup)
            rate = args.steps / seconds
            first = first or rate
            print(f"{name:<30} {size:>6} {rate:>9.1f} {rate * size:>9.0f} {rate / first:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
