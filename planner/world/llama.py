"""``LlamaWorldModel``: a GGUF language model, run in-process by llama.cpp, as world model.

This module is the fact-delta adapter: it writes states and actions as token ids through the
codec, constrains each answer to the codec's structure (verdict, ``add`` facts, ``del`` facts,
``done``/``cont``) and validates it. Decoding itself — prefix reuse, batched siblings,
early stop — is :class:`~planner.world.decoder.Decoder`'s. Speed comes from four things, all
measured by ``benchmarks/world_model.py``:

1. **prefix reuse** — the goal and state come first in every prompt and stay in the KV cache;
   only the action tokens and the answer are evaluated for each sibling;
2. **batched siblings** — all candidate actions of one state are decoded together, one
   sequence each, sharing the cached prefix (``mode="batched"``);
3. **early rejection** — a ``fail`` verdict ends that sequence at once, and the forced token
   after ``ok`` is fed without a decoding round of its own;
4. a **transition cache** in front (:class:`~planner.world.cache.CachedWorldModel`).

Decoding is greedy, so answers are well formed; whether they make sense for the state is
validated afterwards. A failed validation is retried with sampling, then raises
:class:`~planner.errors.WorldModelError` with the raw text.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from planner.errors import (
    CodecError,
    ConfigError,
    ContextOverflowError,
    ModelLoadError,
    ServerError,
    UnknownActionError,
    VocabularyError,
    WorldModelError,
)
from planner.logs import get_logger
from planner.types import Action, FactGoal, Prediction, State
from planner.world.base import ModelStats
from planner.world.codec import (
    ADD,
    CODEC_VERSION,
    CONT,
    DEL,
    DONE,
    FAIL,
    MARKERS,
    OK,
    FactDeltaCodec,
    parse_atom,
)
from planner.world.decoder import Answer, Decoder
from planner.world.engine import MAX_N_CTX, LlamaEngine, check_whole, max_sequences
from planner.world.gguf_io import ModelInfo, check_codec, read_model_info
from planner.world.retry import retry_invalid
from planner.world.vocab import SPACE, ground_words
from planner.world.votes import MAX_VOTES, VOTE_BELOW, decided, numberings, tally, winner

log = get_logger(__name__)

Mode = Literal["batched", "prefix", "naive"]

MIN_N_CTX = 32
"""Smallest KV cache (tokens) accepted: the prompt and answer of a one-object problem need 22."""
MAX_RETRIES = 100
"""Most extra attempts for an answer that fails validation."""


@dataclass(frozen=True)
class _AnswerIds:
    """Token ids of a fact-delta answer's words, for the problem the model is bound to."""

    ok: int
    add: int
    delete: int
    facts: np.ndarray
    verdicts: np.ndarray
    close_added: np.ndarray
    close_removed: np.ndarray
    ends: frozenset[int]


class _FactDeltaRules:
    """One answer's structure: ``ok`` or ``fail`` (which ends it: early rejection); after
    ``ok`` the forced ``add``, facts added, ``del``, facts removed, then ``done`` or ``cont``.

    With ``absent`` and ``held`` the facts that do not hold and those that hold, the answer is
    kept consistent with its state: only absent facts may be added and only held facts
    removed, none twice. An applicable action may change nothing (switching on a lamp that is
    already on), so both lists may stay empty — unless ``must`` is ``"add"`` (at least one fact
    added) or ``"del"`` (nothing added, at least one fact removed). Without (every fact in both)
    only the structure is kept. Near ``max_new`` tokens only the closing word is allowed.
    """

    __slots__ = ("absent", "chosen", "held", "ids", "last", "must", "n", "phase")

    def __init__(self, ids: _AnswerIds, max_new: int, absent: np.ndarray, held: np.ndarray, *,
                 must: Literal["add", "del"] | None = None) -> None:
        self.ids = ids
        self.absent = absent  # fact ids that do not hold: what may be added
        self.held = held  # fact ids that hold: what may be removed
        self.last = max_new - 2  # once the answer has this many tokens, close the list
        self.n = 0  # tokens in the answer so far
        self.phase = 0  # 0 verdict, 1 adding, 2 deleting
        self.chosen: set[int] = set()
        self.must = must

    def allowed(self) -> np.ndarray:
        ids = self.ids
        if self.phase == 0:
            return ids.verdicts
        closing = ids.close_added if self.phase == 1 else ids.close_removed
        if self.n >= self.last:
            return closing
        facts = self.absent if self.phase == 1 else self.held
        if self.chosen:
            facts = facts[~np.isin(facts, list(self.chosen))]
        if self.must == ("add" if self.phase == 1 else "del") and not self.chosen and len(facts):
            return facts  # the change this answer must make
        if self.must == "del" and self.phase == 1:
            return closing  # nothing added: a removal only
        return np.concatenate([facts, closing])

    def push(self, token: int) -> tuple[int, ...] | None:
        ids = self.ids
        self.n += 1
        if self.phase == 0:
            if token != ids.ok:
                return None
            self.phase = 1
            self.n += 1
            return (ids.add,)
        if self.phase == 1 and token == ids.delete:
            self.phase = 2
            self.chosen = set()
            return ()
        if self.phase == 2 and token in ids.ends:
            return None
        self.chosen.add(token)
        return ()


