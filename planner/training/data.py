"""Turning transition logs into token sequences for the fact-delta codec.

Each record becomes (goal words, state words, action word, answer words), encoded once; the
goal is re-chosen per sample ("hindsight" relabelling), because real goals are reached rarely.
Relabelled goals are made of *goal facts*: facts of the predicates the records' goals use, as
many as the problem's goal has (all of them where there are fewer):

- 60% the problem's goal;
- 20% goal facts of the next state, one the action added among them where it added any
  (``done``);
- 10% those with one fact swapped for a goal fact the next state lacks (not ``done``);
- 10% goal facts of the state before the action (``done`` unless the action removed one).

``done`` is always recomputed from the chosen goal, so labels stay exact (an empty goal, which
an environment whose goal is no conjunction of facts leaves, is never reached), and goals are
written in the order the runtime writes them.

The runtime names a problem's objects ``x1 … xn`` in the sorted order of their names, so the
number a kind of object gets follows from the *names* of the others (``desk_1`` comes just
before ``desklamp_1``, ``sidetable_1`` after it). A model can learn such an accident of naming
instead of the rule, and fail on new scenes where it does not hold. :class:`ObjectShuffle`
renames a sequence's objects by a random permutation of its placeholders (the same transition
with other names, its facts written again in the runtime's order), so that only the facts say
which object is which.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from planner.data.collect import TransitionRecord, read_records
from planner.errors import CodecError, PlannerError
from planner.training.errors import TrainingDataError
from planner.types import Action, Prediction
from planner.world.codec import (
    DEL,
    DONE,
    MARKERS,
    FactDeltaCodec,
    argument_facts,
    parse_atom,
    parse_word,
    prompt_prefix,
    prompt_suffix,
    subject_only,
)
from planner.world.vocab import Vocabulary, ground_words

__all__ = [
    "Encoded", "ObjectShuffle", "TrainingDataError", "action_facts", "check_fits", "encode_records", "load_records",
    "longest_sequence", "sample_sequence", "suffix_arguments", "word_arguments",
]

@dataclass(frozen=True)
class Encoded:
    """One transition, encoded.

    ``goal``/``state``/``next_state`` are token ids of fact words (in the runtime's order);
    ``goal_next``/``goal_now`` the ids of the goal facts (usable in relabelled goals) of the next
    and the current state; ``fact_pool`` every goal fact over the problem's objects; ``answer``
    the answer ids with ``cont`` at the end (``done`` is decided per sample); ``rank`` maps a
    token id to its word's place in the runtime's order (shared by all examples); ``objects``
    the problem's number of objects (placeholders ``x1 … x{objects}``).
    """

    goal: np.ndarray
    state: np.ndarray
    action: int
    answer: np.ndarray
    applicable: bool
    next_state: np.ndarray
    goal_next: np.ndarray
    goal_now: np.ndarray
    fact_pool: np.ndarray
    rank: np.ndarray
    objects: int = 0


def load_records(path: str | Path, *, limit: int | None = None) -> list[TransitionRecord]:
    """The transition records of the JSONL log ``path`` (the first ``limit`` when given),
    validated; see :func:`planner.data.collect.read_records`."""
    return read_records(path, limit=limit)


def goal_predicates_of(records: Iterable[TransitionRecord]) -> tuple[str, ...]:
    """The predicates the records' goals use (sorted; malformed goal facts are left out)."""
    found: set[str] = set()
    for r in records:
        for fact in r.goal:
            try:
                found.add(parse_atom(fact)[0])
            except CodecError:
                continue
    return tuple(sorted(found))


def word_ranks(vocab: Vocabulary) -> np.ndarray:
    """Token id → its word's place in sorted word order (the order prompts list facts in)."""
    rank = np.zeros(len(vocab), dtype=np.int64)
    for place, word in enumerate(sorted(vocab.words)):
        rank[vocab.word_ids[word]] = place
    return rank


def encode_records(records: Iterable[TransitionRecord], vocab: Vocabulary, predicates: Mapping[str, int],
                   actions: Mapping[str, int], max_objects: int,
                   goal_predicates: tuple[str, ...] | None = None) -> list[Encoded]:
    """Encode each record once for the fact-delta codec with ``vocab``. Relabelled goals use
    the facts of ``goal_predicates`` (default: :func:`goal_predicates_of` the records).

    Raises :class:`TrainingDataError` naming the record (its position from 0 and problem) and
    the reason when a record cannot be written in the vocabulary.
    """
    records = list(records)
    if goal_predicates is None:
        goal_predicates = goal_predicates_of(records)
    rank = word_ranks(vocab)
    codecs: dict[tuple[str, ...], FactDeltaCodec] = {}
    pools: dict[int, np.ndarray] = {}  # objects → ids of every goal fact over them (one array, read-only)
    out: list[Encoded] = []
    for index, r in enumerate(records):
        try:
            objs = tuple(sorted(r.objects))
            codec = codecs.get(objs)
            if codec is None:
                codec = codecs[objs] = FactDeltaCodec(objects=objs, predicates=predicates, actions=actions,
                                                      max_objects=max_objects)
            pool = pools.get(len(objs))
            if pool is None:
                pool = pools[len(objs)] = _word_ids(ground_words(
                    {p: predicates[p] for p in goal_predicates if p in predicates}, len(objs)), vocab)
                pool.flags.writeable = False
            out.append(_encode(r, codec, vocab, goal_predicates, rank, pool))
        except (PlannerError, ValueError, KeyError) as exc:
            reason = f"unknown name {exc}" if isinstance(exc, KeyError) else str(exc)
            raise TrainingDataError(f"record {index} (problem {r.problem!r}) cannot be encoded: {reason}") from None
    return out


def _word_ids(words: Iterable[str], vocab: Vocabulary) -> np.ndarray:
    """Token ids of ``words``; :class:`TrainingDataError` names a word the vocabulary lacks."""
    ids = vocab.word_ids
    out = []
    for w in words:
        if w not in ids:
            raise TrainingDataError(f"word {w!r} is not in the vocabulary")
        out.append(ids[w])
    return np.array(out, dtype=np.int32)


def _encode(r: TransitionRecord, codec: FactDeltaCodec, vocab: Vocabulary, goal_predicates: tuple[str, ...],
            rank: np.ndarray, fact_pool: np.ndarray) -> Encoded:
    """One record, encoded (see :class:`Encoded`); ``fact_pool``: the ids of every goal fact
    over its objects (shared by the records with as many objects)."""
    state, nxt = r.state_obj(), r.next_state_obj()
    answer = codec.answer_words(Prediction(applicable=r.applicable, next_state=nxt, done=False), state)
    state_words, next_words = codec.state_words(state), codec.state_words(nxt)

    def goal_facts(words: list[str]) -> np.ndarray:
        return _word_ids((w for w in words if w.split("(")[0] in goal_predicates), vocab)

    return Encoded(
        goal=_word_ids(sorted(codec.fact_word(f) for f in r.goal), vocab),
        state=_word_ids(state_words, vocab),
        action=int(_word_ids([codec.action_word(Action(r.action))], vocab)[0]),
        answer=_word_ids(answer, vocab),
        applicable=r.applicable,
        next_state=_word_ids(next_words, vocab),
        goal_next=goal_facts(next_words),
        goal_now=goal_facts(state_words),
        fact_pool=fact_pool,
        rank=rank,
        objects=len(r.objects),
    )


def longest_sequence(ex: Encoded, arguments: np.ndarray | None = None) -> int:
    """Tokens in the longest training sequence :func:`sample_sequence` can make of ``ex``: six
    markers, the longest goal it may choose, the state, the action's arguments' facts (codec
    versions 2 and 3: ``arguments`` from :func:`suffix_arguments`) and the answer."""
    goal = max(len(ex.goal), len(ex.goal_next), len(ex.goal_now))
    named = 0 if arguments is None else len(action_facts(ex, arguments))
    return 6 + goal + len(ex.state) + named + len(ex.answer)


def check_fits(examples: Iterable[Encoded], context: int, arguments: np.ndarray | None = None) -> None:
    """Raise :class:`TrainingDataError` naming the first example (position from 0) whose
    sequences may exceed ``context`` tokens (``arguments``: as :func:`longest_sequence`)."""
    for index, ex in enumerate(examples):
        length = longest_sequence(ex, arguments)
        if length > context:
            shorter = (" or codec version 1 (2 and 3 write the action's arguments' facts again)"
                       if arguments is not None else "")
            raise TrainingDataError(f"record {index} makes sequences of up to {length} tokens, more than the "
                                    f"model's context of {context}: train with a larger context or fewer objects"
                                    + shorter)


def word_arguments(vocab: Vocabulary, max_objects: int, subjects: Collection[str] = ()) -> np.ndarray:
    """Token id → its arguments' placeholder numbers (``1`` for ``x1``), ``0`` past its arity
    (markers, facts without arguments and pieces that are no word have none); the words of the
    names in ``subjects`` keep only their first argument (the codec's version 3 compares a fact
    with the action by its subject: :func:`suffix_arguments`).

    Raises :class:`TrainingDataError` naming a word with an argument that is no placeholder."""
    numbers = {f"x{i + 1}": i + 1 for i in range(max_objects)}
    word_of = {tid: w for w, tid in vocab.word_ids.items()}
    parsed = [parse_word(word_of[tid]) if tid in word_of else ("", ()) for tid in range(len(vocab))]
    args = np.zeros((len(parsed), max((len(a) for _, a in parsed), default=0)), dtype=np.int64)
    for tid, (name, word_args) in enumerate(parsed):
        for k, a in enumerate(word_args):
            if a not in numbers:
                raise TrainingDataError(f"word {word_of[tid]!r} has an argument that is no placeholder: {a!r}")
            args[tid, k] = numbers[a]
        if name in subjects:
            args[tid, 1:] = 0
    return args


def suffix_arguments(vocab: Vocabulary, max_objects: int, version: int,
                     predicates: Collection[str]) -> np.ndarray | None:
    """What :func:`sample_sequence` needs to write the prompts of the fact-delta codec's
    ``version``: ``None`` for version 1 (nothing after the action); for 2, every word's
    arguments; for 3, an action's arguments and a fact's (``predicates``) first one."""
    if version == 1:
        return None
    return word_arguments(vocab, max_objects, subjects=predicates if subject_only(version) else ())


def action_facts(ex: Encoded, arguments: np.ndarray) -> list[int]:
    """The facts of ``ex``'s state that name one of its action's arguments, in the state's
    order: what the codec's versions 2 and 3 write after the action (``arguments``: from
    :func:`suffix_arguments`, which says which of a fact's arguments count)."""
    named = arguments[ex.action]
    return argument_facts(ex.state.tolist(), named[named > 0].tolist(), lambda t: arguments[t].tolist())


@dataclass(frozen=True)
class ObjectShuffle:
    """Renames the objects of training examples (see the module's description).

    Build it with :meth:`of`; :meth:`apply` renames one example by a permutation drawn from
    ``rng``. Every token is a name with placeholder arguments (markers and facts without
    arguments have none, and keep their id): a token's image is the word with the same name
    and the permuted arguments, found by its key (name index and arguments written in base
    ``radix``) among the vocabulary's sorted keys.

    Attributes:
        probability: the chance that :func:`sample_sequence` renames a sequence (0..1).
        names: token id → index of its name.
        args: token id → its arguments' placeholder numbers (``1`` for ``x1``), ``0`` past its arity.
        keys: every token's key, sorted; ``ids``: the token ids in that order.
        radix: one more than the number of placeholders.
        del_id: the id of the answer's ``del`` marker (``-1`` when the vocabulary has none).
    """

    probability: float
    names: np.ndarray
    args: np.ndarray
    keys: np.ndarray
    ids: np.ndarray
    radix: int
    del_id: int = -1

    @classmethod
    def of(cls, vocab: Vocabulary, max_objects: int, probability: float) -> ObjectShuffle:
        """The renaming for ``vocab``'s words over ``max_objects`` placeholders.

        Raises :class:`TrainingDataError` naming a word with an argument that is no placeholder."""
        word_of = {tid: w for w, tid in vocab.word_ids.items()}
        args = word_arguments(vocab, max_objects)
        name_index: dict[str, int] = {}
        names = np.zeros(len(args), dtype=np.int64)
        for tid in range(len(args)):  # tokens that are no word (pieces) keep their id
            name = parse_word(word_of[tid])[0] if tid in word_of else f"\0{tid}"
            names[tid] = name_index.setdefault(name, len(name_index))
        radix = max_objects + 1
        keys = cls._key(names, args, radix)
        order = np.argsort(keys, kind="stable")
        # Every renaming must lead to a word of the vocabulary: it is enough that a swap and a
        # cycle of the placeholders do, since the two make every permutation.
        swap, cycle = np.arange(radix), np.arange(radix)
        if max_objects > 1:
            swap[[1, 2]] = [2, 1]
            cycle[1:] = np.roll(cycle[1:], 1)
        for perm in (swap, cycle):
            missing = ~np.isin(cls._key(names, perm[args], radix), keys)
            if missing.any():
                tid = int(np.flatnonzero(missing)[0])
                raise TrainingDataError(f"the vocabulary has {word_of[tid]!r} but not every renaming of its objects: "
                                        "objects cannot be shuffled")
        return cls(probability=float(probability), names=names, args=args, keys=keys[order],
                   ids=order.astype(np.int64), radix=radix, del_id=vocab.word_ids.get(DEL, -1))

    @staticmethod
    def _key(names: np.ndarray, args: np.ndarray, radix: int) -> np.ndarray:
        key = names.copy()
        for k in range(args.shape[1]):
            key = key * radix + args[:, k]
        return key

    def rename(self, tokens: np.ndarray, perm: np.ndarray) -> np.ndarray:
        """``tokens`` with each placeholder ``xi`` renamed ``x{perm[i]}`` (``perm[0] == 0``)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if not len(tokens):
            return tokens
        keys = self._key(self.names[tokens], perm[self.args[tokens]], self.radix)
        return self.ids[np.searchsorted(self.keys, keys)]

    def apply(self, ex: Encoded, rng: np.random.Generator) -> Encoded:
        """``ex`` with its ``ex.objects`` objects renamed by a random permutation (:meth:`permuted`)."""
        perm = np.arange(self.radix)
        perm[1:ex.objects + 1] = rng.permutation(ex.objects) + 1
        return self.permuted(ex, perm)

    def permuted(self, ex: Encoded, perm: np.ndarray) -> Encoded:
        """``ex`` with each ``xi`` renamed ``x{perm[i]}`` (``perm``: a permutation of ``0 …
        radix - 1`` that keeps ``0``), its facts written again in the runtime's order: the
        example of the same transition with its objects so renamed."""

        def facts(tokens: np.ndarray) -> np.ndarray:
            out = self.rename(tokens, perm)
            return out[np.argsort(ex.rank[out], kind="stable")]

        answer = self.rename(ex.answer, perm)
        if ex.applicable:  # ok add <facts> del <facts> cont: each list in the runtime's order
            at_del = int(np.flatnonzero(answer == self.del_id)[0])
            answer = np.concatenate([answer[:2], facts(ex.answer[2:at_del]), answer[at_del:at_del + 1],
                                     facts(ex.answer[at_del + 1:-1]), answer[-1:]])
        return replace(ex, goal=facts(ex.goal), state=facts(ex.state), action=int(self.rename(np.array([ex.action]),
                       perm)[0]), answer=answer, next_state=facts(ex.next_state), goal_next=facts(ex.goal_next),
                       goal_now=facts(ex.goal_now), fact_pool=self.rename(ex.fact_pool, perm))


def sample_sequence(ex: Encoded, vocab: Vocabulary, rng: np.random.Generator, *,
                    relabel: bool = True, shuffle: ObjectShuffle | None = None,
                    arguments: np.ndarray | None = None) -> tuple[list[int], int]:
    """A training sequence and the index where the answer starts (loss from there on); with
    ``shuffle``, its objects renamed with that probability (:class:`ObjectShuffle`); with
    ``arguments`` (:func:`suffix_arguments`), the prompt of the codec's version 2 or 3."""
    ids = vocab.word_ids
    if shuffle is not None and shuffle.probability > 0 and ex.objects > 1 and rng.random() < shuffle.probability:
        ex = shuffle.apply(ex, rng)
    goal = ex.goal
    if relabel:
        size = max(1, len(ex.goal))
        roll = rng.random()
        if roll < 0.3 and len(ex.goal_next):
            goal = _subset(ex.goal_next, size, np.setdiff1d(ex.goal_next, ex.goal_now), rng)
            if roll >= 0.2:
                keep = np.delete(goal, rng.integers(len(goal)))
                candidates = np.setdiff1d(ex.fact_pool, ex.next_state)
                if len(candidates):
                    goal = np.append(keep, candidates[rng.integers(len(candidates))])
        elif roll < 0.4 and len(ex.goal_now):
            goal = _subset(ex.goal_now, size, ex.goal_now[:0], rng)
        goal = goal[np.argsort(ex.rank[goal], kind="stable")]
    answer = list(ex.answer)
    if ex.applicable:
        # An empty goal (the environment's goal was no conjunction of facts) is never judged
        # reached: the model is bound with one where it cannot be told the real goal.
        done = bool(len(goal)) and bool(np.isin(goal, ex.next_state).all())
        answer[-1] = ids[DONE] if done else answer[-1]
    markers = {m: ids[m] for m in MARKERS}
    named = action_facts(ex, arguments) if arguments is not None else []
    prompt = [vocab.bos_id, *prompt_prefix(goal.tolist(), ex.state.tolist(), markers),
              *prompt_suffix(ex.action, markers, named)]
    return prompt + answer, len(prompt)


def _subset(pool: np.ndarray, size: int, prefer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``size`` ids of ``pool`` (all of it when it has no more), one of ``prefer`` among them
    when ``prefer`` is not empty."""
    if len(pool) <= size:
        return pool
    if not len(prefer):
        return pool[rng.choice(len(pool), size, replace=False)]
    first = prefer[rng.integers(len(prefer))]
    rest = pool[pool != first]
    return np.append(rest[rng.choice(len(rest), size - 1, replace=False)], first)
