"""One pipeline from an environment to a quantized world model and its model card.

:func:`learn` runs, for any environment with symbolic states (through ``reset`` and ``step``
only):

1. **collect** — :func:`~planner.data.explore.collect_from_env` into ``out_dir/data``, one JSONL
   log per split, the splits' environment seeds disjoint;
2. **vocabulary** — :func:`~planner.data.schema.infer_schema`: predicates, actions and their
   arities; the learned signature is recorded in the GGUF only when every action schema got a
   lifted STRIPS operator (for a PDDL environment, its domain's own signature);
3. **size** — placeholders = the most objects of one problem, context = the longest sequence
   with a margin, width from the vocabulary and depth from the data (:func:`choose_shape`);
   steps from the time budget, at the rate measured on a short warm-up (:func:`measure_rate`);
4. **train** — :func:`~planner.training.train.train`, then
   :func:`~planner.training.export.finish_model` (Q8_0, compared with the float model);
5. **fidelity** — :func:`~planner.data.fidelity.evaluate` of the Q8_0 model on the test split;
6. **card** — ``out_dir/README.md`` written atomically: environment, data, model, training
   time, fidelity table and the command that reproduces it.

Training needs PyTorch (the ``train`` extra); without it :func:`learn` raises a one-line
:class:`~planner.errors.ConfigError` before doing anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.data.collect import TransitionRecord, read_records
from planner.data.explore import ExploreStats, collect_from_env
from planner.data.fidelity import FidelityReport, evaluate
from planner.data.schema import LearnedSchema, infer_schema
from planner.errors import ConfigError
from planner.io import atomic_write_text
from planner.protocols import Environment
from planner.world.gguf_io import LlamaShape

DEFAULT_SEEDS: Mapping[str, range] = {"train": range(0, 100), "val": range(1000, 1020), "test": range(2000, 2050)}
"""Environment seeds per split when none are given (disjoint)."""

TRAIN_SHARE = 0.75
"""Share of the time budget left for training after collection (the rest: warm-up, export,
quantization, fidelity and the card)."""
MIN_STEPS = 20
"""Fewest training steps chosen from a budget."""
WARMUP_STEPS = 4
"""Timed optimizer steps of the rate measurement (after one untimed step)."""
BATCH_SIZE = 64
"""Sequences per training step."""
FIDELITY_LIMIT = 3000
"""Most test transitions scored for the card."""
CONTEXT_MARGIN = 1.25
"""Context = the longest sequence met × this margin (rounded up to a multiple of 32 tokens)."""

Progress = Callable[[str], None]
"""Receives one line per stage (and per training quarter)."""


class LearnError(ConfigError):
    """A :func:`learn` request that cannot be run (no PyTorch, a bad budget or seed ranges)."""


@dataclass(frozen=True)
class LearnReport:
    """What :func:`learn` did.

    Attributes:
        out_dir: the output folder.
        model: the quantized model (``out_dir/model-q8_0.gguf``).
        card: the model card (``out_dir/README.md``).
        data: split → what collection wrote.
        schema: the vocabulary and operators inferred from the training split.
        shape: the transformer's shape.
        max_objects: placeholder objects the model knows.
        steps: training steps run.
        rate: measured training steps per second on the warm-up.
        params: trainable parameters.
        train_seconds: training time (seconds).
        total_seconds: the whole pipeline's wall time (seconds).
        q8_agreement: share of sampled predictions where Q8_0 agrees with the float model.
        fidelity: the Q8_0 model's fidelity on the test split.
        signature_recorded: whether a domain signature was written into the GGUF.
        command: the command that reproduces the run.
    """

    out_dir: Path
    model: Path
    card: Path
    data: Mapping[str, ExploreStats]
    schema: LearnedSchema
    shape: LlamaShape
    max_objects: int
    steps: int
    rate: float
    params: int
    train_seconds: float
    total_seconds: float
    q8_agreement: float
    fidelity: FidelityReport
    signature_recorded: bool
    command: str


def _require_torch() -> None:
    """:class:`LearnError` (one line) when PyTorch cannot be imported."""
    try:
        import planner.training.train  # noqa: F401
    except ImportError as exc:
        raise LearnError(f"planner learn needs PyTorch: pip install -e '.[train]' ({exc})") from None


def _check_request(seeds: Mapping[str, range], minutes: float, steps: int | None) -> None:
    """:class:`LearnError` naming a bad budget or a missing split."""
    if not (minutes == minutes and 0 < minutes <= 24 * 60):
        raise LearnError(f"minutes must lie in (0, 1440], got {minutes!r}")
    if steps is not None and steps < 1:
        raise LearnError(f"steps must be at least 1, got {steps}")
    missing = [s for s in ("train", "test") if s not in seeds or not len(seeds[s])]
    if missing:
        raise LearnError(f"seeds must give the splits train and test (val optional), missing {missing}")


def choose_shape(vocab_size: int, context: int, train_records: int) -> LlamaShape:
    """The transformer for a vocabulary of ``vocab_size`` words, sequences of up to
    ``context`` tokens and ``train_records`` transitions: width 64 up to 300 words, 128 up to
    3000, else 192; 2 blocks below 20,000 records, else 4; heads of 32 wide, SwiGLU 4× wide."""
    dim = 64 if vocab_size <= 300 else 128 if vocab_size <= 3000 else 192
    layers = 2 if train_records < 20_000 else 4
    return LlamaShape(dim=dim, n_layers=layers, n_heads=max(1, dim // 32), ffn_dim=4 * dim, context=context)


def choose_context(records: Sequence[TransitionRecord]) -> int:
    """Tokens of context: the longest training sequence or planning prompt the records make
    (goal, state, action and an answer of up to ``2 × facts + 6`` tokens, relabelled goals as
    large as a state), × :data:`CONTEXT_MARGIN`, rounded up to a multiple of 32 (at least 64)."""
    longest = 0
    for r in records:
        facts = max(len(r.state), len(r.next_state))
        goal = max(len(r.goal), facts + 1)
        longest = max(longest, 12 + goal + facts + 2 * facts + 6)
    need = int(longest * CONTEXT_MARGIN) + 1
    return max(64, -(-need // 32) * 32)


def measure_rate(examples: Sequence[Any], vocab: Any, shape: LlamaShape, *, batch_size: int, threads: int,
                 steps: int = WARMUP_STEPS) -> float:
    """Training steps per second of a fresh model of ``shape`` on ``examples`` (encoded
    records), timed over ``steps`` optimizer steps after one untimed step."""
    import numpy as np
    import torch
    from torch.nn import functional as F

    from planner.training.model import TinyLlama
    from planner.training.train import make_batch

    torch.set_num_threads(threads)
    model = TinyLlama(shape, len(vocab))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    started = 0.0
    pool = list(examples)  # once: copying tens of thousands of records per step made the rate look slow
    for k in range(steps + 1):
        if k == 1:
            started = time.perf_counter()
        tokens, targets = make_batch(pool, vocab, np.random.default_rng([7, k]), batch_size)
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps / max(1e-6, time.perf_counter() - started)


def _signature(schema: LearnedSchema, probe: Environment) -> dict[str, Any] | None:
    """The signature to record: a PDDL environment's own domain's; else the learned one when
    every action schema met got a STRIPS operator; else ``None``."""
    from planner.env.pddl import PDDLEnvironment
    from planner.world.signature import domain_signature

    if isinstance(probe, PDDLEnvironment):
        return domain_signature(probe.task.domain).to_json()
    if schema.not_strips or schema.unobserved:
        return None
    return schema.signature().to_json()


def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        progress(line)


def learn(
    make_env: Callable[[int], Environment],
    *,
    out_dir: str | Path,
    seeds: Mapping[str, range] = DEFAULT_SEEDS,
    minutes: float = 10.0,
    seed: int = 0,
    domain_name: str = "env",
    progress: Progress | None = None,
    steps: int | None = None,
    episodes_per_seed: int = 3,
    max_steps: int = 60,
    threads: int = 2,
    command: str = "",
) -> LearnReport:
    """Learn a world model of ``make_env``'s environments; see the module's description.

    Args:
        make_env: builds the environment of a seed.
        out_dir: output folder (``data/``, checkpoints, ``model-f32.gguf``,
            ``model-q8_0.gguf``, ``README.md``); existing logs in ``data/`` are replaced.
        seeds: split → environment seeds (``train`` and ``test`` required, disjoint).
        minutes: the whole pipeline's time budget (minutes); sets the training steps.
        seed: seeds exploration, weights and batches.
        domain_name: the domain's name in the records and the GGUF.
        progress: receives one line per stage.
        steps: training steps (``None``: chosen from ``minutes``).
        episodes_per_seed, max_steps: exploration episodes per seed and tries per episode.
        threads: CPU threads for training.
        command: the command line that reproduces the run, quoted on the card.

    Raises :class:`LearnError` (before any work) without PyTorch or for a bad request, and what
    collection, schema inference and training raise.
    """
    started = time.perf_counter()
    _require_torch()
    _check_request(seeds, minutes, steps)
    out = Path(out_dir)
    data_dir = out / "data"
    for split in seeds:
        (data_dir / f"{split}.jsonl").unlink(missing_ok=True)
    _say(progress, f"collecting: {', '.join(f'{k} seeds {v.start}-{v.stop - 1}' for k, v in seeds.items())}")
    stats = collect_from_env(make_env, out_dir=data_dir, seeds=dict(seeds),  # type: ignore[arg-type]
                             episodes_per_seed=episodes_per_seed, max_steps=max_steps, domain=domain_name, seed=seed)
    for split, st in stats.items():
        _say(progress, f"  {split}: {st.transitions} transitions ({st.applicable} applicable) from {st.seeds} seeds")
    train_records = read_records(data_dir / "train.jsonl")
    schema = infer_schema(train_records)
    signature = _signature(schema, make_env(next(iter(seeds["train"]))))
    _say(progress, f"vocabulary: {len(schema.predicates)} predicates, {len(schema.actions)} actions, "
                   f"{len(schema.operators)} STRIPS operators")
    plan = _plan_training(train_records, schema, started=started, minutes=minutes, steps=steps, seed=seed,
                          threads=threads, progress=progress)
    summary = _train(plan, out=out, data_dir=data_dir, schema=schema, signature=signature, domain=domain_name,
                     progress=progress)
    report = _finish(out, data_dir, progress)
    fidelity = _fidelity(out / "model-q8_0.gguf", data_dir / "test.jsonl", progress)
    result = LearnReport(
        out_dir=out, model=out / "model-q8_0.gguf", card=out / "README.md", data=dict(stats.items()), schema=schema,
        shape=plan.config.shape, max_objects=plan.config.max_objects, steps=plan.config.steps, rate=plan.rate,
        params=int(summary["params"]), train_seconds=float(summary["train_seconds"]),
        total_seconds=time.perf_counter() - started, q8_agreement=float(report["agreement"]), fidelity=fidelity,
        signature_recorded=signature is not None, command=command)
    atomic_write_text(result.card, model_card(result, domain_name=domain_name))
    _say(progress, f"wrote {result.model} and {result.card}")
    return result


@dataclass(frozen=True)
class _Plan:
    config: Any  # a TrainConfig (PyTorch is imported lazily)
    rate: float


def _plan_training(records: Sequence[TransitionRecord], schema: LearnedSchema, *, started: float, minutes: float,
                   steps: int | None, seed: int, threads: int, progress: Progress | None) -> _Plan:
    """Model size from the data, steps from what is left of the budget at the measured rate."""
    from planner.training.data import encode_records
    from planner.training.train import TrainConfig
    from planner.world.codec import domain_vocabulary

    max_objects = max(len(r.objects) for r in records)
    vocab = domain_vocabulary(schema.predicates, schema.actions, max_objects)
    shape = choose_shape(len(vocab), choose_context(records), len(records))
    examples = encode_records(records[:2000], vocab, schema.predicates, schema.actions, max_objects)
    rate = measure_rate(examples, vocab, shape, batch_size=BATCH_SIZE, threads=threads)
    left = minutes * 60 - (time.perf_counter() - started)
    chosen = steps if steps is not None else max(MIN_STEPS, int(rate * left * TRAIN_SHARE))
    _say(progress, f"model: width {shape.dim}, {shape.n_layers} blocks, context {shape.context}, {max_objects} "
                   f"objects, vocabulary {len(vocab)}; {rate:.1f} steps/s measured -> {chosen} steps")
    config = TrainConfig(steps=chosen, batch_size=BATCH_SIZE, seed=seed, threads=threads, shape=shape,
                         max_objects=max_objects, warmup=min(200, max(1, chosen // 10)),
                         checkpoint_every=max(1, chosen // 4), eval_every=chosen)
    return _Plan(config, rate)


def _train(plan: _Plan, *, out: Path, data_dir: Path, schema: LearnedSchema, signature: dict[str, Any] | None,
           domain: str, progress: Progress | None) -> dict[str, Any]:
    from planner.training.train import train

    total = plan.config.steps
    marks = {max(1, total * q // 4) for q in range(1, 5)}

    def tick(step: int, info: Mapping[str, float]) -> None:
        if step in marks:
            _say(progress, f"  training step {step}/{total}: loss {info['loss']:.4f}")

    val = data_dir / "val.jsonl"
    _say(progress, f"training {total} steps")
    return train(train_path=data_dir / "train.jsonl", val_path=val if val.is_file() else None, out_dir=out,
                 predicates=schema.predicates, actions=schema.actions, domain=domain, signature=signature,
                 config=plan.config, resume=False, progress=tick)


def _finish(out: Path, data_dir: Path, progress: Progress | None) -> dict[str, Any]:
    from planner.training.export import finish_model

    val = data_dir / "val.jsonl"
    has_val = val.is_file() and val.stat().st_size > 0
    report = finish_model(out, data_path=val if has_val else data_dir / "train.jsonl", sample=300)
    _say(progress, f"quantized to Q8_0: agrees with F32 on {report['agreement']:.2%} of {report['checked']}")
    return report


def _fidelity(model: Path, test_path: Path, progress: Progress | None) -> FidelityReport:
    from planner.world.llama import ProblemBinder

    records = read_records(test_path, limit=FIDELITY_LIMIT)
    bind = ProblemBinder(model, mode="prefix", on_invalid="reject")
    try:
        report = evaluate(records, bind)
        report.invalid_rejected = bind.model.stats.invalid if bind.model is not None else 0
    finally:
        if bind.model is not None:
            bind.model.close()
    _say(progress, "fidelity on the test split:\n" + report.table())
    return report


def model_card(report: LearnReport, *, domain_name: str) -> str:
    """The Markdown model card of ``report``."""
    rows = "\n".join(f"| {split} | {st.seeds} | {st.episodes} | {st.transitions} | {st.applicable} |"
                     for split, st in report.data.items())
    s = report.shape
    overall = report.fidelity.overall
    lines = [
        f"# {domain_name}: a learned fact-delta world model", "",
        f"Learned from interaction alone (reset and step) by `planner learn` in {report.total_seconds:.0f} s.", "",
        "## Reproduce", "", "```", report.command or "(called from Python)", "```", "",
        "## Data", "", "| split | seeds | episodes | transitions | applicable |", "|---|---|---|---|---|", rows, "",
        f"Vocabulary: {len(report.schema.predicates)} predicates "
        f"({', '.join(f'{p}/{n}' for p, n in report.schema.predicates.items())}), {len(report.schema.actions)} actions "
        f"({', '.join(f'{a}/{n}' for a, n in report.schema.actions.items())}); "
        f"{len(report.schema.operators)} lifted STRIPS operators; signature recorded: "
        f"{'yes' if report.signature_recorded else 'no'}.", "",
        "## Model", "",
        f"Llama architecture, width {s.dim}, {s.n_layers} blocks, {s.n_heads} heads, SwiGLU {s.ffn_dim}, context "
        f"{s.context} tokens, {report.max_objects} placeholder objects, {report.params:,} parameters.", "",
        f"Training: {report.steps} steps of {BATCH_SIZE} sequences in {report.train_seconds:.1f} s "
        f"(warm-up rate {report.rate:.1f} steps/s). Quantized to Q8_0 (`{report.model.name}`): agrees with the "
        f"float model on {report.q8_agreement:.2%} of sampled predictions.", "",
        "## Fidelity on held-out test seeds", "",
        f"Next-state exact match {overall.get('next_state_exact_match', float('nan')):.4%}, precondition accuracy "
        f"{overall.get('precondition_accuracy', float('nan')):.4%}.", "", "```", report.fidelity.table(), "```", "",
    ]
    return "\n".join(lines)
