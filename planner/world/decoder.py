"""Constrained decoding of sibling answers on parallel llama.cpp sequences.

The decoder knows token ids, not words: a prompt is a shared prefix of token ids (kept in a
prefix sequence of the KV cache and reused by the next call that starts the same way) and one
suffix per sibling. A model asked under several numberings of its objects keeps one prefix
sequence per numbering (``slot``), so alternating between them does not evaluate each prefix
again. Each sibling is decoded on a sequence of its own that shares the prefix's
cells; all siblings advance together, one batch per step, and a sibling leaves the batch as
soon as its answer is complete. What an answer may look like is decided by a small per-answer
state machine (:class:`AnswerRules`): the tokens allowed next, and the tokens that follow a
choice by force (fed in the same batch, without a decoding round of their own).

Decoding is greedy (``temperature=0``) or sampled; every answer carries the log-probability
of its chosen tokens under the model's unconstrained distribution.

Not thread-safe (neither is the engine): the caller holds a lock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from planner.errors import WorldModelError
from planner.world.base import ModelStats
from planner.world.engine import LlamaEngine
from planner.world.vocab import SPACE


class AnswerRules(Protocol):
    """One answer's state machine (a fresh one per answer)."""

    def allowed(self) -> np.ndarray:
        """Token ids allowed next (in a fixed order: greedy decoding takes the first of equal logits)."""
        ...

    def push(self, token: int) -> Sequence[int] | None:
        """Record the chosen ``token``; return the tokens that follow it by force (often none),
        or ``None`` when the answer is complete."""
        ...


@dataclass
class Answer:
    """One decoded answer.

    Attributes:
        tokens: chosen and forced token ids, in order.
        logprob: natural-log probability of the chosen tokens (forced ones excluded) under
            the model's unconstrained distribution.
        first: the natural-log probability of every token allowed at the first step (the
            answer's alternatives there, e.g. a verdict), under the same distribution.
    """

    tokens: list[int] = field(default_factory=list)
    logprob: float = 0.0
    first: dict[int, float] = field(default_factory=dict)


@dataclass
class _Sibling:
    seq: int
    pos: int
    rules: AnswerRules
    answer: Answer = field(default_factory=Answer)