def _check_arguments(*, mode: object, max_siblings: object, retries: object, retry_temperature: object,
                     seed: object, on_invalid: object, n_ctx: object, consistent: object,
                     votes: object = 1, vote_below: object = VOTE_BELOW) -> None:
    """:class:`ConfigError` naming the first argument of :class:`LlamaWorldModel` out of range."""
    if not isinstance(consistent, bool):
        raise ConfigError(f"consistent must be True or False, got {consistent!r}")
    if mode not in ("batched", "prefix", "naive"):
        raise ConfigError(f"mode must be batched, prefix or naive, got {mode!r}")
    if on_invalid not in ("raise", "reject"):
        raise ConfigError(f"on_invalid must be 'raise' or 'reject', got {on_invalid!r}")
    for name, value, low, high in (("max_siblings", max_siblings, 1, 2**31 - 1), ("retries", retries, 0, MAX_RETRIES),
                                   ("seed", seed, 0, 2**32 - 1), ("n_ctx", n_ctx, MIN_N_CTX, MAX_N_CTX),
                                   ("votes", votes, 1, MAX_VOTES)):
        check_whole(name, value, low, high)
    if (isinstance(vote_below, bool) or not isinstance(vote_below, (int, float))
            or not math.isfinite(vote_below) or not 0 < vote_below <= 1):
        raise ConfigError(f"vote_below must be a number in (0, 1], got {vote_below!r}")
    if (isinstance(retry_temperature, bool) or not isinstance(retry_temperature, (int, float))
            or not math.isfinite(retry_temperature) or retry_temperature <= 0):
        raise ConfigError(f"retry_temperature must be a finite number > 0, got {retry_temperature!r}")


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
            ``stats.invalid`` and log it — so one bad answer cannot end a search.
        consistent: decode only answers consistent with the state (added facts absent,
            removed facts present), so an answer can
            be wrong but hardly ever invalid; ``False`` decodes the raw model, to measure how
            often it answers invalid by itself.
        votes: object numberings each prediction is asked under (``1..MAX_VOTES``); the answer
            most of them give is returned (:mod:`planner.world.votes`). 1: the sorted numbering
            alone; 3 asks a third only where the first two disagree.
        vote_below: the other numberings are asked only about answers the first gives with a
            confidence below this, in (0, 1] (1: about every answer). The default,
            :data:`~planner.world.votes.VOTE_BELOW`, keeps most of what votes fix for a
            fraction of their cost.

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
        consistent: bool = True,
        votes: int = 1,
        vote_below: float = VOTE_BELOW,
    ) -> None:
        _check_arguments(mode=mode, max_siblings=max_siblings, retries=retries, retry_temperature=retry_temperature,
                         seed=seed, on_invalid=on_invalid, n_ctx=n_ctx, consistent=consistent, votes=votes,
                         vote_below=vote_below)
        self._setup(path, read_model_info(path), objects=objects, goal=goal, state=state, facts=facts,
                    actions=actions, n_ctx=n_ctx, mode=mode, on_invalid=on_invalid, retries=retries,
                    retry_temperature=retry_temperature, seed=seed, consistent=consistent, votes=votes,
                    vote_below=vote_below)
        siblings = max_siblings if mode == "batched" else 1
        slots = votes  # one per numbering, whatever the first problem's object count allows
        self.engine = LlamaEngine(path, n_ctx=n_ctx, n_seq_max=min(siblings, max(1, max_sequences() - slots)) + slots,
                                  n_threads=n_threads, n_gpu_layers=n_gpu_layers)
        # The first sequences hold the shared prefixes (one per numbering); llama.cpp may have
        # allowed fewer sequences.
        self._slots = max(1, min(slots, self.engine.n_seq_max - 1))
        self.max_siblings = max(1, min(siblings, self.engine.n_seq_max - self._slots))
        self.decoder = self._new_decoder()
        self._index = {p: i for i, p in enumerate(self.engine.pieces())}
        self.word_ids: dict[str, int] = {}
        """Token id of each codec word (markers, ground facts and actions of the bound problem)."""
        self._id_word: dict[int, str] = {}
        try:
            self._learn_words(len(self.codec.objects))
        except ModelLoadError:
            self.engine.close()
            raise

    def _setup(self, path: str | Path, info: ModelInfo, *, objects: Sequence[str], goal: FactGoal,
               state: State | None, facts: Iterable[str], actions: Sequence[Action], n_ctx: int, mode: Mode,
               on_invalid: Literal["raise", "reject"], retries: int, retry_temperature: float, seed: int,
               consistent: bool, votes: int, vote_below: float = VOTE_BELOW) -> None:
        """What every fact-delta model holds before its decoding starts: the file's header
        (checked), the codec bound to the problem under each numbering, the answer settings, a
        lock and counters."""
        self._path = Path(path)
        self.info: ModelInfo = info
        check_codec(info)
        self.consistent = consistent
        self.votes = votes
        self.vote_below = float(vote_below)
        self._slots = 1  # prefix sequences kept by the decoder (an in-process model keeps one per numbering)
        self.codec: FactDeltaCodec = self._bind(objects, goal, state, facts=facts, actions=actions, n_ctx=n_ctx)
        self.codecs: tuple[FactDeltaCodec, ...] = self._numbered(self.codec)
        self.goal = goal
        self.mode = mode
        self.on_invalid = on_invalid
        self.retries = retries
        self.retry_temperature = retry_temperature
        self._seed = seed
        self._lock = threading.RLock()
        self.stats = ModelStats()

    def _bind(self, objects: Sequence[str], goal: FactGoal, state: State | None, *, facts: Iterable[str],
              actions: Sequence[Action], n_ctx: int) -> FactDeltaCodec:
        """A codec for the problem, after checking that the vocabulary writes all of it and
        that the start state's prompt fits the context."""
        try:
            codec = FactDeltaCodec(objects=tuple(objects), predicates=self.info.predicates,
                                   actions=self.info.actions, max_objects=self.info.max_objects,
                                   version=self.info.codec_version or CODEC_VERSION)
        except VocabularyError as exc:
            raise VocabularyError(f"{self._path}: {exc}", problems=exc.problems) from None
        every = {*goal.facts, *(state.facts if state is not None else ()), *facts}
        problems = codec.vocabulary_problems(facts=every, actions=[a.name for a in actions])
        if problems:
            raise VocabularyError(
                f"{self._path} (domain {self.info.domain!r}, {len(codec.objects)} of at most "
                f"{self.info.max_objects} objects) cannot write this problem", problems=problems)
        if state is not None:
            self._check_fits(codec, goal, state, n_ctx=n_ctx, actions=actions)
        return codec

    def _new_decoder(self) -> Decoder:
        return Decoder(self.engine, stats=self.stats, max_siblings=self.max_siblings,
                       reuse_prefix=self.mode != "naive", seed=self._seed, prefixes=self._slots)

    def _numbered(self, codec: FactDeltaCodec) -> tuple[FactDeltaCodec, ...]:
        """``codec`` under each numbering a prediction is asked under (``codec`` itself first)."""
        return (codec, *(replace(codec, numbering=order) for order in numberings(codec.objects, self.votes)[1:]))

    def _check_fits(self, codec: FactDeltaCodec, goal: FactGoal, state: State, *, n_ctx: int,
                    actions: Sequence[Action] = ()) -> None:
        """The prompt about ``state`` and its longest answer must fit the context (with the
        longest suffix of ``actions``, or of any action when none are given)."""
        need = (1 + len(codec.prefix_words(goal, state)) + self._longest_suffix(codec, state, actions)
                + self._max_new(state))
        trained = self.info.context or n_ctx
        if need > trained:
            raise ContextOverflowError(
                f"{self._path}: the start state's prompt plus up to {self._max_new(state)} answer tokens "
                f"({need}) exceeds the model's context of {trained} tokens")
        if need > n_ctx:
            raise ConfigError(f"n_ctx={n_ctx} is too small for this problem: the start state's prompt and answer "
                              f"need {need} tokens (the model was trained with {trained})")

    def _learn_words(self, n_objects: int) -> None:
        """Token ids of the codec's words for a problem of ``n_objects`` objects.

        Raises :class:`ModelLoadError` when the model's vocabulary lacks some of them."""
        words = list(MARKERS) + ground_words({**self.info.predicates, **self.info.actions}, n_objects)
        missing = [w for w in words if SPACE + w not in self._index]
        if missing:
            raise ModelLoadError(f"{self._path}: vocabulary lacks the codec's words, e.g. {missing[:3]}")
        ids = self.word_ids
        ids.update({w: self._index[SPACE + w] for w in words})
        self._id_word = {i: w for w, i in ids.items()}
        facts = np.array([ids[w] for w in ground_words(self.info.predicates, n_objects)], dtype=np.int64)
        self._answer_ids = _AnswerIds(
            ok=ids[OK], add=ids[ADD], delete=ids[DEL], facts=facts, verdicts=np.array([ids[OK], ids[FAIL]]),
            close_added=np.array([ids[DEL]]), close_removed=np.array([ids[DONE], ids[CONT]]),
            ends=frozenset((ids[DONE], ids[CONT])))
        self._applied_ids = replace(self._answer_ids, verdicts=np.array([ids[OK]]))

    def rebind(self, *, objects: Sequence[str], goal: FactGoal, state: State | None = None,
               facts: Iterable[str] = (), actions: Sequence[Action] = ()) -> None:
        """Serve another problem of the same domain (other objects, other goal) with the
        already loaded model. Raises :class:`VocabularyError` for too many objects or facts
        and actions (when given) the vocabulary cannot write."""
        with self._lock:
            codec = self._bind(objects, goal, state, facts=facts, actions=actions, n_ctx=self.engine.n_ctx)
            self._learn_words(len(codec.objects))
            self.codec, self.codecs, self.goal = codec, self._numbered(codec), goal

    def reset_decoding(self) -> None:
        """Decode from here on as a freshly loaded model would: nothing in the KV cache and the
        retry sampler seeded anew (so a problem's predictions do not depend on the problems this
        model served before)."""
        with self._lock:
            self.decoder = self._new_decoder()
            self.decoder.clear()

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
        problem = pddl_problem(task)
        for key in ("state", "facts", "actions"):
            kwargs.setdefault(key, problem[key])
        return cls(path, objects=problem["objects"], goal=problem["goal"], **kwargs)

    def close(self) -> None:
        self.engine.close()

    # -- the WorldModel protocol ---------------------------------------------------------------
    def predict(self, state: State, action: Action) -> Prediction:
        return self.predict_many(state, [action])[0]

    def predict_many(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        return self._predict(state, actions, applied=False)

    def predict_applied(self, state: State, actions: Sequence[Action]) -> list[Prediction]:
        """What each action would do at ``state`` if it applied and changed the state: the answer
        decoded with the verdict held to ``ok`` and a non-empty change (the most likely effect
        the model writes for it, consistent with the state when ``consistent``), never "not
        applicable" for want of a likelier ``fail``, nor "changes nothing".
        ``confidence`` is the probability of that whole answer, verdict included (so it is low
        where the model believes the action does not apply). An answer still invalid after the
        retries raises, or with ``on_invalid="reject"`` reads "not applicable" (confidence 0).

        The agent asks this of actions whose refusal (or whose "changes nothing") the model
        doubts, to search as if they applied (``agent.doubt``)."""
        return self._predict(state, actions, applied=True)

    def _predict(self, state: State, actions: Sequence[Action], *, applied: bool) -> list[Prediction]:
        """One prediction per action at ``state`` (``applied``: with the verdict held to ``ok``):
        under each numbering in turn, for the actions whose majority is still open and whose
        first answer is less sure than ``vote_below``."""
        if not actions:
            return []
        with self._lock:
            start = time.perf_counter()
            try:
                ballots: list[list[Prediction]] = [[] for _ in actions]
                open_ = list(range(len(actions)))
                for k in range(len(self.codecs)):
                    answers = self._predict_as(k, state, [actions[i] for i in open_], applied=applied)
                    for i, answer in zip(open_, answers):
                        ballots[i].append(answer)
                    left = len(self.codecs) - k - 1
                    open_ = [i for i in open_ if not decided(ballots[i], left)
                             and ballots[i][0].confidence < self.vote_below]
                    if not open_:
                        break
                preds = [self._in_first_numbering(b, winner(b)) for b in ballots]
                if len(self.codecs) > 1:
                    self.stats.split_votes += sum(len(tally(b)) > 1 for b in ballots)
            finally:
                self.stats.seconds += time.perf_counter() - start
            self.stats.predictions += len(preds)
            return preds

    def _in_first_numbering(self, ballots: Sequence[Prediction], chosen: Prediction) -> Prediction:
        """``chosen`` (one of ``ballots``, asked under the numberings in turn) with its raw text
        written in the first numbering's placeholders, as a single vote writes it."""
        k = next(i for i, ballot in enumerate(ballots) if ballot is chosen)
        if k == 0 or chosen.raw is None:
            return chosen
        return replace(chosen, raw=self.codecs[k].renumbered(chosen.raw, self.codecs[0]))

    def _predict_as(self, k: int, state: State, actions: Sequence[Action], *, applied: bool) -> list[Prediction]:
        """One prediction per action at ``state``, the objects numbered as ``self.codecs[k]``
        numbers them."""
        codec, slot = self.codecs[k], k % self._slots
        prefix, suffixes, max_new = self._prompt(codec, state, actions)
        state_words = frozenset(codec.state_words(state))
        chosen: list[tuple[Answer, Literal["add", "del"] | None]]
        if applied:  # the likelier of the best answer adding something, and of one only removing
            adds = self._decode(prefix, suffixes, max_new, state_words, temperature=0.0, must="add", slot=slot)
            dels = self._decode(prefix, suffixes, max_new, state_words, temperature=0.0, must="del", slot=slot)
            chosen = [(a, "add") if a.logprob >= d.logprob else (d, "del") for a, d in zip(adds, dels)]
        else:
            chosen = [(a, None) for a in self._decode(prefix, suffixes, max_new, state_words, temperature=0.0,
                                                      slot=slot)]
        return [self._finish(codec, state, state_words, prefix, suf, ans, max_new, must=must, slot=slot)
                for suf, (ans, must) in zip(suffixes, chosen)]

    # -- prompts -------------------------------------------------------------------------------
    def _prompt(self, codec: FactDeltaCodec, state: State,
                actions: Sequence[Action]) -> tuple[list[int], list[list[int]], int]:
        """Token ids of the shared prefix (goal and state) and of each action's suffix, and
        the most answer tokens; :class:`ContextOverflowError` when they do not fit."""
        try:
            words = codec.prefix_words(self.goal, state)
        except (CodecError, VocabularyError) as exc:
            raise VocabularyError(f"state cannot be written for {self._path}: {exc}") from None
        prefix = [self.engine.bos] + [self.word_ids[w] for w in words]
        suffixes = self._suffixes(codec, actions, state)
        max_new = self._max_new(state)
        need = len(prefix) + max(len(s) for s in suffixes) + max_new
        limit = min(self.engine.n_ctx_train, self.engine.n_ctx)
        if need > limit:
            raise ContextOverflowError(
                f"prompt of {need - max_new} tokens plus up to {max_new} answer tokens "
                f"({need}) exceeds the model's context of {limit} tokens"
            )
        return prefix, suffixes, max_new

    def _suffixes(self, codec: FactDeltaCodec, actions: Sequence[Action], state: State) -> list[list[int]]:
        """Token ids of each action's suffix about ``state``; :class:`UnknownActionError` naming
        the first action the vocabulary cannot write."""
        try:
            return [[self.word_ids[w] for w in words] for words in codec.suffixes(actions, state)]
        except (CodecError, VocabularyError, KeyError):
            bad = next((a for a in actions if not self._writable(codec, a)), actions[0])
            raise UnknownActionError(
                f"unknown action {bad.name!r}: not in the world model's vocabulary "
                f"(actions: {', '.join(sorted(self.info.actions))}; objects: {', '.join(self.codec.objects)})"
            ) from None

    def _writable(self, codec: FactDeltaCodec, action: Action) -> bool:
        try:
            return codec.action_word(action) in self.word_ids
        except (CodecError, VocabularyError):
            return False

    @staticmethod
    def _longest_suffix(codec: FactDeltaCodec, state: State, actions: Sequence[Action] = ()) -> int:
        """The most tokens the suffix of one of ``actions`` about ``state`` takes; with no
        actions, a bound for any (versions 2 and 3 write at most the state's facts that have arguments)."""
        if codec.version == 1:
            return 3
        if actions:
            return max(len(s) for s in codec.suffixes(actions, state))
        return 3 + sum(1 for f in state.facts if parse_atom(f)[1])

    def _max_new(self, state: State) -> int:
        return 2 * len(state.facts) + 6

    # -- answers -------------------------------------------------------------------------------
    def _decode(self, prefix: list[int], suffixes: list[list[int]], max_new: int, state_words: frozenset[str], *,
                temperature: float, must: Literal["add", "del"] | None = None, slot: int = 0) -> list[Answer]:
        """Decode one answer per suffix (``must``: with the verdict held to ``ok`` and that change
        made, see :class:`_FactDeltaRules`)."""
        ids = self._answer_ids if must is None else self._applied_ids
        facts = ids.facts
        if self.consistent:
            holds = np.isin(facts, [self.word_ids[w] for w in state_words if w in self.word_ids])
            rules = partial(_FactDeltaRules, ids, max_new, facts[~holds], facts[holds], must=must)
        else:
            rules = partial(_FactDeltaRules, ids, max_new, facts, facts, must=must)
        return self.decoder.decode(prefix, suffixes, rules=rules, max_new=max_new, temperature=temperature, slot=slot)

    def _likelier_failure(self, pred: Prediction, answer: Answer, state: State) -> Prediction:
        """``pred``, or "not applicable" when the model finds the answer ``fail`` likelier than
        the whole applicable answer it wrote.

        The answer is the most likely one among those consistent with the state, but only
        greedily: where the model believes an action applies with an effect that cannot be
        written for this state (it would remove a fact that does not hold), the consistent
        answer it is held to is one it finds very unlikely. Comparing the two complete answers'
        probabilities — ``fail`` against ``ok`` and its delta — keeps the likelier, so such
        an action reads as not applicable instead of as an invented transition (the error a
        search is drawn to). ``confidence`` is then fail's share of the two.
        """
        if not (self.consistent and pred.applicable):
            return pred
        fail = answer.first.get(self.word_ids[FAIL])
        if fail is None or fail <= answer.logprob:
            return pred
        share = 1.0 / (1.0 + math.exp(answer.logprob - fail))
        return Prediction(applicable=False, next_state=state, confidence=share, raw=pred.raw, p_apply=pred.p_apply)

    def _finish(self, codec: FactDeltaCodec, state: State, state_words: frozenset[str], prefix: list[int],
                suffix: list[int], first: Answer, max_new: int, *,
                must: Literal["add", "del"] | None = None, slot: int = 0) -> Prediction:
        """Parse ``first``; on a validation failure, sample again (bounded), then raise or reject.
        ``must``: the answers were decoded with the verdict held to ``ok`` and that change made."""

        def attempt(n: int) -> Prediction:
            answer = first if n == 1 else self._decode(prefix, [suffix], max_new, state_words,
                                                       temperature=self.retry_temperature, must=must, slot=slot)[0]
            pred = codec.parse([self._id_word[t] for t in answer.tokens], state,
                                    confidence=math.exp(answer.logprob), state_words=state_words)
            ok = answer.first.get(self.word_ids[OK])
            if ok is not None:
                pred = replace(pred, p_apply=math.exp(ok))
            return pred if must is not None else self._likelier_failure(pred, answer, state)

        try:
            return retry_invalid(attempt, retries=self.retries, stats=self.stats)
        except WorldModelError as exc:
            if self.on_invalid == "raise" or isinstance(exc, ServerError):
                raise
            self.stats.invalid += 1
            log.debug("invalid_answer_rejected", raw=exc.raw, error=str(exc).split(" (raw")[0])
            return Prediction(applicable=False, next_state=state, confidence=0.0, raw=exc.raw)


def pddl_problem(task: Any) -> dict[str, Any]:
    """A PDDL task's problem as a fact-delta model binds it: the keyword arguments ``objects``,
    ``goal``, ``state`` (the start), ``facts`` (every fact an action can touch) and ``actions``
    (every ground action) of :class:`LlamaWorldModel` and of its ``rebind``."""
    return {"objects": task.objects, "goal": task.goal, "state": task.init, "facts": task.relevant_facts,
            "actions": [Action(name) for name in task.operators]}


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

