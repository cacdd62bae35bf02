"""Training a fact-delta world model from transition logs, and exporting it to GGUF.

Reproducible from a seed (the batch of step ``k`` depends only on the seed and ``k``), with a
progress bar and resumable checkpoints (written atomically every ``checkpoint_every`` steps).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import pickle
import re
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any

import numpy as np
import torch

from planner.cores import available_cores
from planner.errors import ConfigError, ModelLoadError
from planner.io import atomic_output, atomic_write_text, writable_folder
from planner.training.data import (
    Encoded,
    ObjectShuffle,
    check_fits,
    sample_sequence,
    suffix_arguments,
)
from planner.training.errors import CheckpointError, TrainingDataError
from planner.training.model import EMBEDDINGS, Factoring, TinyLlama, resolve_embeddings
from planner.training.reading import encode_log, pack_examples
from planner.world.codec import CODEC_NAME, CODEC_VERSION, CODEC_VERSIONS, domain_vocabulary, parse_word
from planner.world.gguf_io import LlamaShape, write_world_model
from planner.world.vocab import Vocabulary

DEVICE_PATTERN = re.compile(r"cpu|auto|cuda(:[0-9]+)?")
"""The devices :class:`TrainConfig` accepts."""

PRECISIONS = ("auto", "fp32", "tf32", "bf16")
"""The arithmetic :class:`TrainConfig` accepts (see :attr:`TrainConfig.precision`)."""

LOSS_READ_EVERY = 10
"""On a GPU, steps between reading the loss back for the progress bar (each read waits for the
device to finish the step)."""

PROBE_STEPS = 50
"""With a time budget, the steps timed before the total is chosen (see :func:`train`)."""

MIN_PROBE_STEPS = 10
"""The shortest warm-up a time budget can time."""


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. ``steps`` × ``batch_size`` sequences are seen in all.

    Attributes:
        steps: optimizer steps in all (a resumed run continues up to this number).
        batch_size: sequences per step.
        lr: peak learning rate, reached after ``warmup`` steps, then cosine-decayed to ``min_lr``.
        min_lr: learning rate at the last step.
        warmup: steps of linear warm-up.
        weight_decay: AdamW's decoupled weight decay.
        seed: seed of the initial weights and of every batch (batch ``k`` depends only on it and ``k``).
        threads: CPU threads for PyTorch, and processes reading a training log longer than
            :data:`~planner.training.reading.CHUNK_BYTES` (at most the cores available to the
            process are used).
        checkpoint_every: steps between checkpoints (one is also written after the last step).
        eval_every: steps between validation measurements.
        shape: the transformer's shape.
        max_objects: placeholder objects the model knows (problems may have up to this many).
        embeddings: ``"factored"`` (a ground word's rows are sums of its name's and its
            arguments' rows, see :mod:`planner.training.model`), ``"free"`` (a row per word) or
            ``"auto"`` (factored for vocabularies above
            :data:`~planner.training.model.FACTOR_ABOVE` words).
        device: where PyTorch trains: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (the
            first CUDA device when PyTorch sees one, else the CPU). The batches, the weights and
            so the exported model do not depend on it beyond floating-point rounding.
        loader_workers: processes that build batches ahead of the training loop (``0``: the
            loop builds its own). Worth it where the model's step is faster than building a
            batch in Python (a GPU); batch ``k`` is the same either way.
        balance: how examples are drawn. Records are grouped by action name and whether the
            action applied; a group of ``n`` records is drawn in proportion to ``n ** balance``:
            ``1`` draws every record alike (the data's own mix), ``0`` every group alike, ``0.5``
            between (rare cases — a lamp switched on, a take that succeeds among many refused —
            are seen more often without drowning the common ones).
        precision: the arithmetic of the matrix products. ``"fp32"``: float32 throughout;
            ``"tf32"`` (CUDA only): float32 weights and results, products on the GPU's
            TensorFloat-32 units (10-bit mantissa inputs); ``"bf16"``: float32 weights, the
            forward pass autocast to bfloat16; ``"auto"``: ``tf32`` on CUDA, ``fp32`` on the CPU.
            The weights are float32 in every case, and so is the exported model.
        shuffle_objects: the chance (0..1) that a training sequence's objects are renamed by a
            random permutation of its placeholders (:class:`~planner.training.data.ObjectShuffle`):
            the model then learns rules from the facts alone, not from where names happen to
            sort. ``0`` (the default) renames none.
        focus: ``(action name, factor)`` pairs: the records of these actions (applied or not)
            are drawn ``factor`` times as often as ``balance`` alone would draw them, e.g.
            ``(("use", 3.0),)`` for the actions a model still gets wrong. Factors are finite
            and > 0; each action is named once.
        codec_version: the prompt layout the model learns, one of
            :data:`~planner.world.codec.CODEC_VERSIONS`: ``1`` (``action A =>``), ``2`` (the
            state's facts that name one of the action's arguments are written again after it)
            or ``3`` (only those whose first argument is one of them), see
            :mod:`planner.world.codec`; ``None`` (the default): the checkpoint's when a run
            resumes, the ``init`` model's when one starts from a model, else ``1``. Recorded in
            the model file; a run may start (``init``) from a model of any version.

    Raises :class:`~planner.errors.ConfigError` naming a value out of range.
    """

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
    embeddings: str = "auto"
    device: str = "cpu"
    loader_workers: int = 0
    balance: float = 1.0
    precision: str = "auto"
    shuffle_objects: float = 0.0
    focus: tuple[tuple[str, float], ...] = ()
    codec_version: int | None = None

    def __post_init__(self) -> None:
        check_focus(self.focus)
        if self.codec_version is not None and (type(self.codec_version) is not int
                                               or self.codec_version not in CODEC_VERSIONS):
            raise ConfigError(f"TrainConfig.codec_version must be one of {list(CODEC_VERSIONS)}, got "
                              f"{self.codec_version!r}")
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"TrainConfig.device must be cpu, cuda, cuda:N or auto, got {self.device!r}")
        if isinstance(self.loader_workers, bool) or not isinstance(self.loader_workers, int) \
                or not 0 <= self.loader_workers <= 64:
            raise ConfigError(f"TrainConfig.loader_workers must be a whole number in 0..64, got "
                              f"{self.loader_workers!r}")
        if isinstance(self.balance, bool) or not isinstance(self.balance, (int, float)) \
                or not (math.isfinite(self.balance) and 0 <= self.balance <= 1):
            raise ConfigError(f"TrainConfig.balance must be a number in 0..1, got {self.balance!r}")
        if isinstance(self.shuffle_objects, bool) or not isinstance(self.shuffle_objects, (int, float)) \
                or not (math.isfinite(self.shuffle_objects) and 0 <= self.shuffle_objects <= 1):
            raise ConfigError(f"TrainConfig.shuffle_objects must be a number in 0..1, got {self.shuffle_objects!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"TrainConfig.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.embeddings not in EMBEDDINGS:
            raise ConfigError(f"TrainConfig.embeddings must be one of {', '.join(EMBEDDINGS)}, "
                              f"got {self.embeddings!r}")
        for name in ("steps", "warmup"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "threads", "checkpoint_every", "eval_every", "max_objects"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"TrainConfig.lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.min_lr) and self.min_lr >= 0):
            raise ConfigError(f"TrainConfig.min_lr must be a finite number >= 0, got {self.min_lr}")
        if self.min_lr > self.lr:
            raise ConfigError(f"TrainConfig.min_lr must be at most TrainConfig.lr ({self.lr}): the schedule decays "
                              f"from the peak to it, got {self.min_lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"TrainConfig.weight_decay must be a finite number >= 0, got {self.weight_decay}")


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


def make_batch(examples: list[Encoded], vocab: Vocabulary, rng: np.random.Generator, batch_size: int,
               relabel: bool = True, p: np.ndarray | None = None,
               shuffle: ObjectShuffle | None = None,
               arguments: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (batch, time) and loss targets (-100 outside the answers); the examples are
    drawn alike, or with probabilities ``p`` (:func:`sampling_weights`), their objects renamed
    as ``shuffle`` says, their prompts in the codec's version 2 or 3 with ``arguments``
    (:func:`batch_arguments`), else version 1."""
    picks = rng.integers(len(examples), size=batch_size) if p is None else rng.choice(len(examples), batch_size, p=p)
    seqs = [sample_sequence(examples[i], vocab, rng, relabel=relabel, shuffle=shuffle, arguments=arguments)
            for i in picks]
    width = max(len(s) for s, _ in seqs)
    tokens = np.full((batch_size, width), vocab.eos_id, dtype=np.int64)
    targets = np.full((batch_size, width), -100, dtype=np.int64)
    for row, (seq, start) in enumerate(seqs):
        tokens[row, :len(seq)] = seq
        # position t predicts token t+1: the answer tokens seq[start:] are targets at t = start-1…
        targets[row, start - 1:len(seq) - 1] = seq[start:]
    return torch.from_numpy(tokens), torch.from_numpy(targets)


def check_focus(focus: object, actions: Mapping[str, int] | None = None) -> None:
    """Raise :class:`~planner.errors.ConfigError` naming the bad entry unless ``focus`` is a
    tuple of ``(action name, factor)`` pairs with distinct names and finite factors > 0
    (:attr:`TrainConfig.focus`), each naming one of ``actions`` (the model's action schemas)
    when they are given."""
    if not isinstance(focus, tuple):
        raise ConfigError(f"TrainConfig.focus must be a tuple of (action, factor) pairs, got {focus!r}")
    seen: set[str] = set()
    for entry in focus:
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str) and entry[0]):
            raise ConfigError(f"TrainConfig.focus entries must be (action, factor) pairs, got {entry!r}")
        name, factor = entry
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not (math.isfinite(factor) and factor > 0):
            raise ConfigError(f"TrainConfig.focus factor of {name!r} must be a finite number > 0, got {factor!r}")
        if name in seen:
            raise ConfigError(f"TrainConfig.focus names {name!r} twice")
        seen.add(name)
    unknown = sorted(seen - set(actions)) if actions is not None else []
    if unknown:
        raise ConfigError(f"TrainConfig.focus names action {unknown[0]!r}, which the model does not have (its "
                          f"actions: {', '.join(sorted(actions or {}))})")


def sampling_weights(groups: list[tuple[str, bool]], balance: float,
                     focus: Mapping[str, float] | None = None) -> np.ndarray | None:
    """Each example's probability of being drawn when its group (``groups[i]``: action name,
    applied) of ``n`` examples is drawn in proportion to ``n ** balance``
    (:attr:`TrainConfig.balance`), times ``focus[action]`` for the actions ``focus`` names
    (:attr:`TrainConfig.focus`); ``None`` (every example alike) for ``balance == 1`` and no
    focus."""
    focus = focus or {}
    if (balance == 1 and not focus) or not groups:
        return None
    sizes: dict[tuple[str, bool], int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    # in logs, scaled so the largest weight is 1: any finite factors > 0 neither overflow the sum
    # (1e307 on a big group) nor underflow every weight to 0 (5e-324 on every action)
    log_w = np.array([(balance - 1.0) * math.log(sizes[g]) + math.log(focus.get(g[0], 1.0)) for g in groups])
    w = np.exp(log_w - log_w.max())
    return w / w.sum()


def resolve_device(name: str) -> torch.device:
    """The PyTorch device ``name`` (:attr:`TrainConfig.device`) stands for on this machine.

    Raises :class:`~planner.errors.ConfigError` naming ``name`` when that device is not there
    (no CUDA build of PyTorch, no such GPU) or not a device at all."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise ConfigError(f"the training device must be cpu, cuda, cuda:N or auto, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = f"PyTorch {torch.__version__} " + ("has no CUDA support" if torch.version.cuda is None
                                                   else "sees no CUDA device")
        raise ConfigError(f"training device {name!r} asked for, but {build} (use --device cpu)")
    index = int(name.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"training device {name!r} asked for, but PyTorch sees {torch.cuda.device_count()} CUDA "
                          "device(s)")
    return torch.device("cuda", index)


def default_loader_workers(device: torch.device) -> int:
    """Processes building batches ahead of training on ``device`` when none are asked for: none
    on the CPU (they would take the cores it trains on), up to 8 beside a GPU, whose steps
    outpace one Python process building batches (one core is left to the training loop)."""
    return 0 if device.type == "cpu" else max(0, min(8, available_cores() - 1))


def resolve_precision(name: str, device: torch.device) -> str:
    """The arithmetic ``name`` (:attr:`TrainConfig.precision`) stands for on ``device``:
    ``fp32``, ``tf32`` or ``bf16``.

    Raises :class:`~planner.errors.ConfigError` naming ``name`` when it is no precision, or
    ``tf32`` off a CUDA device (the CPU has no TensorFloat-32 units)."""
    if name not in PRECISIONS:
        raise ConfigError(f"TrainConfig.precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        return "tf32" if device.type == "cuda" else "fp32"
    if name == "tf32" and device.type != "cuda":
        raise ConfigError(f"TrainConfig.precision 'tf32' needs a CUDA device, not {device.type!r} (use fp32 or "
                          "bf16)")
    return name


@contextlib.contextmanager
def _matmul_precision(precision: str) -> Iterator[None]:
    """Set how CUDA multiplies float32 matrices for ``precision``: on the TensorFloat-32 units
    for ``tf32``, in full float32 otherwise (whatever the process had set, e.g. with
    ``torch.set_float32_matmul_precision``); PyTorch's switch is put back afterwards."""
    matmul = torch.backends.cuda.matmul
    tf32 = precision == "tf32"
    # PyTorch 2.9+ has a new switch, and reading the legacy one after it was used raises
    switch, value = (("fp32_precision", "tf32" if tf32 else "ieee") if hasattr(matmul, "fp32_precision")
                     else ("allow_tf32", tf32))
    before = getattr(matmul, switch)
    setattr(matmul, switch, value)
    try:
        yield
    finally:
        setattr(matmul, switch, before)


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Processes started inside this block ignore SIGINT from their first instruction (an
    ignored signal stays ignored across exec, and Python then installs no handler of its own):
    a terminal's Ctrl-C reaches the whole process group, and a worker still importing PyTorch
    would print a traceback. The training loop alone answers it. Keep the block short: a
    SIGINT arriving during it is ignored by this process too. Off the main thread, which
    cannot set handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


_worker_state: tuple[list[Encoded], Vocabulary, int, int, np.ndarray | None, ObjectShuffle | None,
                     np.ndarray | None] | None = None


def _init_worker(payload: str) -> None:
    """Set up a batch worker from the file ``payload``: the pickled ``(examples, vocab, seed,
    batch_size, p, shuffle, arguments)``, the examples packed (:func:`pack_examples`)."""
    global _worker_state
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training loop's to handle
    torch.set_num_threads(1)
    packed, *rest = pickle.loads(Path(payload).read_bytes())
    _worker_state = (packed.unpack(), *rest)


def _worker_batch(step: int) -> tuple[np.ndarray, np.ndarray]:
    assert _worker_state is not None, "batch worker not initialised"
    examples, vocab, seed, batch_size, p, shuffle, arguments = _worker_state
    tokens, targets = make_batch(examples, vocab, np.random.default_rng([seed, step]), batch_size, p=p,
                                 shuffle=shuffle, arguments=arguments)
    return tokens.numpy(), targets.numpy()


def batches(examples: list[Encoded], vocab: Vocabulary, *, seed: int, first: int, until: Callable[[], int],
            batch_size: int, workers: int = 0, p: np.ndarray | None = None,
            shuffle: ObjectShuffle | None = None,
            arguments: np.ndarray | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of steps ``first, first + 1, …`` while the step is below ``until()`` (read
    again before each step, so a caller may move the end while it trains): batch ``k`` is
    :func:`make_batch` with the generator seeded by ``(seed, k)``, built here (``workers=0``) or
    by ``workers`` processes a few steps ahead. The same batches either way. ``p``: each
    example's probability of being drawn (``None``: alike); ``shuffle``: how objects are renamed;
    ``arguments``: the codec's version 2 or 3 (see :func:`make_batch`)."""
    step = first
    if workers <= 0:
        while step < until():
            yield make_batch(examples, vocab, np.random.default_rng([seed, step]), batch_size, p=p, shuffle=shuffle,
                             arguments=arguments)
            step += 1
        return
    # spawn: a forked child of a process that has started CUDA can use neither it nor PyTorch's
    # thread pools safely; each worker reads the examples once from a file, pickled once for all
    # of them and packed into a few arrays (pickling hundreds of thousands of examples again for
    # each worker took seconds apiece, and unpickling 1.7 million as small arrays a minute; sent
    # through the start-up pipe instead, each start would wait for its worker to import PyTorch,
    # and the pool's start is kept to milliseconds: see _children_ignore_sigint).
    context = multiprocessing.get_context("spawn")
    ahead: deque[AsyncResult[tuple[np.ndarray, np.ndarray]]] = deque()
    with tempfile.TemporaryDirectory(prefix="planner-batches-") as scratch:
        payload = Path(scratch) / "examples.pickle"
        payload.write_bytes(pickle.dumps((pack_examples(examples), vocab, seed, batch_size, p, shuffle, arguments),
                                         protocol=pickle.HIGHEST_PROTOCOL))
        with _children_ignore_sigint():
            pool = context.Pool(workers, initializer=_init_worker, initargs=(str(payload),))
        with pool:
            while True:
                while len(ahead) < 4 * workers and step < until():
                    ahead.append(pool.apply_async(_worker_batch, (step,)))
                    step += 1
                if not ahead:
                    return
                tokens, targets = ahead.popleft().get()
                yield torch.from_numpy(tokens), torch.from_numpy(targets)


def new_model(config: TrainConfig, vocab: Vocabulary, schemas: Mapping[str, int]) -> TinyLlama:
    """A freshly initialised model of ``config``'s shape and word tables for ``vocab``, whose
    ground words are the groundings of ``schemas`` (predicates and actions, name → arity)."""
    kind = resolve_embeddings(config.embeddings, vocab)
    factoring = Factoring.of(vocab, schemas, config.max_objects) if kind == "factored" else None
    return TinyLlama(config.shape, len(vocab), factoring)


def _save_checkpoint(path: Path, model: TinyLlama, opt: torch.optim.Optimizer, step: int,
                     meta: Mapping[str, Any]) -> None:
    """Write the training state after ``step`` steps to ``path`` atomically."""
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "meta": dict(meta)}
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, model: TinyLlama, opt: torch.optim.Optimizer, *,
                     fused: bool) -> tuple[int, dict[str, Any]]:
    """Restore ``model`` and ``opt`` from ``path``: (steps done, its ``meta``: training seconds
    so far, and the steps of the schedule where a time budget chose them). The optimizer updates
    as this run's device wants (``fused``), wherever the checkpoint was written.

    Raises :class:`CheckpointError` naming the file when it cannot be restored.
    """
    try:
        ckpt = torch.load(path, weights_only=False, map_location="cpu")  # wherever it was trained
        _check_shapes(ckpt["model"], model.state_dict())
        model.load_state_dict(ckpt["model"])
        for group in ckpt["opt"]["param_groups"]:  # a saved group's settings replace the new one's
            group["fused"], group["foreach"] = (True, None) if fused else (None, None)
        opt.load_state_dict(ckpt["opt"])
        return int(ckpt["step"]), dict(ckpt["meta"])
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"cannot resume from {path}: {reason} (start afresh with --fresh, or give "
                              "another --out)") from exc


def _same_path(recorded: Any, given: str | Path) -> bool:
    """Whether the path a checkpoint recorded (as it was typed) names the file ``given`` names
    (another spelling of it, through ``..`` or a link, included)."""
    if not isinstance(recorded, str):
        return False
    try:
        return os.path.samefile(recorded, given)
    except OSError:  # one of them is gone: compare the spellings
        return os.path.abspath(recorded) == os.path.abspath(given)


def _check_shapes(saved: Mapping[str, torch.Tensor], now: Mapping[str, torch.Tensor]) -> None:
    """Raise ``ValueError`` naming the first weight whose shape (or presence) differs between a
    checkpoint's model and this run's (another --dim, --layers, vocabulary or embeddings)."""
    for name in sorted(set(saved) | set(now)):
        if name not in saved or name not in now:
            where = "this run's model" if name not in saved else "the checkpoint"
            raise ValueError(f"it was trained with another model: weight {name} is only in {where}")
        a, b = tuple(saved[name].shape), tuple(now[name].shape)
        if a != b:
            raise ValueError(f"it was trained with another model: weight {name} is {list(a)} there, {list(b)} in "
                             "this run")


def _check_same_run(path: Path, meta: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Refuse to train on from the checkpoint ``path`` with other settings than it was trained
    with (``now``: setting → this run's value, as ``meta`` records them; older checkpoints did
    not record them all, and are not checked for those they lack). Errors name the option."""
    for key, value in now.items():
        if key in meta and meta[key] != value:
            raise ConfigError(f"{path} was trained with {option_text(key, meta[key])}, this run asks for "
                              f"{option_text(key, value)}: resume it with the same settings, or start afresh (--fresh)")


def option_text(key: str, value: Any) -> str:
    """A recorded training setting as the ``planner train`` options that ask for it:
    ``("focus", {"use": 3.0})`` → ``--focus use=3``, ``("lr", 0.00015)`` → ``--lr 0.00015``,
    ``("focus", {})`` → ``no --focus``."""
    option = "--" + key.replace("_", "-")
    if isinstance(value, Mapping):
        return " ".join(f"{option} {k}={v:g}" for k, v in value.items()) or f"no {option}"
    return f"{option} {value:g}" if isinstance(value, float) else f"{option} {value}"


def _load_examples(path: str | Path, vocab: Vocabulary, predicates: Mapping[str, int], actions: Mapping[str, int],
                   config: TrainConfig, *, limit: int | None = None,
                   required: bool = True) -> tuple[int, int, list[Encoded]]:
    """(records, problems, encoded examples) of the transition log ``path`` (its first
    ``limit`` records when given), checked to fit the model's context in the codec's version 1
    (the longer prompts of versions 2 and 3 are checked once the run's version is known).

    Raises :class:`TrainingDataError` when they do not fit, or when there are none and
    ``required``.
    """
    n_records, n_problems, examples = encode_log(path, vocab, predicates, actions, config.max_objects, limit=limit,
                                                 processes=min(config.threads, available_cores()))
    if required and not n_records:
        raise TrainingDataError(f"no transition records in {path}")
    check_fits(examples, config.shape.context)
    return n_records, n_problems, examples


def batch_arguments(vocab: Vocabulary, config: TrainConfig, predicates: Collection[str]) -> np.ndarray | None:
    """What :func:`make_batch` needs to write ``config``'s codec version (``None``: version 1's
    batches; :func:`train` decides a ``None`` version first), ``predicates`` being the schema's
    (:func:`~planner.training.data.suffix_arguments`)."""
    return suffix_arguments(vocab, config.max_objects, config.codec_version or CODEC_VERSION, predicates)


def train(
    *,
    train_path: str | Path,
    val_path: str | Path | None,
    out_dir: str | Path,
    predicates: Mapping[str, int],
    actions: Mapping[str, int],
    domain: str,
    signature: Mapping[str, Any] | None = None,
    config: TrainConfig = TrainConfig(),
    resume: bool = True,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    stop_at: int | None = None,
    seconds: float | None = None,
    init: str | Path | None = None,
) -> dict[str, Any]:
    """Train and write ``out_dir/model-f32.gguf``; returns a summary (also in the GGUF).

    ``stop_at`` ends the run after that many steps in all (checkpoint and GGUF written) while the
    learning-rate schedule stays that of ``config.steps``: a later ``resume`` with new data goes
    on along the same schedule (``planner learn``'s rounds).

    ``signature`` (:func:`planner.world.signature.domain_signature`'s JSON) is recorded in the
    GGUF, so the model is chosen for every domain with that signature.

    ``seconds`` is a time budget for the training loop of a fresh run: the first
    :data:`PROBE_STEPS` steps (fewer when the warm-up is shorter) are timed, then
    ``config.steps`` becomes as many steps as the budget holds at that rate. Those first steps
    are warm-up steps, whose learning rate does not depend on the total, so training again with
    ``steps`` set to the summary's ``steps`` repeats the run exactly.

    ``init`` starts a fresh run from a GGUF world model's weights instead of random ones (its
    shape is ``config.shape``'s and its vocabulary the domain's, else an error says which
    differs); its word tables are then free ones (``config.embeddings`` is not used). A run
    resumed from its own checkpoint goes on from there; with ``init``, the checkpoint of another
    run is refused.

    A checkpoint that had already trained all its steps is only exported again, with the
    settings it was trained with; those of ``config`` that differ from them (a ``focus``, a
    ``codec_version``, …) come back under the summary's ``unapplied`` key (setting → the value
    asked for), which the summary file does not carry.

    Raises :class:`~planner.errors.ConfigError` for a device that is not there, a budget
    without warm-up steps to time, a ``focus`` on an action the model does not have (before
    the data is read) or that no training record has, or an ``init`` model that does not fit,
    :class:`TrainingDataError` for data that does not fit, and :class:`CheckpointError` for a
    checkpoint that cannot be restored."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    probe = min(PROBE_STEPS, config.warmup)
    # The first steps pay for start-up, and with loader workers for the batches they built ahead
    # of the clock: the rate is timed after those.
    skip = min(probe // 2, 5 + 4 * config.loader_workers)
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"the training time budget must be a number of seconds > 0, got {seconds!r}")
    if seconds is not None and probe < MIN_PROBE_STEPS:
        raise ConfigError(f"a training time budget times the first warm-up steps: it needs a warm-up of at least "
                          f"{MIN_PROBE_STEPS} steps, got {config.warmup}")
    torch.manual_seed(config.seed)
    torch.set_num_threads(min(config.threads, available_cores()))
    out = Path(out_dir)
    writable_folder(out)  # a folder that cannot be written fails now, not at the first checkpoint
    check_focus(config.focus, actions)
    both = sorted(set(predicates) & set(actions))
    if both:  # one token would stand for a fact and an action; the model file could not record them
        raise TrainingDataError(f"the schema's predicates and actions both name {both[:5]}: a fact-delta model needs "
                                "distinct names")
    focus = dict(config.focus)
    vocab = domain_vocabulary(predicates, actions, config.max_objects)
    n_records, n_problems, examples = _load_examples(train_path, vocab, predicates, actions, config)
    drawn_by_group = config.balance != 1 or bool(focus)
    groups = ([(parse_word(vocab.decode([e.action])[0])[0], bool(e.applicable)) for e in examples]
              if drawn_by_group else [])
    unused = sorted(set(focus) - {name for name, _ in groups})
    if unused:  # it would change nothing
        raise ConfigError(f"TrainConfig.focus names action {unused[0]!r}, which no record of {train_path} has")
    val_examples = (_load_examples(val_path, vocab, predicates, actions, config, limit=4000, required=False)[2]
                    if val_path else [])
    ckpt_path = out / "checkpoint.pt"
    resuming = resume and ckpt_path.exists()
    if init is not None:
        config = replace(config, embeddings="free")
    model = new_model(config, vocab, {**predicates, **actions})
    init_version = CODEC_VERSION
    if init is not None and not resuming:  # a resumed run's weights come from its checkpoint
        init_version = _init_from_gguf(model, Path(init), vocab, config.shape)
    model = model.to(device)
    draw = sampling_weights(groups, config.balance, focus) if drawn_by_group else None
    on_gpu = device.type == "cuda"
    # one kernel for the whole update on a GPU (the same arithmetic, fewer launches)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95),
                            weight_decay=config.weight_decay, **({"fused": True} if on_gpu else {}))
    start_step = 0
    elapsed_before = 0.0
    unapplied: dict[str, Any] = {}
    if resuming:
        start_step, meta = _load_checkpoint(ckpt_path, model, opt, fused=on_gpu)
        if init is not None and not _same_path(meta.get("init"), init):  # the same run, again: it goes on
            raise ConfigError(f"--init starts a new run, but {out} holds the checkpoint of another one: give --fresh "
                              "to start over, or another --out")
        elapsed_before = float(meta.get("train_seconds", 0.0))
        if seconds is not None:  # the schedule the budget chose goes on
            if "budget_steps" not in meta:
                raise ConfigError(f"{ckpt_path} was trained to a number of steps, not a time budget: resume it "
                                  "with those steps, or start afresh (--fresh)")
            config = replace(config, steps=int(meta["budget_steps"]))
    budgeted = seconds is not None and start_step == 0
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    end = config.steps if stop_at is None else max(0, min(stop_at, config.steps))
    if budgeted:
        end = probe  # until the rate is known (warm-up steps: their rate does not depend on the total)
    recorded: dict[str, Any] = {}
    if resuming:
        # a checkpoint from before --shuffle-objects renamed nothing, one from before --focus focused on
        # nothing, one from before --codec-version wrote version 1
        recorded = {"shuffle_objects": 0.0, "focus": {}, "codec_version": 1, **meta}
        if type(recorded["codec_version"]) is not int or recorded["codec_version"] not in CODEC_VERSIONS:
            raise CheckpointError(f"{ckpt_path} records codec version {recorded['codec_version']!r}, not one of "
                                  f"{list(CODEC_VERSIONS)}: start afresh (--fresh)")
    if config.codec_version is None:  # the model's own layout: the checkpoint's, the init model's, else 1
        config = replace(config, codec_version=recorded["codec_version"] if resuming else init_version)
    # the settings a checkpoint trains on only with, recorded in it and in the summary
    settings: dict[str, Any] = {"precision": precision, "lr": config.lr, "min_lr": config.min_lr,
                                "shuffle_objects": config.shuffle_objects, "focus": focus,
                                "codec_version": config.codec_version}
    if resuming:
        if start_step < end:
            _check_same_run(ckpt_path, recorded, settings)
        else:  # nothing left to train, so it may be exported anywhere (e.g. quantized off the GPU): the
            # summary says how it was trained, and the caller hears which of its settings did not apply
            unapplied = {key: value for key, value in settings.items() if key in recorded and recorded[key] != value}
            settings = {key: recorded.get(key, value) for key, value in settings.items()}
    arguments = batch_arguments(vocab, replace(config, codec_version=settings["codec_version"]), predicates)
    if arguments is not None and start_step < end:  # the prompts of versions 2 and 3 are longer
        check_fits(examples, config.shape.context, arguments)
        check_fits(val_examples, config.shape.context, arguments)
    model.train()
    timed_from = started
    stream = batches(examples, vocab, seed=config.seed, first=start_step, until=lambda: end,
                     batch_size=config.batch_size, workers=config.loader_workers, p=draw,
                     shuffle=ObjectShuffle.of(vocab, config.max_objects, settings["shuffle_objects"])
                     if settings["shuffle_objects"] else None, arguments=arguments)
    precision = settings["precision"]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    read_every = LOSS_READ_EVERY if on_gpu else 1
    last_loss = float("nan")
    with _matmul_precision(precision):
        for step, (tokens, targets) in enumerate(stream, start=start_step):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, config)
            loss = training_step(model, opt, tokens, targets, device, autocast)
            done_steps = step + 1
            if budgeted and done_steps == skip:
                _wait_for(device)  # steps are queued ahead on a GPU: time them done, not launched
                timed_from = time.perf_counter()
            if budgeted and done_steps == probe:
                assert seconds is not None
                _wait_for(device)
                rate = (probe - skip) / max(1e-6, time.perf_counter() - timed_from)
                total = max(probe, int(rate * (seconds - (time.perf_counter() - started))) + probe)
                config = replace(config, steps=total)
                end = total if stop_at is None else max(probe, min(stop_at, total))
            evaluating = bool(val_examples) and (done_steps % config.eval_every == 0 or done_steps == end)
            if done_steps % read_every == 0 or evaluating or done_steps in (start_step + 1, end):
                last_loss = loss.item()
            info = {"loss": last_loss, "lr": lr_at(step, config), "steps": float(end)}
            if evaluating:
                info["val_token_acc"] = evaluate_tokens(model, val_examples, vocab, seed=config.seed,
                                                        arguments=arguments)
                history.append({"step": done_steps, **{k: v for k, v in info.items() if k != "steps"}})
            if done_steps % config.checkpoint_every == 0 or done_steps == end:
                _save_checkpoint(ckpt_path, model, opt, done_steps, {
                    "train_seconds": elapsed_before + time.perf_counter() - started,
                    **settings,
                    **({"budget_steps": config.steps} if seconds is not None else {}),
                    **({"init": str(init)} if init is not None else {})})
            if progress is not None:
                progress(done_steps, info)
    train_seconds = elapsed_before + time.perf_counter() - started
    summary = {
        "domain": domain,
        "train_records": n_records,
        "train_problems": n_problems,
        "steps": max(end, start_step),
        "device": str(device),
        "schedule_steps": config.steps,
        "batch_size": config.batch_size,
        "embeddings": resolve_embeddings(config.embeddings, vocab),
        "balance": config.balance,
        **settings,
        **({"init": str(init)} if init is not None else {}),
        "seed": config.seed,
        "train_seconds": round(train_seconds, 1),
        "params": model.n_params(),
        "shape": asdict(config.shape),
        "history": history[-5:] or _earlier_history(out / "train-summary.json"),
    }
    write_world_model(out / "model-f32.gguf", vocab=vocab, shape=config.shape, weights=model.gguf_weights(),
                      codec=CODEC_NAME, codec_version=settings["codec_version"], predicates=predicates, actions=actions,
                      max_objects=config.max_objects, domain=domain, training=summary, signature=signature,
                      name=f"{domain} fact-delta world model")
    atomic_write_text(out / "train-summary.json", json.dumps(summary, indent=2) + "\n")
    return {**summary, "unapplied": unapplied} if unapplied else summary


def training_step(model: TinyLlama, opt: torch.optim.Optimizer, tokens: torch.Tensor, targets: torch.Tensor,
                  device: torch.device, autocast: torch.autocast) -> torch.Tensor:
    """One optimizer step on a batch (gradients clipped to norm 1); returns the loss, still on
    ``device`` (reading it waits for the device)."""
    with autocast:
        loss = model.answer_loss(tokens.to(device, non_blocking=True), targets.to(device, non_blocking=True))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def _wait_for(device: torch.device) -> None:
    """Wait until ``device`` has done the work queued on it (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _init_from_gguf(model: TinyLlama, path: Path, vocab: Vocabulary, shape: LlamaShape) -> int:
    """Load ``path``'s weights into ``model`` (free word tables), after checking that the GGUF
    model is a fact-delta model this project runs, with ``shape`` and ``vocab``'s words; returns
    its codec version. Raises :class:`~planner.errors.ConfigError` naming what differs (and what
    :func:`~planner.world.gguf_io.read_model_weights` raises)."""
    from planner.world.gguf_io import check_codec, read_model_info, read_model_vocabulary, read_model_weights

    info = read_model_info(path)
    try:
        check_codec(info)
    except ModelLoadError as exc:
        raise ConfigError(f"cannot start from {path}: {exc}") from None
    _, model_shape, weights = read_model_weights(path)
    if (model_shape.dim, model_shape.n_layers, model_shape.n_heads, model_shape.ffn_dim) != \
            (shape.dim, shape.n_layers, shape.n_heads, shape.ffn_dim):
        raise ConfigError(f"cannot start from {path}: its shape is {model_shape}, the run's is {shape}")
    _, pieces, _ = read_model_vocabulary(path)
    if len(pieces) != len(vocab.pieces):
        raise ConfigError(f"cannot start from {path}: it has {len(pieces)} tokens, this domain's vocabulary "
                          f"{len(vocab.pieces)}")
    differ = next((i for i, (a, b) in enumerate(zip(pieces, vocab.pieces, strict=True)) if a != b), None)
    if differ is not None:
        raise ConfigError(f"cannot start from {path}: its token {differ} is {pieces[differ]!r}, this domain's "
                          f"{vocab.pieces[differ]!r}")
    try:
        model.load_gguf_weights(weights)
    except TrainingDataError as exc:
        raise ConfigError(f"cannot start from {path}: {exc}") from None
    return info.codec_version or CODEC_VERSION


def _earlier_history(path: Path) -> list[dict[str, float]]:
    """The validation history of an earlier summary at ``path`` (a rerun that had no steps left
    to train keeps it), or none."""
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("history", []))
    except (OSError, ValueError, AttributeError):
        return []


@torch.no_grad()
def evaluate_tokens(model: TinyLlama, examples: list[Encoded], vocab: Vocabulary, *, seed: int,
                    n: int = 512, arguments: np.ndarray | None = None) -> float:
    """Teacher-forced accuracy on answer tokens of ``n`` validation sequences (no relabelling;
    ``arguments``: the codec's version 2 or 3, see :func:`make_batch`)."""
    was = model.training
    model.eval()
    rng = np.random.default_rng([seed, 10**9])
    tokens, targets = make_batch(examples, vocab, rng, min(n, len(examples)), relabel=False, arguments=arguments)
    device = next(model.parameters()).device
    acc = model.answer_accuracy(tokens.to(device), targets.to(device))
    model.train(was)
    return acc
