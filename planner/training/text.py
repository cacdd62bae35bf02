"""Text-only worlds learned end to end: collect text transitions, train a tiny Llama model on
the text-observation codec (:mod:`planner.world.textcodec`), export GGUF, measure next-
observation exact match with llama.cpp.

Collection plays each game from its start: at every state it tries ``branches`` commands on
copies of the game (:meth:`CookingEnvironment.branch`) and records each outcome, then moves on
with the walkthrough's next command (probability ``follow``) or a random admissible one, so the
data covers states along and beside the way to winning. Records go to an append-only JSONL
file, flushed after each one.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from planner.cores import available_cores
from planner.errors import ConfigError
from planner.io import JsonlLog, atomic_write_text, read_jsonl, writable_folder
from planner.logs import get_logger
from planner.training.errors import TrainingDataError
from planner.training.model import TinyLlama
from planner.world.gguf_io import LlamaShape, quantize, write_world_model
from planner.world.text_model import WORDS_KEY, TextObservationModel, observation_exact
from planner.world.textcodec import TEXT_CODEC_NAME, TEXT_CODEC_VERSION, TEXT_MARKERS, example, text_words
from planner.world.vocab import Vocabulary

log = get_logger(__name__)


@dataclass(frozen=True)
class TextTransition:
    """One real step of a text world: the game, the state's text, the command, the observation
    it produced and whether it won the game."""

    game: int
    state: str
    action: str
    observation: str
    done: bool


def collect(make_env: Callable[[int], Any], games: Iterable[int], out_path: str | Path, *, branches: int = 4,
            follow: float = 0.7, max_steps: int = 30, seed: int = 0,
            progress: Callable[[int, int], None] | None = None) -> int:
    """Play each game of ``games`` (``make_env(game)`` builds it) and append its transitions
    to ``out_path``; returns how many were written.

    Args:
        branches: commands tried on copies of the game at each state, besides the one taken.
        follow: probability of taking the walkthrough's next command (else a random one).
        max_steps: most commands taken per game.
        seed: seeds the random choices (with the game).
    """
    if not 0.0 <= follow <= 1.0 or branches < 0 or max_steps < 1:
        raise ConfigError(f"follow must lie in 0..1, branches >= 0, max_steps >= 1; got {follow}, {branches}, "
                          f"{max_steps}")
    written = 0
    with JsonlLog(out_path, fsync=False) as out:
        for game in games:
            rng = random.Random(f"{seed}:{game}")
            env = make_env(game)
            state, _ = env.reset(seed=game)
            for _ in range(max_steps):
                actions = list(env.candidate_actions(state))
                if not actions:
                    break
                for action in rng.sample(actions, min(branches, len(actions))):
                    result = env.branch().step(action)
                    out.write(asdict(_transition(game, state, action, result)))
                    written += 1
                walk = env.walkthrough()
                action = walk[0] if walk and rng.random() < follow else rng.choice(actions)
                result = env.step(action)
                out.write(asdict(_transition(game, state, action, result)))
                written += 1
                state = result.state
                if result.terminated or result.truncated:
                    break
            if progress is not None:
                progress(game, written)
    return written


def _transition(game: int, state: Any, action: Any, result: Any) -> TextTransition:
    won = bool(result.info.get("won", result.terminated))
    return TextTransition(game=game, state=state.text, action=action.name,
                          observation=str(result.info.get("observation", "")), done=won)


def read_transitions(path: str | Path, *, limit: int | None = None) -> list[TextTransition]:
    """The transitions of a file written by :func:`collect`."""
    try:
        return [TextTransition(**r) for r in read_jsonl(path, limit=limit)]
    except TypeError as exc:
        raise TrainingDataError(f"{path} holds a record that is not a text transition: {exc}") from None


def build_vocabulary(transitions: Iterable[TextTransition], *, min_count: int = 1) -> Vocabulary:
    """The markers and every word seen at least ``min_count`` times, most frequent first."""
    counts: Counter[str] = Counter()
    for t in transitions:
        counts.update(text_words(t.state))
        counts.update(text_words(t.action))
        counts.update(text_words(t.observation))
    words = [w for w, c in counts.most_common() if c >= min_count and w not in TEXT_MARKERS]
    return Vocabulary(tuple([*TEXT_MARKERS, *words]))


@dataclass(frozen=True)
class Encoded:
    tokens: np.ndarray
    start: int


def encode(transitions: Iterable[TextTransition], vocab: Vocabulary, *, context: int) -> tuple[list[Encoded], int]:
    """Token sequences (begin-of-sequence, prompt, answer) and how many did not fit ``context``
    (left out). Unknown prompt words become ``<unk>``; an answer with an unknown word is left
    out too (the model could never write it)."""
    ids = vocab.word_ids
    out: list[Encoded] = []
    skipped = 0
    for t in transitions:
        ex = example(t.state, t.action, t.observation, t.done)
        if any(w not in ids for w in ex.answer) or 1 + len(ex.prompt) + len(ex.answer) > context:
            skipped += 1
            continue
        seq = [vocab.bos_id, *(ids.get(w, 0) for w in ex.prompt), *(ids[w] for w in ex.answer)]
        out.append(Encoded(np.array(seq, dtype=np.int64), 1 + len(ex.prompt)))
    return out, skipped


def _batch(examples: Sequence[Encoded], picks: np.ndarray, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(examples[i].tokens) for i in picks)
    tokens = np.full((len(picks), width), pad, dtype=np.int64)
    targets = np.full((len(picks), width), -100, dtype=np.int64)
    for row, i in enumerate(picks):
        ex = examples[i]
        n = len(ex.tokens)
        tokens[row, :n] = ex.tokens
        targets[row, ex.start - 1:n - 1] = ex.tokens[ex.start:]
    return torch.from_numpy(tokens), torch.from_numpy(targets)


@dataclass(frozen=True)
class TextTrainConfig:
    """Settings of :func:`train_text`: the shape; ``minutes`` of training and at most
    ``max_steps`` steps (after ``warmup`` steps the learning rate follows a cosine from ``lr``
    to ``min_lr`` over the time budget, or over the steps when they run out first: a time-
    budgeted run is not step-for-step reproducible on a busy machine); ``batch_size``;
    ``seed``; ``threads``."""

    shape: LlamaShape = field(default_factory=lambda: LlamaShape(dim=128, n_layers=4, n_heads=4, ffn_dim=512,
                                                                 context=384))
    minutes: float = 20.0
    max_steps: int = 100_000
    batch_size: int = 16
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 100
    seed: int = 0
    threads: int = 2


def train_text(train: Sequence[TextTransition], out_dir: str | Path, *, config: TextTrainConfig = TextTrainConfig(),
               domain: str = "text", progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train a text-observation model on ``train``; write ``out_dir/model-f32.gguf`` and
    ``model-q8_0.gguf`` and return the training summary."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, min(config.threads, available_cores())))
    out = Path(out_dir)
    writable_folder(out)  # a folder that cannot be written fails now, not at the first checkpoint
    vocab = build_vocabulary(train)
    examples, skipped = encode(train, vocab, context=config.shape.context)
    if not examples:
        raise TrainingDataError(f"no training transition fits the context of {config.shape.context} tokens")
    model = TinyLlama(config.shape, len(vocab))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=0.01)
    rng = np.random.default_rng(config.seed)
    budget = config.minutes * 60.0
    started = time.perf_counter()
    step = 0
    loss_value = math.nan
    while step < config.max_steps:
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            break
        # warm-up by steps, then a cosine over the time budget (or the step limit, whichever is nearer)
        frac = max(elapsed / budget, step / config.max_steps)
        lr = (config.lr * (step + 1) / config.warmup if step < config.warmup
              else config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(1.0, frac))))
        for group in opt.param_groups:
            group["lr"] = lr
        tokens, targets = _batch(examples, rng.integers(len(examples), size=config.batch_size), vocab.eos_id)
        loss = model.answer_loss(tokens, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_value = loss.item()
        if progress is not None:
            progress(step, loss_value)
    seconds = time.perf_counter() - started
    summary = {
        "domain": domain, "codec": TEXT_CODEC_NAME, "train_transitions": len(train),
        "train_sequences": len(examples), "left_out": skipped, "words": list(vocab.words), "pieces": len(vocab),
        "steps": step, "batch_size": config.batch_size, "train_seconds": round(seconds, 1),
        "final_loss": round(loss_value, 4), "params": model.n_params(), "shape": asdict(config.shape),
    }
    f32 = write_world_model(out / "model-f32.gguf", vocab=vocab, shape=config.shape, weights=model.gguf_weights(),
                            codec=TEXT_CODEC_NAME, codec_version=TEXT_CODEC_VERSION, predicates={}, actions={},
                            max_objects=1, domain=domain, training=summary, name=f"{domain} text world model")
    quantize(f32, out / "model-q8_0.gguf", kind="q8_0")
    brief = {k: v for k, v in summary.items() if k != WORDS_KEY}
    atomic_write_text(out / "train-summary.json", json.dumps(brief, indent=2) + "\n")
    return summary


@dataclass(frozen=True)
class TextFidelity:
    """Next-observation exact match of a text model on held-out transitions."""

    transitions: int
    exact: int
    done_right: int
    unknown_answer_words: int
    by_verb: dict[str, tuple[int, int]]
    seconds: float

    @property
    def exact_rate(self) -> float:
        return self.exact / max(self.transitions, 1)

    def table(self) -> str:
        lines = [f"next-observation exact match: {self.exact}/{self.transitions} = {100 * self.exact_rate:.2f}%",
                 f"done (won) right: {100 * self.done_right / max(self.transitions, 1):.2f}%",
                 f"observations holding a word the model does not know: {self.unknown_answer_words}",
                 f"{'command':<12} {'exact':>7} {'of':>6} {'rate':>8}"]
        for verb, (ok, n) in sorted(self.by_verb.items(), key=lambda kv: -kv[1][1]):
            lines.append(f"{verb:<12} {ok:>7} {n:>6} {100 * ok / n:>7.1f}%")
        return "\n".join(lines)


def evaluate_text(model: TextObservationModel, transitions: Sequence[TextTransition]) -> TextFidelity:
    """Exact match of every transition's observation, the commands of one state asked together."""
    by_state: dict[str, list[TextTransition]] = defaultdict(list)
    for t in transitions:
        by_state[t.state].append(t)
    exact = done_right = unknown = 0
    verbs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    known = set(model.word_ids)
    start = time.perf_counter()
    for state, group in by_state.items():
        preds = model.predict_many(state, [t.action for t in group])
        for t, p in zip(group, preds):
            ok = observation_exact(p.observation, t.observation)
            exact += ok
            done_right += p.done == t.done
            unknown += any(w not in known for w in text_words(t.observation))
            verb = (text_words(t.action) or ["?"])[0]
            verbs[verb][0] += ok
            verbs[verb][1] += 1
    return TextFidelity(transitions=len(transitions), exact=exact, done_right=done_right,
                        unknown_answer_words=unknown, by_verb={k: (v[0], v[1]) for k, v in verbs.items()},
                        seconds=time.perf_counter() - start)
