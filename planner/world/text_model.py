"""``TextObservationModel``: a GGUF model of a text-only world, run by llama.cpp.

It reads a state's text and a command and writes the observation that command produces and
whether it wins the game (the codec: :mod:`planner.world.textcodec`). Decoding is greedy and
constrained to the model's whole words (never a word prefix or byte piece), so every answer is
a sequence of known words closed by ``§done`` or ``§cont``; the candidate commands of one state
are decoded together as parallel sequences sharing the state's prefix, as the fact-delta model
does (:class:`~planner.world.decoder.Decoder`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.errors import CodecError, ContextOverflowError, ModelLoadError, WorldModelError
from planner.world.base import ModelStats
from planner.world.decoder import Answer, Decoder
from planner.world.engine import LlamaEngine, check_whole, max_sequences
from planner.world.gguf_io import ModelInfo, read_model_info
from planner.world.textcodec import (
    ACTION,
    ENDS,
    OBS,
    STATE,
    TEXT_CODEC_NAME,
    TEXT_CODEC_VERSION,
    command_words,
    parse_answer,
    state_words,
    text_words,
)
from planner.world.vocab import SPACE

WORDS_KEY = "words"
"""Where the model's training summary lists its whole words (the answer alphabet)."""


@dataclass(frozen=True)
class TextPrediction:
    """A predicted observation.

    Attributes:
        observation: the text the command is predicted to produce (words joined by spaces).
        done: whether the command is predicted to win the game.
        confidence: the probability the model gave its answer (greedy, so its likeliest one).
        unknown_words: prompt words the vocabulary lacks (read as ``<unk>``).
    """

    observation: str
    done: bool
    confidence: float
    unknown_words: int = 0


class _WordRules:
    """An answer is whole words, closed by ``§done``/``§cont`` (forced near ``max_new``)."""

    __slots__ = ("ends", "last", "n", "words")

    def __init__(self, words: np.ndarray, ends: np.ndarray, max_new: int) -> None:
        self.words = words
        self.ends = ends
        self.last = max_new - 1
        self.n = 0

    def allowed(self) -> np.ndarray:
        return self.ends if self.n >= self.last else self.words

    def push(self, token: int) -> tuple[int, ...] | None:
        self.n += 1
        return None if token in self.ends else ()


def _check_text_codec(info: ModelInfo) -> list[str]:
    """The model's whole words; :class:`ModelLoadError` unless it speaks the text codec."""
    if info.codec != TEXT_CODEC_NAME or info.codec_version != TEXT_CODEC_VERSION:
        raise ModelLoadError(f"{info.path} was made for codec {info.codec!r} version {info.codec_version}, but "
                             f"TextObservationModel speaks {TEXT_CODEC_NAME!r} version {TEXT_CODEC_VERSION}")
    words = info.training.get(WORDS_KEY)
    if not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
        raise ModelLoadError(f"{info.path} lists no vocabulary words (planner.training[{WORDS_KEY!r}])")
    return words


