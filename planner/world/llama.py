"""``LlamaWorldModel``: a GGUF language model, run in-process by llama.cpp, as world model.

Speed comes from four things, all measured by ``benchmarks/world_model.py``:

1. **prefix reuse** — the goal and state come first in every prompt and stay in the KV cache;
   only the action tokens and the answer are evaluated for each sibling;
2. **batched siblings** — all candidate actions of one state are decoded together, one
   sequence each, sharing the cached prefix (``mode="batched"``);
3. **early rejection** — a ``fail`` verdict ends that sequence at once, and the forced token
   after ``ok`` is fed without a decoding round of its own;
4. a **transition cache** in front (:class:`~planner.world.cache.CachedWorldModel`).

Decoding is greedy and constrained to the codec's structure (verdict, ``add`` facts, ``del``
facts, ``done``/``cont``), so answers are well formed; whether they make sense for the state is
validated afterwards. A failed validation is retried with sampling, then raises
:class:`~planner.errors.WorldModelError` with the raw text.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from planner.errors import (
    CodecError,
    ConfigError,
    ContextOverflowError,
    ModelLoadError,
    UnknownActionError,
    VocabularyError,
    WorldModelError,
)
from planner.logs import get_logger
from planner.types import Action, FactGoal, Prediction, State
from planner.world.base import ModelStats
from planner.world.codec import (
    ADD,
    CODEC_NAME,
    CODEC_VERSION,
    CONT,
    DEL,
    DONE,
    FAIL,
    MARKERS,
    OK,
    FactDeltaCodec,
)
from planner.world.engine import MAX_N_CTX, LlamaEngine, max_sequences
from planner.world.gguf_io import KEY_ACTIONS, KEY_PREDICATES, ModelInfo, read_model_info
from planner.world.vocab import SPACE, ground_words

log = get_logger(__name__)

Mode = Literal["batched", "prefix", "naive"]

_VERDICT, _ADDING, _DELETING, _FINISHED = 0, 1, 2, 3

MIN_N_CTX = 32
"""Smallest KV cache (tokens) accepted: the prompt and answer of a one-object problem need 22."""
MAX_RETRIES = 100
"""Most extra attempts for an answer that fails validation."""


@dataclass
class _Answer:
    """One sibling's answer while it is being decoded."""

    seq: int
    pos: int
    tokens: list[int] = field(default_factory=list)
    logprob: float = 0.0
    phase: int = _VERDICT
    chosen: set[int] = field(default_factory=set)


