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
4. **train** — :func:`~planner.training.train.train` in ``rounds`` rounds along one
   learning-rate schedule; between two rounds, **goal-directed collection**: the model so far
   is exported (:func:`~planner.training.export.finish_model`) and plays bounded
   ``planner solve`` episodes on training seeds (:func:`goal_round`), and their real steps —
   above all those where the model was wrong, which is where a search exploits its errors —
   are appended to ``data/train.jsonl`` (:mod:`planner.data.experience`); after the last
   round, :func:`~planner.training.export.finish_model` (Q8_0, compared with the float model);
5. **fidelity** — :func:`~planner.data.fidelity.evaluate` of the Q8_0 model on the test split;
6. **planning** — :func:`~planner.data.planning_eval.evaluate_planning`: one bounded
   ``planner solve`` episode per held-out test seed (the first :data:`PLANNING_SEEDS`);
7. **card** — ``out_dir/README.md`` written atomically: environment, data, model, training
   time, fidelity table, planning success and the command that reproduces it; and
   ``out_dir/learn.json``, the same facts for programs (:class:`LearnRecord`).

:func:`improve` continues such a run with real experience: the steps of the agent's episode
logs (divergences weighted, :mod:`planner.data.experience`) are added to
``data/train.jsonl``, training resumes from ``checkpoint.pt`` for a number of steps chosen
from the time budget, and fidelity and planning success are measured before and after on the
same held-out data and seeds; the card gets an "Improvement" section (replacing an earlier
one; ``learn.json`` keeps every run's numbers). The model before is kept:
``model-q8_0.gguf`` is copied to ``model-q8_0.before.gguf`` (likewise
``model-f32.before.gguf`` and ``checkpoint.before.pt``) before anything is changed; the new
files replace the old ones atomically, and ``data/train.jsonl`` is replaced (atomically) only
once the new model is written — a failure or an interrupt before that puts the checkpoint
and the models back as they were, so the same logs can simply be given again.

Training needs PyTorch (the ``train`` extra); without it :func:`learn` and :func:`improve`
raise a one-line :class:`~planner.errors.ConfigError` before doing anything.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from planner.config import PlannerConfig
from planner.data.collect import TransitionRecord, read_records
from planner.data.experience import (
    DIVERGENCE_WEIGHT,
    ExperienceError,
    FoldedExperience,
    environment_objects,
    fold_logs,
)
from planner.data.explore import ExploreStats, collect_from_env
from planner.data.fidelity import FidelityReport, evaluate
from planner.data.planning_eval import DEFAULT_CONFIG, PlanningReport, evaluate_planning
from planner.data.schema import LearnedSchema, infer_schema
from planner.errors import ConfigError
from planner.io import JsonlLog, atomic_output, atomic_write_text
from planner.protocols import Environment
from planner.world.gguf_io import LlamaShape

if TYPE_CHECKING:
    from planner.training.train import TrainConfig

DEFAULT_SEEDS: Mapping[str, range] = {"train": range(0, 100), "val": range(1000, 1020), "test": range(2000, 2050)}
"""Environment seeds per split when none are given (disjoint)."""

TRAIN_SHARE = 0.92
"""Share of the time budget left for training after collection (the rest: warm-up, export,
quantization, fidelity and the card)."""
MIN_STEPS = 20
"""Fewest training steps chosen from a budget."""
WARMUP_STEPS = 4
"""Timed optimizer steps of the rate measurement (after one untimed step)."""
GPU_TIMED_STEPS = 30
"""Fewest steps :func:`measure_rate` times beside a GPU, whose steps are short and queued ahead."""
BATCH_SIZE = 64
"""Sequences per training step."""
FIDELITY_LIMIT = 3000
"""Most test transitions scored for the card."""
CONTEXT_MARGIN = 1.25
"""Context = the longest sequence met × this margin (rounded up to a multiple of 32 tokens)."""
PLANNING_SEEDS = 20
"""Most held-out test seeds played for planning success (the first ones of the test split);
each episode is bounded by :data:`~planner.data.planning_eval.DEFAULT_CONFIG` (about 12 s of
search at most)."""
ROUNDS = 3
"""Training rounds of :func:`learn` by default (``1``: train on the exploration data only)."""
FIRST_ROUND_SHARE = 0.5
"""Share of the training steps run before the first goal-directed collection (the later rounds
share the rest equally)."""
GOAL_SHARE = 0.1
"""Share of the time budget one goal-directed collection round may take (exporting the model
so far and playing episodes); reserved before the training steps are chosen."""
GOAL_EPISODES = 60
"""Most episodes of one goal-directed collection round."""
GOAL_REPLANS = 20
"""Most replans of a goal-directed episode (``planner solve``'s default): each replan follows a
divergence, the most useful data there is, so these episodes are not cut short after
:data:`~planner.data.planning_eval.MAX_REPLANS` as the held-out ones are."""
RECORD_FILE = "learn.json"
"""What :func:`learn` records for programs, next to the card (see :class:`LearnRecord`)."""
BEFORE = ".before"
"""Inserted before the suffix of the files :func:`improve` keeps (``model-q8_0.before.gguf``)."""

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
        planning: planning success of the Q8_0 model on the first :data:`PLANNING_SEEDS`
            held-out test seeds.
        goal_rounds: the goal-directed collections between training rounds, in order.
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
    planning: PlanningReport
    goal_rounds: tuple[GoalRound, ...] = ()


@dataclass(frozen=True)
class GoalRound:
    """One goal-directed collection between two training rounds of :func:`learn`.

    Attributes:
        after_step: training steps of the model that played.
        planning: its episodes, on training seeds (bounded as the held-out ones are, but with
            up to :data:`GOAL_REPLANS` replans).
        log: the episode log they were written to (``data/goal-<round>.jsonl``).
        steps: real steps folded into the training data.
        divergences: steps where the real environment differed from the model's prediction.
        records: training records appended (each divergence written
            :data:`~planner.data.experience.DIVERGENCE_WEIGHT` times).
        seconds: the round's wall time, the export of the model included (seconds).
        skipped: why nothing was folded in (``None`` when the steps were).
    """

    after_step: int
    planning: PlanningReport
    log: Path
    steps: int
    divergences: int
    records: int
    seconds: float
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The round's numbers (JSON-ready): ``learn.json``'s ``goal_rounds`` entries."""
        p = self.planning
        return {"after_step": self.after_step, "log": str(self.log), "seeds": p.seeds_text(), "episodes": p.total,
                "solved": p.solved, "steps": self.steps, "divergences": self.divergences, "records": self.records,
                "seconds": round(self.seconds, 1), "skipped": self.skipped}

    def line(self) -> str:
        """``after 2177 steps: solved 31/40 training seeds, 812 real steps (96 diverged) -> 1100 records, 58 s``."""
        p = self.planning
        folded = (f"{_count(self.steps, 'real step')} ({self.divergences} diverged) -> "
                  f"{_count(self.records, 'record')}" if self.skipped is None else f"nothing folded: {self.skipped}")
        return (f"after {self.after_step} steps: solved {p.solved}/{p.total} training seeds, {folded}, "
                f"{self.seconds:.0f} s")


def _require_torch() -> None:
    """:class:`LearnError` (one line) when PyTorch cannot be imported."""
    try:
        import planner.training.train  # noqa: F401
    except ImportError as exc:
        raise LearnError(f"planner learn needs PyTorch: pip install -e '.[train]' ({exc})") from None


def _check_device(device: str) -> None:
    """:class:`LearnError` naming ``device`` when PyTorch cannot train there (no such device,
    no CUDA build), before any work."""
    from planner.training.train import resolve_device

    try:
        resolve_device(device)
    except ConfigError as exc:
        raise LearnError(str(exc)) from None


def _loader_workers(device: str) -> int:
    """Processes building batches ahead of training on ``device``, as ``planner train``
    chooses them (:func:`~planner.training.train.default_loader_workers`)."""
    from planner.training.train import default_loader_workers, resolve_device

    return default_loader_workers(resolve_device(device))


def _check_budget(minutes: float, steps: int | None) -> None:
    """:class:`LearnError` naming a bad budget."""
    if not (minutes == minutes and 0 < minutes <= 24 * 60):
        raise LearnError(f"minutes must lie in (0, 1440], got {minutes!r}")
    if steps is not None and steps < 1:
        raise LearnError(f"steps must be at least 1, got {steps}")


def _check_request(seeds: Mapping[str, range], minutes: float, steps: int | None) -> None:
    """:class:`LearnError` naming a bad budget or a missing split."""
    _check_budget(minutes, steps)
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


def measure_rate(examples: Sequence[Any], vocab: Any, config: TrainConfig, predicates: Mapping[str, int],
                 actions: Mapping[str, int], *, steps: int = WARMUP_STEPS) -> float:
    """Training steps per second of a fresh model of ``config`` (schema: ``predicates`` and
    ``actions``, name → arity; shape, word tables, batch size, codec version,
    threads, device, precision and batch workers) on ``examples`` (encoded records), as
    :func:`~planner.training.train.train` runs them: timed over ``steps`` optimizer steps on the
    CPU; beside a GPU over at least :data:`GPU_TIMED_STEPS`, after the steps that pay for
    start-up and for the batches the workers built ahead of the clock, until the device has
    done them."""
    import torch

    from planner.training.train import (
        _matmul_precision,
        _wait_for,
        batch_arguments,
        batches,
        new_model,
        resolve_device,
        resolve_precision,
        training_step,
    )

    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    on_gpu = device.type == "cuda"
    torch.set_num_threads(config.threads)
    model = new_model(config, vocab, {**predicates, **actions}).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True if on_gpu else None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    skip = 1 + 4 * config.loader_workers  # start-up, and the batches the workers built ahead
    timed = max(steps, GPU_TIMED_STEPS) if on_gpu else steps
    pool = list(examples)  # once: copying tens of thousands of records per step made the rate look slow
    started = 0.0
    stream = batches(pool, vocab, seed=7, first=0, until=lambda: skip + timed, batch_size=config.batch_size,
                     workers=config.loader_workers, arguments=batch_arguments(vocab, config, predicates))
    with _matmul_precision(precision):
        for k, (tokens, targets) in enumerate(stream):
            if k == skip:
                _wait_for(device)
                started = time.perf_counter()
            training_step(model, opt, tokens, targets, device, autocast)
        _wait_for(device)
    return timed / max(1e-6, time.perf_counter() - started)


def _signature(schema: LearnedSchema, probe: Environment) -> dict[str, Any] | None:
    """The signature to record: a PDDL environment's own domain's; else the learned one when
    every action schema met got a STRIPS operator; else ``None``."""
    from planner.env.pddl import PDDLEnvironment
    from planner.world.signature import domain_signature

    if isinstance(probe, PDDLEnvironment):
        return domain_signature(probe.task.domain).to_json()
    return learned_signature(schema)


def learned_signature(schema: LearnedSchema) -> dict[str, Any] | None:
    """The signature of a learned schema when every action schema met got a STRIPS operator
    (else ``None``: the model is then chosen by its domain's name alone)."""
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
    planning_config: PlannerConfig = DEFAULT_CONFIG,
    rounds: int = ROUNDS,
    device: str = "cpu",
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
        planning_config: the search and agent limits of the planning episodes (held-out and
            goal-directed).
        rounds: training rounds; between two, a goal-directed collection of at most
            :data:`GOAL_SHARE` of the budget (``1``: none).
        device: where PyTorch trains: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (the training
            rate, and so the steps a budget buys, is measured there). Beside a GPU, batches are
            built by worker processes started with ``spawn``: a script that calls this must
            guard its entry point (``if __name__ == "__main__":``).

    Raises :class:`LearnError` (before any work) without PyTorch, for a device it cannot train
    on or for a bad request, and what
    collection, schema inference and training raise.
    """
    started = time.perf_counter()
    _require_torch()
    _check_device(device)
    _check_request(seeds, minutes, steps)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= 10:
        raise LearnError(f"rounds must be a whole number in 1..10, got {rounds!r}")
    out = Path(out_dir)
    data_dir = out / "data"
    for split in seeds:
        (data_dir / f"{split}.jsonl").unlink(missing_ok=True)
    for old in data_dir.glob("goal-*.jsonl"):
        old.unlink()
    _say(progress, f"collecting: {', '.join(f'{k} seeds {v.start}-{v.stop - 1}' for k, v in seeds.items())}")
    stats = collect_from_env(make_env, out_dir=data_dir, seeds=dict(seeds),  # type: ignore[arg-type]
                             episodes_per_seed=episodes_per_seed, max_steps=max_steps, domain=domain_name, seed=seed)
    for split, st in stats.items():
        made = f"; {st.new_objects} steps named objects new to their episode" if st.new_objects else ""
        _say(progress, f"  {split}: {st.transitions} transitions ({st.applicable} applicable) from {st.seeds} "
                       f"seeds{made}")
    train_records = read_records(data_dir / "train.jsonl")
    schema = infer_schema(train_records)
    shared = sorted(set(schema.predicates) & set(schema.actions))
    if shared:
        raise LearnError(f"the environment names {shared} both as predicates (in its facts) and as actions: a "
                         "fact-delta model writes facts and actions in one vocabulary, so rename one of them")
    signature = _signature(schema, make_env(next(iter(seeds["train"]))))
    _say(progress, f"vocabulary: {len(schema.predicates)} predicates, {len(schema.actions)} actions, "
                   f"{len(schema.operators)} STRIPS operators")
    goal_seconds = GOAL_SHARE * minutes * 60
    plan = _plan_training(train_records, schema, started=started, minutes=minutes, steps=steps, seed=seed,
                          threads=threads, progress=progress, reserve=(rounds - 1) * goal_seconds,
                          device=device)
    goal_seeds = itertools.cycle(seeds["train"])
    goals: list[GoalRound] = []
    done = 0
    for k, until in enumerate(round_ends(plan.config.steps, rounds)):
        if k:
            goals.append(goal_round(make_env, out=out, data_dir=data_dir, seeds=goal_seeds, seconds=goal_seconds,
                                    episodes=min(GOAL_EPISODES, len(seeds["train"])),
                                    index=k, after_step=done, schema=schema, max_objects=plan.config.max_objects,
                                    domain=domain_name, config=planning_config, progress=progress))
        summary = _train(plan, out=out, data_dir=data_dir, predicates=schema.predicates, actions=schema.actions,
                         signature=signature, domain=domain_name, progress=progress, resume=k > 0, first=done,
                         until=until)
        done = until
    report = _finish(out, data_dir, progress)
    fidelity = _fidelity(out / "model-q8_0.gguf", data_dir / "test.jsonl", progress)
    planning = _planning(make_env, out / "model-q8_0.gguf", list(seeds["test"])[:PLANNING_SEEDS], planning_config,
                         progress)
    result = LearnReport(
        out_dir=out, model=out / "model-q8_0.gguf", card=out / "README.md", data=dict(stats.items()), schema=schema,
        shape=plan.config.shape, max_objects=plan.config.max_objects, steps=plan.config.steps, rate=plan.rate,
        params=int(summary["params"]), train_seconds=float(summary["train_seconds"]),
        total_seconds=time.perf_counter() - started, q8_agreement=float(report["agreement"]), fidelity=fidelity,
        signature_recorded=signature is not None, command=command, planning=planning, goal_rounds=tuple(goals))
    _write_record(out, LearnRecord(command=command, domain=domain_name, seed=seed,
                                   seeds={k: [v.start, v.stop, v.step] for k, v in seeds.items()},
                                   goal_rounds=[g.to_dict() for g in goals]))
    atomic_write_text(result.card, model_card(result, domain_name=domain_name))
    _say(progress, f"wrote {result.model} and {result.card}")
    return result


@dataclass(frozen=True)
class _Plan:
    config: Any  # a TrainConfig (PyTorch is imported lazily)
    rate: float


def _budget_steps(rate: float, seconds_left: float) -> int:
    """Training steps for what is left of a budget (seconds) at ``rate`` steps per second:
    :data:`TRAIN_SHARE` of it, at least :data:`MIN_STEPS`."""
    return max(MIN_STEPS, int(rate * seconds_left * TRAIN_SHARE))


def round_ends(total: int, rounds: int) -> list[int]:
    """The training step each of ``rounds`` rounds ends at, for ``total`` steps in all: the first
    after :data:`FIRST_ROUND_SHARE` of them (at least one step), the others evenly after it,
    the last at ``total``."""
    if rounds <= 1:
        return [total]
    first = min(total, max(1, int(total * FIRST_ROUND_SHARE)))
    return [first + (total - first) * k // (rounds - 1) for k in range(rounds)]


def goal_round(make_env: Callable[[int], Environment], *, out: Path, data_dir: Path, seeds: Iterator[int],
               seconds: float, episodes: int, index: int, after_step: int, schema: LearnedSchema, max_objects: int,
               domain: str, config: PlannerConfig, progress: Progress | None) -> GoalRound:
    """Goal-directed collection with the model trained so far: export it, play bounded
    ``planner solve`` episodes on the training seeds ``seeds`` yields (until ``seconds`` have
    passed or ``episodes`` were played; an episode under way is finished), and append their
    real steps to ``data_dir/train.jsonl`` (divergences weighted). The episodes go to
    ``data_dir/goal-<index>.jsonl`` (replaced). :func:`learn` goes on through the training
    seeds from round to round and plays at most as many episodes as there are seeds, so a
    round plays each seed at most once."""
    started = time.perf_counter()
    _say(progress, f"goal-directed collection {index}: exporting the model after {after_step} steps")
    _finish(out, data_dir, progress)
    log = data_dir / f"goal-{index}.jsonl"
    log.unlink(missing_ok=True)
    deadline = started + seconds

    def timed() -> Iterator[int]:
        for _ in range(episodes):
            if time.perf_counter() >= deadline:
                return
            yield next(seeds)

    planning = evaluate_planning(make_env, out / "model-q8_0.gguf", seeds=timed(),
                                 config=config.updated(agent={"max_replans": GOAL_REPLANS}), log_path=log)
    steps = divergences = records = 0
    skipped: str | None = None
    try:
        folded = fold_logs([log], domain=domain, predicates=dict(schema.predicates), actions=dict(schema.actions),
                           max_objects=max_objects, objects_for=environment_objects(make_env))
    except ExperienceError as exc:
        skipped = str(exc).splitlines()[0]
    else:
        with JsonlLog(data_dir / "train.jsonl") as sink:
            for rec in folded.records:
                sink.write(rec)
        steps, divergences, records = folded.steps, folded.divergences, len(folded.records)
    result = GoalRound(after_step=after_step, planning=planning, log=log, steps=steps, divergences=divergences,
                       records=records, seconds=time.perf_counter() - started, skipped=skipped)
    _say(progress, "  " + result.line())
    return result


def _plan_training(records: Sequence[TransitionRecord], schema: LearnedSchema, *, started: float, minutes: float,
                   steps: int | None, seed: int, threads: int, progress: Progress | None,
                   reserve: float = 0.0, device: str = "cpu") -> _Plan:
    """Model size from the data, steps from what is left of the budget at the measured rate
    once ``reserve`` seconds (goal-directed collection) are set aside."""
    from planner.training.data import encode_records
    from planner.training.train import TrainConfig
    from planner.world.codec import domain_vocabulary

    max_objects = max(len(r.objects) for r in records)
    vocab = domain_vocabulary(schema.predicates, schema.actions, max_objects)
    shape = choose_shape(len(vocab), choose_context(records), len(records))
    examples = encode_records(records[:2000], vocab, schema.predicates, schema.actions, max_objects)
    probe = TrainConfig(steps=1, batch_size=BATCH_SIZE, threads=threads, shape=shape, max_objects=max_objects,
                        device=device, loader_workers=_loader_workers(device))
    rate = measure_rate(examples, vocab, probe, schema.predicates, schema.actions)
    left = minutes * 60 - (time.perf_counter() - started) - reserve
    chosen = steps if steps is not None else _budget_steps(rate, left)
    _say(progress, f"model: width {shape.dim}, {shape.n_layers} blocks, context {shape.context}, {max_objects} "
                   f"objects, vocabulary {len(vocab)}; {rate:.1f} steps/s measured -> {chosen} steps")
    config = replace(probe, steps=chosen, seed=seed, warmup=min(200, max(1, chosen // 10)),
                     checkpoint_every=max(1, chosen // 4), eval_every=chosen)
    return _Plan(config, rate)


def _train(plan: _Plan, *, out: Path, data_dir: Path, predicates: Mapping[str, int], actions: Mapping[str, int],
           signature: dict[str, Any] | None, domain: str, progress: Progress | None, resume: bool = False,
           first: int = 0, train_file: Path | None = None, until: int | None = None) -> dict[str, Any]:
    """Train up to step ``until`` (default ``plan.config.steps``, whose schedule is followed
    either way; from ``first``, the checkpoint's step, when ``resume``) on ``train_file``
    (default ``data_dir/train.jsonl``), saying the loss at each quarter of the steps run."""
    from planner.training.train import train

    total = plan.config.steps if until is None else until
    marks = {first + max(1, (total - first) * q // 4) for q in range(1, 5)}

    def tick(step: int, info: Mapping[str, float]) -> None:
        if step in marks:
            _say(progress, f"  training step {step}/{total}: loss {info['loss']:.4f}")

    val = data_dir / "val.jsonl"
    _say(progress, f"training {total} steps" if not resume else f"training from step {first} to {total}")
    return train(train_path=train_file or data_dir / "train.jsonl", val_path=val if val.is_file() else None,
                 out_dir=out, predicates=predicates, actions=actions, domain=domain, signature=signature,
                 config=plan.config, resume=resume, progress=tick, stop_at=until)


def _finish(out: Path, data_dir: Path, progress: Progress | None) -> dict[str, Any]:
    from planner.training.export import comparison_log, finish_model

    val = data_dir / "val.jsonl"
    report = finish_model(out, data_path=comparison_log(val, data_dir / "train.jsonl"), sample=300)
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


def _planning(make_env: Callable[[int], Environment], model: Path, seeds: Sequence[int], config: PlannerConfig,
              progress: Progress | None) -> PlanningReport:
    """Planning success of ``model``: one episode per seed of ``seeds``."""
    _say(progress, f"planning: one episode on each of {len(seeds)} held-out test seeds")
    report = evaluate_planning(make_env, model, seeds=seeds, config=config)
    _say(progress, "  " + report.line())
    return report


def _limits(config: Mapping[str, Any]) -> str:
    """``beam search, at most 100 real steps and 20 replans, 5 s per search``."""
    search, agent = config.get("search", {}), config.get("agent", {})
    limit = search.get("time_limit_s")
    per_search = f", {limit:g} s per search" if limit else ""
    return (f"{search.get('algorithm', '?')} search, at most {agent.get('max_steps', '?')} real steps and "
            f"{agent.get('max_replans', '?')} replans{per_search}")


def planning_text(report: PlanningReport, *, what: str = "held-out seeds") -> str:
    """``Solved 2/3 held-out seeds (66.7%), mean plan length 6.5 real steps …`` for a card."""
    length = ("n/a (none solved)" if math.isnan(report.mean_plan_length)
              else f"{report.mean_plan_length:.1f} real steps (solved episodes)")
    mean_steps = "n/a" if math.isnan(report.mean_steps) else f"{report.mean_steps:.1f}"
    errors = f"; {report.errors} ended by an error" if report.errors else ""
    return (f"Solved {report.solved}/{report.total} {what} ({report.seeds_text()}"
            f"{f', {report.solve_rate:.1%}' if report.total else ''}), mean plan length {length}, mean real steps "
            f"{mean_steps}, {report.model_calls:,} model calls{errors}: one `planner solve` episode per seed "
            f"({_limits(report.config)}).")


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
        "## Planning on held-out test seeds", "", planning_text(report.planning), "",
    ]
    if report.goal_rounds:
        lines += ["## Goal-directed experience", "",
                  "Between training rounds the model trained so far played `planner solve` episodes on training "
                  "seeds; their real steps (divergences weighted "
                  f"{DIVERGENCE_WEIGHT}x, as `--improve` does) were added to the training data:", "",
                  "| after step | episodes | solved | real steps | diverged | records added | seconds |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {g.after_step} | {g.planning.total} | {g.planning.solved} | {g.steps} | {g.divergences} | "
                  f"{g.records} | {g.seconds:.0f} |" for g in report.goal_rounds]
        lines += [f"\nNothing folded after step {g.after_step}: {g.skipped}" for g in report.goal_rounds if g.skipped]
        lines.append("")
    return "\n".join(lines)


# -- what a run records for programs ---------------------------------------------------------------
class LearnRecord(BaseModel):
    """``out_dir/learn.json``: what :func:`learn` ran, for :func:`improve` and other programs.

    Attributes:
        command: the command line that reproduces the run (empty when called from Python).
        domain: the domain name in the records and the GGUF.
        seed: the seed of exploration, weights and batches.
        seeds: split → ``[start, stop, step]`` of its environment seeds (a Python ``range``).
        goal_rounds: one entry per goal-directed collection between training rounds.
        improvements: one entry per :func:`improve` run, oldest first (the card's numbers).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    command: str = ""
    domain: str = "env"
    seed: int = 0
    seeds: dict[str, list[int]] = {}
    goal_rounds: list[dict[str, Any]] = []
    improvements: list[dict[str, Any]] = []

    def split(self, name: str) -> range | None:
        """The seeds of split ``name`` (``None``: not recorded)."""
        spec = self.seeds.get(name)
        if not spec or len(spec) != 3 or spec[2] == 0:
            return None
        return range(*spec)


def _write_record(out: Path, record: LearnRecord) -> None:
    atomic_write_text(out / RECORD_FILE, json.dumps(record.model_dump(mode="json"), indent=2) + "\n")


def read_learn_record(out_dir: str | Path) -> LearnRecord | None:
    """``out_dir/learn.json`` (``None`` when there is none: a folder of an older ``planner
    learn``). :class:`LearnError` naming the file when it is not a record."""
    path = Path(out_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return LearnRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, ValidationError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LearnError(f"{path} is not a planner learn record: {reason}") from None


_REPRODUCE = re.compile(r"^## Reproduce\s*\n\s*```\s*\n(?P<command>[^\n]*)\n```", re.MULTILINE)


def recorded_command(out_dir: str | Path) -> list[str]:
    """The command line that made ``out_dir`` (split as a shell would): from ``learn.json``,
    else from the card's "Reproduce" block; empty when neither records one."""
    record = read_learn_record(out_dir)
    text = record.command if record is not None else ""
    card = Path(out_dir) / "README.md"
    if not text and card.is_file():
        found = _REPRODUCE.search(card.read_text(encoding="utf-8", errors="replace"))
        text = found.group("command").strip() if found else ""
        text = "" if text.startswith("(") else text  # "(called from Python)"
    try:
        return shlex.split(text)
    except ValueError:
        return []


# -- improving a learned model with real experience ------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """One model measured on held-out data and seeds.

    Attributes:
        model: the GGUF file measured.
        steps: its training steps.
        fidelity: fidelity on the test split's transitions.
        planning: planning success on the held-out test seeds.
        seconds: wall time of both measurements (seconds).
    """

    model: Path
    steps: int
    fidelity: FidelityReport
    planning: PlanningReport
    seconds: float


@dataclass(frozen=True)
class ImproveReport:
    """What :func:`improve` did.

    Attributes:
        out_dir: the folder of the learned model.
        model: the new model (``out_dir/model-q8_0.gguf``).
        kept: the model before, kept (``out_dir/model-q8_0.before.gguf``).
        card: the model card, with its "Improvement" section.
        logs: the episode logs folded in.
        folded: what the logs gave (steps, divergences, weight, steps already known).
        records_before, records_after: training records before and after folding in.
        rate: measured training steps per second.
        train_seconds: training time of this run (seconds).
        before, after: the old and the new model on the same held-out data and seeds.
        total_seconds: the whole run's wall time (seconds).
        command: the command that reproduces the run.
    """

    out_dir: Path
    model: Path
    kept: Path
    card: Path
    logs: tuple[Path, ...]
    folded: FoldedExperience
    records_before: int
    records_after: int
    rate: float
    train_seconds: float
    before: Measurement
    after: Measurement
    total_seconds: float
    command: str


def before_path(path: Path) -> Path:
    """``model-q8_0.gguf`` → ``model-q8_0.before.gguf``: where :func:`improve` keeps a file."""
    return path.with_name(path.stem + BEFORE + path.suffix)


def _copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    with atomic_output(dst) as tmp:
        shutil.copyfile(src, tmp)


def _measure(make_env: Callable[[int], Environment], model: Path, *, steps: int, test_path: Path,
             seeds: Sequence[int], config: PlannerConfig, progress: Progress | None, label: str) -> Measurement:
    started = time.perf_counter()
    _say(progress, f"measuring the model {label} ({model.name})")
    fidelity = _fidelity(model, test_path, progress)
    planning = _planning(make_env, model, seeds, config, progress)
    return Measurement(model=model, steps=steps, fidelity=fidelity, planning=planning,
                       seconds=time.perf_counter() - started)


def _checkpoint_step(path: Path) -> int:
    """Training steps the checkpoint ``path`` holds (:class:`CheckpointError` naming it)."""
    import torch

    from planner.training.errors import CheckpointError

    try:
        return int(torch.load(path, weights_only=False, map_location="cpu")["step"])
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"cannot read the training step of {path}: {reason}") from None


def improve_inputs(out: Path) -> dict[str, Path]:
    """The files of a ``planner learn`` folder :func:`improve` needs (key → path);
    :class:`LearnError` naming the folder and what is missing."""
    need = {"model": out / "model-q8_0.gguf", "f32": out / "model-f32.gguf", "checkpoint": out / "checkpoint.pt",
            "summary": out / "train-summary.json", "train": out / "data" / "train.jsonl",
            "test": out / "data" / "test.jsonl"}
    if not out.is_dir():
        raise LearnError(f"--improve {out}: no such folder (a folder written by planner learn --out)")
    missing = [str(p.relative_to(out)) for p in need.values() if not p.is_file()]
    if missing:
        raise LearnError(f"--improve {out} is not a folder written by planner learn: missing {', '.join(missing)}")
    return need


def _resumable_precision(out: Path, precision: str, device: str) -> str:
    """The arithmetic a run trained with (``precision``, as its summary records it), which its
    checkpoint trains on only with. :class:`LearnError` when ``device`` cannot do it (a run
    trained with TensorFloat-32 on a GPU, improved on the CPU) or the summary records none
    that exists."""
    from planner.training.train import PRECISIONS, resolve_device, resolve_precision

    if precision not in PRECISIONS or precision == "auto":
        raise LearnError(f"{out / 'train-summary.json'} records precision {precision!r}, not one of fp32, tf32, "
                         "bf16: not a summary planner learn wrote")
    where = resolve_device(device)
    if precision == "tf32" and where.type != "cuda":
        raise LearnError(f"{out} was trained on a GPU with TensorFloat-32 arithmetic (tf32), which its checkpoint "
                         f"trains on only with, and device {device!r} is the CPU: improve it on a machine with "
                         "a CUDA GPU, with --device cuda")
    return resolve_precision(precision, where)


def _train_summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["shape"] = LlamaShape(**data["shape"])
        return dict(data)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError) as exc:
        raise LearnError(f"{path} is not a training summary: {type(exc).__name__}: {exc}") from None


def improve(
    make_env: Callable[[int], Environment],
    *,
    model_dir: str | Path,
    logs: Sequence[str | Path],
    minutes: float = 10.0,
    steps: int | None = None,
    test_seeds: range | None = None,
    seed: int | None = None,
    threads: int = 2,
    progress: Progress | None = None,
    command: str = "",
    planning_config: PlannerConfig = DEFAULT_CONFIG,
    device: str = "cpu",
) -> ImproveReport:
    """Fold the real steps of episode logs into a learned model's data and continue training;
    see the module's description.

    Args:
        make_env: builds the environment of a seed (planning episodes, and the objects the
            model was bound to in a logged episode).
        model_dir: a folder written by :func:`learn` (``data/``, ``checkpoint.pt``,
            ``train-summary.json``, ``model-f32.gguf``, ``model-q8_0.gguf``, ``README.md``).
        logs: episode logs of :class:`~planner.agent.Agent` (``planner solve --log``).
        minutes: the whole run's time budget (minutes); sets the training steps, after the
            measurement of the old model (the new one's is assumed to take as long).
        steps: training steps to add (``None``: chosen from ``minutes``).
        test_seeds: the held-out seeds to plan on (``None``: the test split recorded in
            ``learn.json``); the first :data:`PLANNING_SEEDS` are played, before and after.
        seed: seed of the new batches (``None``: the training run's).
        threads: CPU threads for training.
        progress: receives one line per stage.
        command: the command line of this run, quoted on the card.
        planning_config: the search and agent limits of the planning episodes.
        device: where PyTorch trains (as :func:`learn`'s).

    Raises :class:`LearnError` (before any work) without PyTorch, for a training device it
    cannot use, for a bad budget or a folder
    that was not written by :func:`learn`; :class:`~planner.data.experience.ExperienceError`
    for logs without steps or with words outside the model's vocabulary and
    :class:`~planner.io.CorruptLogError` for a malformed log (both before anything is
    written); and what training raises.
    """
    from planner.training.data import check_fits, encode_records
    from planner.training.train import TrainConfig, batch_arguments
    from planner.world.codec import CODEC_VERSION, domain_vocabulary
    from planner.world.gguf_io import check_codec, read_model_info

    started = time.perf_counter()
    _require_torch()
    _check_device(device)
    _check_budget(minutes, steps)
    out = Path(model_dir)
    files = improve_inputs(out)
    if not logs:
        raise LearnError("improving a model needs at least one episode log (planner solve --log LOG)")
    record = read_learn_record(out)
    if test_seeds is None:
        test_seeds = record.split("test") if record is not None else None
        if test_seeds is None:
            raise LearnError(f"{out} records no held-out test seeds ({RECORD_FILE} missing); give them")
    planning_seeds = list(test_seeds)[:PLANNING_SEEDS]
    info = read_model_info(files["model"])
    check_codec(info)  # a model this project cannot run is refused before the logs are read
    summary = _train_summary(files["summary"])
    shape: LlamaShape = summary["shape"]
    precision = _resumable_precision(out, str(summary.get("precision", "fp32")), device)
    domain = info.domain or (record.domain if record is not None else "env")
    existing = read_records(files["train"])
    known = {(r.episode, r.step) for r in existing if r.episode.startswith("log:")}
    folded = fold_logs(logs, domain=domain, predicates=info.predicates, actions=info.actions,
                       max_objects=info.max_objects, known=known, objects_for=environment_objects(make_env))
    _say(progress, f"logs: {_count(folded.steps, 'new real step')} from {_count(folded.episodes, 'episode')} "
                   f"({folded.divergences} diverged, written {folded.weight}x each; {folded.known} folded in before)")
    if not folded.records:
        raise LearnError(f"nothing new in the logs: their {folded.known} real steps are in {files['train']} "
                         "already")
    vocab = domain_vocabulary(info.predicates, info.actions, info.max_objects)
    # A model trained before word tables could be factored has free ones: its checkpoint
    # resumes only into the same kind; and it goes on in the prompt layout it learned.
    probe = TrainConfig(steps=1, batch_size=int(summary.get("batch_size", BATCH_SIZE)), threads=threads,
                        shape=shape, max_objects=info.max_objects, embeddings=str(summary.get("embeddings", "free")),
                        device=device, loader_workers=_loader_workers(device), precision=precision,
                        codec_version=info.codec_version or CODEC_VERSION)
    check_fits(encode_records(folded.records, vocab, info.predicates, info.actions, info.max_objects),
               shape.context, batch_arguments(vocab, probe, info.predicates))
    first = _checkpoint_step(files["checkpoint"])

    before = _measure(make_env, files["model"], steps=first, test_path=files["test"], seeds=planning_seeds,
                      config=planning_config, progress=progress, label="before")
    kept = before_path(files["model"])
    for key in ("model", "f32", "checkpoint"):
        _copy(files[key], before_path(files[key]))
    records = [*existing, *folded.records]
    examples = encode_records(records[-2000:], vocab, info.predicates, info.actions, info.max_objects)
    rate = measure_rate(examples, vocab, probe, info.predicates, info.actions)
    left = minutes * 60 - (time.perf_counter() - started) - before.seconds
    extra = steps if steps is not None else _budget_steps(rate, left)
    _say(progress, f"{rate:.1f} steps/s measured -> {extra} more steps")
    config = replace(probe, steps=first + extra, seed=int(summary.get("seed", 0)) if seed is None else seed,
                     warmup=min(200, max(1, first // 10)), checkpoint_every=max(1, extra // 4), eval_every=extra)
    trained_at = time.perf_counter()
    try:
        # The data are committed (train.jsonl replaced atomically) only once the new model is
        # written; a failure or an interrupt before that puts the model files back as they were.
        with atomic_output(files["train"]) as combined:
            shutil.copyfile(files["train"], combined)
            with JsonlLog(combined, fsync=False) as sink:
                for rec in folded.records:
                    sink.write(rec)
            _say(progress, f"training data: {len(existing)} -> {len(records)} records")
            _train(_Plan(config, rate), out=out, data_dir=files["train"].parent, predicates=info.predicates,
                   actions=info.actions, signature=info.signature, domain=domain, progress=progress, resume=True,
                   first=first, train_file=combined)
            train_seconds = time.perf_counter() - trained_at
            _finish(out, files["train"].parent, progress)
    except BaseException:
        for key in ("checkpoint", "f32", "model"):
            _copy(before_path(files[key]), files[key])
        raise
    after = _measure(make_env, files["model"], steps=first + extra, test_path=files["test"], seeds=planning_seeds,
                     config=planning_config, progress=progress, label="after")
    result = ImproveReport(
        out_dir=out, model=files["model"], kept=kept, card=out / "README.md", logs=tuple(Path(p) for p in logs),
        folded=folded, records_before=len(existing), records_after=len(records), rate=rate,
        train_seconds=train_seconds,
        before=before, after=after, total_seconds=time.perf_counter() - started, command=command)
    card = result.card.read_text(encoding="utf-8") if result.card.is_file() else f"# {domain}\n"
    atomic_write_text(result.card, with_section(card, "Improvement", improvement_section(result)))
    entry = {"command": command, "logs": [str(p) for p in logs], "steps": [first, first + extra],
             "records": [len(existing), len(records)], "new_steps": folded.steps,
             "divergences": folded.divergences, "weight": folded.weight,
             **{k: _row(m) for k, m in (("before", before), ("after", after))}}
    base = record or LearnRecord(command=shlex.join(recorded_command(out)), domain=domain,
                                 seed=int(summary.get("seed", 0)),
                                 seeds={"test": [test_seeds.start, test_seeds.stop, test_seeds.step]})
    _write_record(out, base.model_copy(update={"improvements": [*base.improvements, entry]}))
    _say(progress, f"wrote {result.model} (kept the model before as {kept.name}) and {result.card}")
    return result


def _row(m: Measurement) -> dict[str, Any]:
    """A measurement's headline numbers (JSON-ready; NaN as ``None``)."""
    def num(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 6)

    o = m.fidelity.overall
    return {"model": m.model.name, "steps": m.steps,
            "next_state_exact_match": num(o.get("next_state_exact_match", float("nan"))),
            "precondition_accuracy": num(o.get("precondition_accuracy", float("nan"))),
            "solved": m.planning.solved, "seeds": m.planning.total,
            "mean_plan_length": num(m.planning.mean_plan_length)}


def _count(n: int, noun: str) -> str:
    """``1 episode``, ``2 episodes``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2%}"


def improvement_section(report: ImproveReport) -> str:
    """The body of the card's "Improvement" section: the experience folded in, a row for the
    model before and after, and the command."""
    f = report.folded
    logs = ", ".join(f"`{p.name}`" for p in report.logs)
    rows = []
    for label, m in (("before", report.before), ("after", report.after)):
        o = m.fidelity.overall
        length = "n/a" if math.isnan(m.planning.mean_plan_length) else f"{m.planning.mean_plan_length:.1f}"
        name = report.kept.name if label == "before" else report.model.name
        rows.append(f"| {label} (`{name}`) | {m.steps} | {_pct(o.get('next_state_exact_match', math.nan))} | "
                    f"{_pct(o.get('precondition_accuracy', math.nan))} | {m.planning.solved}/{m.planning.total} | "
                    f"{length} |")
    transitions = int(report.before.fidelity.overall.get("transitions", 0))
    skipped = f" ({f.known} steps folded in before were skipped)" if f.known else ""
    return "\n".join([
        f"Folded in the real steps of {logs}: {_count(f.steps, 'new step')} from {_count(f.episodes, 'episode')}, "
        f"{f.divergences} of them diverged from the model's prediction and written {f.weight}x each{skipped}. "
        f"Training records {report.records_before:,} -> {report.records_after:,}; training "
        f"went on from step {report.before.steps} to {report.after.steps} ({report.train_seconds:.1f} s, "
        f"{report.rate:.1f} steps/s measured). The model before is kept as `{report.kept.name}` (with "
        f"`{before_path(Path('model-f32.gguf')).name}` and `{before_path(Path('checkpoint.pt')).name}`).", "",
        f"Both models on the same held-out test transitions ({transitions:,}) and seeds "
        f"({report.after.planning.seeds_text()}); planning: one `planner solve` episode per seed "
        f"({_limits(report.after.planning.config)}):", "",
        "| model | training steps | next-state EM | precondition | solved | mean plan length |",
        "|---|---|---|---|---|---|", *rows, "",
        "```", report.command or "(called from Python)", "```", "",
    ])


def with_section(card: str, title: str, body: str) -> str:
    """``card`` with its ``## title`` section (up to the next ``## `` heading) replaced by
    ``body``, or ``body`` appended as that section."""
    lines = card.rstrip("\n").split("\n")
    head = f"## {title}"
    if head in lines:
        start = lines.index(head)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + lines[end:]
    return "\n".join([*lines, "", head, "", body.rstrip("\n"), ""]).replace("\n\n\n", "\n\n")