class Decoder:
    """Batched constrained decoding on ``engine`` with prefix reuse.

    Args:
        engine: the loaded model and context; sequences ``0..prefixes-1`` hold the prefixes,
            the next ``max_siblings`` the siblings.
        stats: counters to add evaluated prompt tokens and generated tokens to.
        max_siblings: most siblings decoded in one batch (``1..engine.n_seq_max - prefixes``).
        reuse_prefix: keep the prefix in the KV cache between calls (``False``: clear the
            cache before every call, as a baseline).
        seed: seeds sampling (``temperature > 0``).
        prefixes: prefix sequences kept (``slot`` of :meth:`decode`), at least 1.
    """

    def __init__(self, engine: LlamaEngine, *, stats: ModelStats, max_siblings: int, reuse_prefix: bool = True,
                 seed: int = 0, prefixes: int = 1) -> None:
        self.engine = engine
        self.stats = stats
        self.max_siblings = max_siblings
        self.reuse_prefix = reuse_prefix
        self.prefixes = max(1, prefixes)
        self._rng = np.random.default_rng(seed)
        self._cached: list[list[int]] = [[] for _ in range(self.prefixes)]

    def clear(self) -> None:
        """Empty the KV cache (the next call evaluates its whole prefix)."""
        self.engine.clear()
        self._cached = [[] for _ in range(self.prefixes)]

    def decode(self, prefix: list[int], suffixes: Sequence[list[int]], *, rules: Callable[[], AnswerRules],
               max_new: int, temperature: float = 0.0, slot: int = 0) -> list[Answer]:
        """One answer per suffix, for the prompt ``prefix + suffix``.

        Args:
            prefix: token ids shared by all siblings (evaluated only past what is cached).
            suffixes: each sibling's own token ids (at least one each).
            rules: makes the state machine of one answer.
            max_new: most tokens an answer can have (sizes the KV-cache room per sibling;
                the rules must end answers within it).
            temperature: 0 for greedy decoding, > 0 to sample.
            slot: the prefix sequence to keep ``prefix`` in (``0..prefixes-1``).

        Raises :class:`WorldModelError` for non-finite logits and
        :class:`~planner.errors.ContextOverflowError` when the KV cache has no room.
        """
        if not 0 <= slot < self.prefixes:
            raise ValueError(f"prefix slot {slot} outside 0..{self.prefixes - 1}")
        longest = max(len(s) for s in suffixes)
        per_seq = longest + max_new + 2
        kept = sum(len(c) for j, c in enumerate(self._cached) if j != slot)
        wanted = min(len(suffixes), self.max_siblings)
        if kept and (self.engine.n_ctx - len(prefix) - kept) // per_seq < wanted:
            self._drop_other_prefixes(slot)  # the siblings need the room more than the other numberings
            kept = 0
        room = (self.engine.n_ctx - len(prefix) - kept) // per_seq
        # Every sibling's suffix (and later its fed tokens) must fit one decode batch, so that
        # only the last chunk of a decode call asks for logits.
        per_batch = self.engine.n_batch // max(longest, 2)
        group = max(1, min(self.max_siblings, room, per_batch))
        answers: list[Answer] = []
        for start in range(0, len(suffixes), group):
            self._ensure_prefix(prefix, slot)
            answers.extend(self._decode_group(len(prefix), suffixes[start:start + group], rules, temperature, slot))
        return answers

    def _drop_other_prefixes(self, slot: int) -> None:
        for j in range(self.prefixes):
            if j != slot and self._cached[j]:
                self.engine.seq_rm(j)
                self._cached[j] = []

    def _ensure_prefix(self, prefix: list[int], slot: int) -> None:
        """Leave exactly ``prefix`` in sequence ``slot``, evaluating only what is not cached."""
        if not self.reuse_prefix:
            self.clear()
        cached = self._cached[slot]
        common = 0
        limit = min(len(cached), len(prefix))
        while common < limit and cached[common] == prefix[common]:
            common += 1
        if common == len(prefix) == len(cached):
            return
        self.engine.seq_rm(slot, common, -1)
        self._cached[slot] = cached[:common]  # what the sequence holds should the decode fail
        self.engine.decode([(tok, pos, slot, False) for pos, tok in enumerate(prefix) if pos >= common])
        self.stats.prompt_tokens += len(prefix) - common
        self._cached[slot] = list(prefix)

    def _decode_group(self, p: int, suffixes: Sequence[list[int]], rules: Callable[[], AnswerRules],
                      temperature: float, slot: int) -> list[Answer]:
        eng = self.engine
        siblings = [_Sibling(seq=self.prefixes + j, pos=p + len(s), rules=rules()) for j, s in enumerate(suffixes)]
        entries: list[tuple[int, int, int, bool]] = []
        for sib, suffix in zip(siblings, suffixes):
            eng.seq_rm(sib.seq)
            eng.seq_cp(slot, sib.seq)
            entries.extend((tok, p + k, sib.seq, k == len(suffix) - 1) for k, tok in enumerate(suffix))
        self.stats.prompt_tokens += len(entries)
        try:
            handles = eng.decode(entries)
            active = list(zip(siblings, handles))
            while active:
                feed: list[tuple[int, int, int, bool]] = []
                waiting: list[_Sibling] = []
                for sib, handle in active:
                    fed = self._step(sib, eng.logits(handle), temperature)
                    if fed is None:
                        continue
                    for k, tok in enumerate(fed):
                        feed.append((tok, sib.pos, sib.seq, k == len(fed) - 1))
                        sib.pos += 1
                    waiting.append(sib)
                if not feed:
                    break
                handles = eng.decode(feed)
                active = list(zip(waiting, handles))
        finally:
            for sib in siblings:
                eng.seq_rm(sib.seq)
        self.stats.generated_tokens += sum(len(s.answer.tokens) for s in siblings)
        return [s.answer for s in siblings]

    def _step(self, sib: _Sibling, logits: np.ndarray, temperature: float) -> list[int] | None:
        """Choose the next token of ``sib``; return the tokens to feed back (``None``: complete)."""
        answer = sib.answer
        if not np.isfinite(logits).all():
            raw = "".join(self.engine.piece(t) for t in answer.tokens).replace(SPACE, " ").strip()
            raise WorldModelError("the model gave non-finite logits (NaN or infinity): its weights or "
                                  "hyperparameters are broken", raw=raw)
        allowed = sib.rules.allowed()
        sub = logits[allowed].astype(np.float64)
        if temperature > 0:
            z = sub / temperature
            prob = np.exp(z - z.max())
            prob /= prob.sum()
            tok = int(allowed[self._rng.choice(len(allowed), p=prob)])
        else:
            tok = int(allowed[int(np.argmax(sub))])
        top = float(logits.max())
        log_z = top + math.log(float(np.exp(logits - top).sum()))
        if not answer.tokens:
            answer.first = {int(t): float(logits[t]) - log_z for t in allowed}
        answer.logprob += float(logits[tok]) - log_z
        answer.tokens.append(tok)
        forced = sib.rules.push(tok)
        if forced is None:
            return None
        answer.tokens.extend(forced)
        return [tok, *forced]