def _check_arguments(*, mode: object, max_siblings: object, retries: object, retry_temperature: object,
                     seed: object, on_invalid: object, n_ctx: object) -> None:
    """:class:`ConfigError` naming the first argument of :class:`LlamaWorldModel` out of range."""
    if mode not in ("batched", "prefix", "naive"):
        raise ConfigError(f"mode must be batched, prefix or naive, got {mode!r}")
    if on_invalid not in ("raise", "reject"):
        raise ConfigError(f"on_invalid must be 'raise' or 'reject', got {on_invalid!r}")
    for name, value, low, high in (("max_siblings", max_siblings, 1, 2**31 - 1), ("retries", retries, 0, MAX_RETRIES),
                                   ("seed", seed, 0, 2**32 - 1), ("n_ctx", n_ctx, MIN_N_CTX, MAX_N_CTX)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{name} must be a whole number in {low}..{high}, got {value!r}")
    if (isinstance(retry_temperature, bool) or not isinstance(retry_temperature, (int, float))
            or not math.isfinite(retry_temperature) or retry_temperature <= 0):
        raise ConfigError(f"retry_temperature must be a finite number > 0, got {retry_temperature!r}")


def _check_codec(info: ModelInfo) -> None:
    """:class:`ModelLoadError` unless ``info`` describes a fact-delta model this class can run."""
    if info.codec != CODEC_NAME or info.codec_version != CODEC_VERSION:
        raise ModelLoadError(
            f"{info.path} was made for codec {info.codec!r} version {info.codec_version}, "
            f"but LlamaWorldModel speaks {CODEC_NAME!r} version {CODEC_VERSION}")
    if not info.predicates or not info.actions:
        raise ModelLoadError(f"{info.path} declares no predicates or no actions ({KEY_PREDICATES}, {KEY_ACTIONS})")
    clash = sorted(set(MARKERS) & {**info.predicates, **info.actions}.keys())
    if clash:
        raise ModelLoadError(f"{info.path} names schemas like the codec's marker words: {clash}")


class LlamaWorldModel:
    """A fact-delta GGUF world model for one problem (its objects and goal).

    Args:
        path: GGUF file made for the ``fact-delta`` codec.
        objects: the problem's object names (mapped to placeholders ``x1 … xn``).
        goal: the goal the model judges ``done`` against.
        state: the problem's start state, when known: its facts are checked against the
            vocabulary and its prompt against the context at once.
        facts: further ground facts the problem can reach, checked against the vocabulary.
        actions: the problem's ground actions, when known: checked against the vocabulary.
        n_ctx: KV-cache cells shared by all sibling sequences (tokens, ``MIN_N_CTX..MAX_N_CTX``).
        n_threads: CPU threads (``None``: chosen by :func:`planner.world.engine.default_threads`
            from the model's size and the cores available to the process).
        n_gpu_layers: layers offloaded to a GPU (CUDA or Metal builds; -1 = all).
        mode: ``"batched"`` (siblings decoded together), ``"prefix"`` (one at a time, shared
            prefix kept) or ``"naive"`` (cache cleared before every prediction).
        max_siblings: most siblings decoded in one batch, at least 1 (bounded by what the
            context allows: llama.cpp's sequence limit and ``n_ctx``; read it back).
        retries: extra attempts, with sampling, for an answer that fails validation
            (``0..MAX_RETRIES``).
        retry_temperature: sampling temperature of those attempts (finite, > 0).
        seed: seeds the retry sampling (``0..2**32-1``).
        on_invalid: after the last retry, ``"raise"`` a :class:`WorldModelError`, or
            ``"reject"``: treat the action as not applicable (confidence 0), count it in
            ``stats.invalid`` and log a warning — so one bad answer cannot end a search.

    Raises :class:`~planner.errors.ConfigError` for an argument out of range,
    :class:`~planner.errors.ModelLoadError` for a file that is not a fact-delta model, and
    :class:`~planner.errors.VocabularyError` for a problem the vocabulary cannot write.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        objects: Sequence[str],
        goal: FactGoal,
        state: State | None = None,
        facts: Iterable[str] = (),
        actions: Sequence[Action] = (),
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        mode: Mode = "batched",
        max_siblings: int = 128,
        retries: int = 2,
        retry_temperature: float = 0.8,
        seed: int = 0,
        on_invalid: Literal["raise", "reject"] = "raise",
    ) -> None:
        _check_arguments(mode=mode, max_siblings=max_siblings, retries=retries, retry_temperature=retry_temperature,
                         seed=seed, on_invalid=on_invalid, n_ctx=n_ctx)
        self._path = Path(path)
        self.info: ModelInfo = read_model_info(path)
        _check_codec(self.info)
        self.codec = self._bind(objects, goal, state, facts=facts, actions=actions, n_ctx=n_ctx)
        self.goal = goal
        self.mode = mode
        self.on_invalid = on_invalid
        self.retries = retries
        self.retry_temperature = retry_temperature
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self.stats = ModelStats()
        siblings = max_siblings if mode == "batched" else 1
        self.engine = LlamaEngine(path, n_ctx=n_ctx, n_seq_max=min(siblings, max_sequences() - 1) + 1,
                                  n_threads=n_threads, n_gpu_layers=n_gpu_layers)
        # Sequence 0 holds the shared prefix; llama.cpp may have allowed fewer sequences.
        self.max_siblings = max(1, min(siblings, self.engine.n_seq_max - 1))
        pieces = self.engine.pieces()
        index = {p: i for i, p in enumerate(pieces)}
        words = list(MARKERS) + ground_words({**self.info.predicates, **self.info.actions},
                                             len(self.codec.objects))
        missing = [w for w in words if SPACE + w not in index]
        if missing:
            self.engine.close()
            raise ModelLoadError(f"{path}: vocabulary lacks the codec's words, e.g. {missing[:3]}")
        self._word_id = {w: index[SPACE + w] for w in words}
        self._id_word = {i: w for w, i in self._word_id.items()}
        self._index = index
        self._ids = {m: self._word_id[m] for m in MARKERS}
        self._cached_prefix: list[int] = []
        self._set_fact_ids()

    def _bind(self, objects: Sequence[str], goal: FactGoal, state: State | None, *, facts: Iterable[str],
              actions: Sequence[Action], n_ctx: int) -> FactDeltaCodec:
        """A codec for the problem, after checking that the vocabulary writes all of it and
        that the start state's prompt fits the context."""
        try:
            codec = FactDeltaCodec(objects=tuple(objects), predicates=self.info.predicates,
                                   actions=self.info.actions, max_objects=self.info.max_objects)
        except VocabularyError as exc:
            raise VocabularyError(f"{self._path}: {exc}", problems=exc.problems) from None
        every = {*goal.facts, *(state.facts if state is not None else ()), *facts}
        problems = codec.vocabulary_problems(facts=every, actions=[a.name for a in actions])
        if problems:
            raise VocabularyError(
                f"{self._path} (domain {self.info.domain!r}, {len(codec.objects)} of at most "
                f"{self.info.max_objects} objects) cannot write this problem", problems=problems)
        if state is not None:
            self._check_fits(codec, goal, state, n_ctx=n_ctx)
        return codec

    def _check_fits(self, codec: FactDeltaCodec, goal: FactGoal, state: State, *, n_ctx: int) -> None:
        """The prompt about ``state`` and its longest answer must fit the context."""
        need = 1 + len(codec.prefix_words(goal, state)) + 3 + self._max_new(state)
        trained = self.info.context or n_ctx
        if need > trained:
            raise ContextOverflowError(
                f"{self._path}: the start state's prompt plus up to {self._max_new(state)} answer tokens "
                f"({need}) exceeds the model's context of {trained} tokens")
        if need > n_ctx:
            raise ConfigError(f"n_ctx={n_ctx} is too small for this problem: the start state's prompt and answer "
                              f"need {need} tokens (the model was trained with {trained})")

    def _set_fact_ids(self) -> None:
        fact_words = ground_words(self.info.predicates, len(self.codec.objects))
        self._fact_ids = np.array([self._word_id[w] for w in fact_words], dtype=np.int64)

    def rebind(self, *, objects: Sequence[str], goal: FactGoal, state: State | None = None,
               facts: Iterable[str] = (), actions: Sequence[Action] = ()) -> None:
        """Serve another problem of the same domain (other objects, other goal) with the
        already loaded model. Raises :class:`VocabularyError` for too many objects or facts
        and actions (when given) the vocabulary cannot write."""
        with self._lock:
            codec = self._bind(objects, goal, state, facts=facts, actions=actions, n_ctx=self.engine.n_ctx)
            words = ground_words({**self.info.predicates, **self.info.actions}, len(codec.objects))
            self._word_id.update({w: self._index[SPACE + w] for w in words})
            self._id_word = {i: w for w, i in self._word_id.items()}
            self.codec, self.goal = codec, goal
            self._set_fact_ids()

    @classmethod
    def for_environment(cls, path: str | Path, env: Any, **kwargs: Any) -> LlamaWorldModel:
        """A model for a :class:`~planner.env.pddl.PDDLEnvironment`'s problem; checks that the
        model knows the domain's predicates and actions, and that its vocabulary writes every
        fact of the problem (start state, goal, every fact an action can touch) and every ground
        action (:class:`VocabularyError` naming what it lacks)."""
        info = read_model_info(path)
        task = env.task
        from planner.world.codec import schemas_of

        try:
            need = {**dict(task.predicates), **schemas_of(task.operators)}
        except CodecError as exc:
            raise VocabularyError(f"{path}: the problem's actions cannot be read: {exc}") from None
        have = {**info.predicates, **info.actions}
        wrong = {k: v for k, v in need.items() if have.get(k) != v}
        if wrong:
            raise VocabularyError(
                f"{path} was trained for domain {info.domain!r} and does not know "
                f"{', '.join(f'{k}/{v}' for k, v in sorted(wrong.items()))} of domain {task.domain_name!r}"
            )
        kwargs.setdefault("state", task.init)
        kwargs.setdefault("facts", task.relevant_facts)
        kwargs.setdefault("actions", [Action(name) for name in task.operators])
        return cls(path, objects=task.objects, goal=task.goal, **kwargs)

    def close(self) -> None:
        self.engine.close()

    # -- the WorldModel protocol ---------------------------------------------------------------
    def predict(self, state: State, action: Action) -> Prediction:
        return self.predict_many(state, [action])[0]

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        if not actions:
            return []
        with self._lock:
            start = time.perf_counter()
            try:
                prefix = [self.engine.bos] + [self._word_id[w] for w in self._prefix_words(state)]
                suffixes = [self._suffix(a) for a in actions]
                max_new = self._max_new(state)
                self._check_context(len(prefix), max(len(s) for s in suffixes), max_new)
                answers = self._generate(prefix, suffixes, max_new, temperature=0.0)
                state_words = frozenset(self.codec.state_words(state))
                preds = [self._finish(state, state_words, prefix, suf, ans, max_new)
                         for suf, ans in zip(suffixes, answers)]
            finally:
                self.stats.seconds += time.perf_counter() - start
            self.stats.predictions += len(preds)
            return preds

    # -- prompts -------------------------------------------------------------------------------
    def _prefix_words(self, state: State) -> list[str]:
        try:
            return self.codec.prefix_words(self.goal, state)
        except (CodecError, VocabularyError) as exc:
            raise VocabularyError(f"state cannot be written for {self._path}: {exc}") from None

    def _suffix(self, action: Action) -> list[int]:
        try:
            return [self._word_id[w] for w in self.codec.suffix_words(action)]
        except (CodecError, VocabularyError, KeyError):
            raise UnknownActionError(
                f"unknown action {action.name!r}: not in the world model's vocabulary "
                f"(actions: {', '.join(sorted(self.info.actions))}; objects: {', '.join(self.codec.objects)})"
            ) from None

    def _max_new(self, state: State) -> int:
        return 2 * len(state.facts) + 6

    def _check_context(self, prefix_len: int, suffix_len: int, max_new: int) -> None:
        need = prefix_len + suffix_len + max_new
        limit = min(self.engine.n_ctx_train, self.engine.n_ctx)
        if need > limit:
            raise ContextOverflowError(
                f"prompt of {prefix_len + suffix_len} tokens plus up to {max_new} answer tokens "
                f"({need}) exceeds the model's context of {limit} tokens"
            )

    # -- decoding ------------------------------------------------------------------------------
    def _ensure_prefix(self, prefix: list[int]) -> None:
        """Leave exactly ``prefix`` in sequence 0, evaluating only what is not cached."""
        if self.mode == "naive":
            self.engine.clear()
            self._cached_prefix = []
        cached = self._cached_prefix
        common = 0
        limit = min(len(cached), len(prefix))
        while common < limit and cached[common] == prefix[common]:
            common += 1
        if common == len(prefix) == len(cached):
            return
        self.engine.seq_rm(0, common, -1)
        self.engine.decode([(tok, pos, 0, False) for pos, tok in enumerate(prefix) if pos >= common])
        self.stats.prompt_tokens += len(prefix) - common
        self._cached_prefix = list(prefix)

    def _generate(self, prefix: list[int], suffixes: list[list[int]], max_new: int, *,
                  temperature: float) -> list[_Answer]:
        longest = max(len(s) for s in suffixes)
        per_seq = longest + max_new + 2
        room = (self.engine.n_ctx - len(prefix)) // per_seq
        # Every sibling's suffix (and later its two fed tokens) must fit one decode batch,
        # so that only the last chunk of a decode call asks for logits.
        per_batch = self.engine.n_batch // max(longest, 2)
        group = max(1, min(self.max_siblings, room, per_batch))
        answers: list[_Answer] = []
        for start in range(0, len(suffixes), group):
            self._ensure_prefix(prefix)
            answers.extend(self._generate_group(len(prefix), suffixes[start:start + group], max_new,
                                                temperature=temperature))
        return answers

    def _generate_group(self, p: int, suffixes: list[list[int]], max_new: int, *,
                        temperature: float) -> list[_Answer]:
        eng = self.engine
        answers = [_Answer(seq=j + 1, pos=p + len(s)) for j, s in enumerate(suffixes)]
        entries: list[tuple[int, int, int, bool]] = []
        for ans, suffix in zip(answers, suffixes):
            eng.seq_rm(ans.seq)
            eng.seq_cp(0, ans.seq)
            entries.extend((tok, p + k, ans.seq, k == len(suffix) - 1) for k, tok in enumerate(suffix))
        self.stats.prompt_tokens += len(entries)
        try:
            handles = eng.decode(entries)
            active = list(zip(answers, handles))
            while active:
                feed: list[tuple[int, int, int, bool]] = []
                waiting: list[_Answer] = []
                for ans, handle in active:
                    fed = self._step(ans, eng.logits(handle), max_new, temperature)
                    if ans.phase == _FINISHED:
                        continue
                    for k, tok in enumerate(fed):
                        feed.append((tok, ans.pos, ans.seq, k == len(fed) - 1))
                        ans.pos += 1
                    waiting.append(ans)
                if not feed:
                    break
                handles = eng.decode(feed)
                active = list(zip(waiting, handles))
        finally:
            for ans in answers:
                eng.seq_rm(ans.seq)
        self.stats.generated_tokens += sum(len(a.tokens) for a in answers)
        return answers

    def _allowed(self, ans: _Answer, max_new: int) -> np.ndarray:
        ids = self._ids
        if ans.phase == _VERDICT:
            return np.array([ids[OK], ids[FAIL]])
        closing = ids[DEL] if ans.phase == _ADDING else (ids[DONE], ids[CONT])
        if len(ans.tokens) >= max_new - 2:
            return np.atleast_1d(np.array(closing))
        facts = self._fact_ids
        if ans.chosen:
            facts = facts[~np.isin(facts, list(ans.chosen))]
        return np.concatenate([facts, np.atleast_1d(np.array(closing))])

    def _step(self, ans: _Answer, logits: np.ndarray, max_new: int, temperature: float) -> list[int]:
        """Choose the next token of ``ans``; return the tokens to feed back to the model."""
        if not np.isfinite(logits).all():
            words = " ".join(self._id_word.get(t, "?") for t in ans.tokens)
            raise WorldModelError("the model gave non-finite logits (NaN or infinity): its weights or "
                                  "hyperparameters are broken", raw=words)
        allowed = self._allowed(ans, max_new)
        sub = logits[allowed].astype(np.float64)
        if temperature > 0:
            z = sub / temperature
            prob = np.exp(z - z.max())
            prob /= prob.sum()
            tok = int(allowed[self._rng.choice(len(allowed), p=prob)])
        else:
            tok = int(allowed[int(np.argmax(sub))])
        top = float(logits.max())
        ans.logprob += float(logits[tok]) - (top + math.log(float(np.exp(logits - top).sum())))
        ans.tokens.append(tok)
        ids = self._ids
        if ans.phase == _VERDICT:
            if tok == ids[FAIL]:
                ans.phase = _FINISHED  # early rejection: nothing more to decode
                return []
            ans.phase = _ADDING
            ans.tokens.append(ids[ADD])  # forced: fed together with the verdict
            return [tok, ids[ADD]]
        if ans.phase == _ADDING:
            if tok == ids[DEL]:
                ans.phase = _DELETING
                ans.chosen = set()
            else:
                ans.chosen.add(tok)
            return [tok]
        if tok in (ids[DONE], ids[CONT]):
            ans.phase = _FINISHED
            return []
        ans.chosen.add(tok)
        return [tok]

    def _finish(self, state: State, state_words: frozenset[str], prefix: list[int], suffix: list[int],
                first: _Answer, max_new: int) -> Prediction:
        """Parse ``first``; on a validation failure, sample again (bounded), then raise or reject.

        Valid answers return at once; the retry machinery is built only for invalid ones."""
        with contextlib.suppress(WorldModelError):
            return self.codec.parse([self._id_word[t] for t in first.tokens], state,
                                    confidence=math.exp(first.logprob), state_words=state_words)
        answer = first
        retrying = Retrying(stop=stop_after_attempt(self.retries + 1),
                            retry=retry_if_exception_type(WorldModelError), reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats.retries += 1
                        answer = self._generate(prefix, [suffix], max_new,
                                                temperature=self.retry_temperature)[0]
                    words = [self._id_word[t] for t in answer.tokens]
                    return self.codec.parse(words, state, confidence=math.exp(answer.logprob),
                                            state_words=state_words)
        except WorldModelError as exc:
            if self.on_invalid == "raise":
                raise
            self.stats.invalid += 1
            log.debug("invalid_answer_rejected", raw=exc.raw, error=str(exc).split(" (raw")[0])
            return Prediction(applicable=False, next_state=state, confidence=0.0, raw=exc.raw)
        raise AssertionError("unreachable")  # pragma: no cover


class ProblemBinder:
    """Serves many problems of one domain with one loaded model: the first call loads it,
    later calls re-bind it to the new objects and goal (see :meth:`LlamaWorldModel.rebind`).
    Callable as ``binder(objects, goal) -> LlamaWorldModel``."""

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        self.path = path
        self.kwargs = kwargs
        self.model: LlamaWorldModel | None = None

    def __call__(self, objects: Sequence[str], goal: FactGoal) -> LlamaWorldModel:
        if self.model is None:
            self.model = LlamaWorldModel(self.path, objects=objects, goal=goal, **self.kwargs)
        else:
            self.model.rebind(objects=objects, goal=goal)
        return self.model