class TextObservationModel:
    """A text-observation GGUF model (``planner.training.text`` writes one).

    Args:
        path: the GGUF file.
        n_ctx: KV-cache cells shared by the state's prefix and the sibling commands (tokens).
        n_threads: llama.cpp CPU threads (``None``: chosen from the model's size).
        n_gpu_layers: layers offloaded to a GPU (-1: all).
        max_siblings: most commands decoded together.
        max_new: most answer tokens (an answer is closed by force at this length, or where the
            model's context ends).

    Raises :class:`ModelLoadError` for a file that is not a text-observation model and
    :class:`ConfigError` for an argument out of range.
    """

    def __init__(self, path: str | Path, *, n_ctx: int = 4096, n_threads: int | None = None, n_gpu_layers: int = 0,
                 max_siblings: int = 32, max_new: int = 320) -> None:
        check_whole("max_new", max_new, 2, 4096)
        check_whole("max_siblings", max_siblings, 1, 2**31 - 1)
        self.info = read_model_info(path)
        words = _check_text_codec(self.info)
        self.max_new = max_new
        self.stats = ModelStats()
        self._lock = threading.RLock()
        self.engine = LlamaEngine(path, n_ctx=n_ctx, n_seq_max=min(max_siblings, max_sequences() - 1) + 1,
                                  n_threads=n_threads, n_gpu_layers=n_gpu_layers)
        self.max_siblings = max(1, min(max_siblings, self.engine.n_seq_max - 1))
        self.decoder = Decoder(self.engine, stats=self.stats, max_siblings=self.max_siblings)
        index = {p: i for i, p in enumerate(self.engine.pieces())}
        missing = [w for w in words if SPACE + w not in index]
        if missing:
            self.engine.close()
            raise ModelLoadError(f"{path}: the vocabulary lacks its own words, e.g. {missing[:3]}")
        self.word_ids = {w: index[SPACE + w] for w in words}
        self._words = {i: w for w, i in self.word_ids.items()}
        prompt_only = {STATE, ACTION, OBS}
        self._answer = np.array(sorted(i for w, i in self.word_ids.items() if w not in prompt_only), dtype=np.int64)
        self._ends = np.array([self.word_ids[e] for e in ENDS], dtype=np.int64)
        self._unk = 0

    def close(self) -> None:
        self.engine.close()

    def _ids(self, words: Sequence[str]) -> tuple[list[int], int]:
        ids = [self.word_ids.get(w, self._unk) for w in words]
        return ids, sum(1 for w in words if w not in self.word_ids)

    def predict(self, state_text: str, action: str) -> TextPrediction:
        return self.predict_many(state_text, [action])[0]

    def predict_many(self, state_text: str, actions: Sequence[str]) -> list[TextPrediction]:
        """The predicted observation of each command in the state whose text is ``state_text``.

        Raises :class:`CodecError` for a command without words, :class:`ContextOverflowError`
        when the prompt and answer exceed the model's context, and :class:`WorldModelError` for
        an answer that cannot be read."""
        if not actions:
            return []
        with self._lock:
            start = time.perf_counter()
            try:
                prefix_ids, unknown = self._ids(state_words(state_text))
                prefix = [self.engine.bos, *prefix_ids]
                suffixes = []
                unknowns = []
                for action in actions:
                    ids, n = self._ids(command_words(action))
                    suffixes.append(ids)
                    unknowns.append(unknown + n)
                prompt = len(prefix) + max(len(s) for s in suffixes)
                limit = min(self.engine.n_ctx_train, self.engine.n_ctx)
                max_new = min(self.max_new, limit - prompt)  # the answer has what the context leaves
                if max_new < 2:
                    raise ContextOverflowError(f"the state's prompt ({prompt} tokens) leaves no room for an answer "
                                               f"in the model's context of {limit} tokens")

                def rules() -> _WordRules:
                    return _WordRules(self._answer, self._ends, max_new)

                answers = self.decoder.decode(prefix, suffixes, rules=rules, max_new=max_new)
                out = [self._read(a, n) for a, n in zip(answers, unknowns)]
            finally:
                self.stats.seconds += time.perf_counter() - start
            self.stats.predictions += len(out)
            return out

    def _read(self, answer: Answer, unknown: int) -> TextPrediction:
        words = [self._words[t] for t in answer.tokens]
        try:
            observation, done = parse_answer(words)
        except CodecError as exc:
            raise WorldModelError(f"unreadable answer: {exc}", raw=" ".join(words)) from None
        return TextPrediction(observation=observation, done=done, confidence=math.exp(answer.logprob),
                              unknown_words=unknown)


def observation_exact(predicted: str, real: str) -> bool:
    """Next-observation exact match: the same words (spacing and line breaks aside)."""
    return text_words(predicted) == text_words(real)
