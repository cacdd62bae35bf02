"""Turning transition logs into token sequences for the fact-delta codec.

Each record becomes (goal words, state words, action word, answer words), encoded once; the
goal is re-chosen per sample ("hindsight" relabelling), because real goals are reached rarely:
60% the problem's goal, 20% the arrangement the next state shows (``done``), 10% that
arrangement with one fact changed, 10% the arrangement before the action. ``done`` is always
recomputed from the chosen goal, so labels stay exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.types import Action, FactGoal, Prediction, State
from planner.world.codec import ACTION, ARROW, DONE, GOAL, STATE, FactDeltaCodec
from planner.world.vocab import Vocabulary

GOAL_PREDICATES_DEFAULT = ("on", "ontable")


@dataclass(frozen=True)
class Encoded:
    """One transition, encoded.

    ``goal``/``state``/``next_state`` are token ids of fact words (sorted); ``tower_*`` the ids
    of facts usable as relabelled goals; ``answer`` the answer ids with ``cont`` at the end
    (``done`` is decided per sample).
    """

    goal: np.ndarray
    state: np.ndarray
    action: int
    answer: np.ndarray
    applicable: bool
    next_state: np.ndarray
    tower_next: np.ndarray
    tower_now: np.ndarray
    fact_pool: np.ndarray


def load_records(path: str | Path, *, limit: int | None = None) -> list[dict]:
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line))
                if limit is not None and len(out) >= limit:
                    break
    return out


def encode_records(records: Iterable[Mapping], vocab: Vocabulary, predicates: Mapping[str, int],
                   actions: Mapping[str, int], max_objects: int,
                   goal_predicates: tuple[str, ...] = GOAL_PREDICATES_DEFAULT) -> list[Encoded]:
    codecs: dict[tuple[str, ...], FactDeltaCodec] = {}
    out: list[Encoded] = []
    ids = vocab.word_ids
    from planner.world.vocab import ground_words

    for r in records:
        objs = tuple(sorted(r["objects"]))
        codec = codecs.get(objs)
        if codec is None:
            codec = codecs[objs] = FactDeltaCodec(objects=objs, predicates=predicates, actions=actions,
                                                  max_objects=max_objects)
        state, nxt = State.from_facts(r["state"]), State.from_facts(r["next_state"])
        pred = Prediction(applicable=r["applicable"], next_state=nxt, done=False)
        answer = codec.answer_words(pred, state)
        pool_words = ground_words({p: predicates[p] for p in goal_predicates if p in predicates}, len(objs))

        def enc(words: Iterable[str]) -> np.ndarray:
            return np.array([ids[w] for w in words], dtype=np.int32)

        def towers(s: State, codec: FactDeltaCodec = codec) -> np.ndarray:
            return enc(w for w in codec.state_words(s) if w.split("(")[0] in goal_predicates)

        out.append(Encoded(
            goal=enc(sorted(codec.fact_word(f) for f in r["goal"])),
            state=enc(codec.state_words(state)),
            action=ids[codec.action_word(Action(r["action"]))],
            answer=enc(answer),
            applicable=bool(r["applicable"]),
            next_state=enc(codec.state_words(nxt)),
            tower_next=towers(nxt),
            tower_now=towers(state),
            fact_pool=enc(pool_words),
        ))
    return out


def sample_sequence(ex: Encoded, vocab: Vocabulary, rng: np.random.Generator, *,
                    relabel: bool = True) -> tuple[list[int], int]:
    """A training sequence and the index where the answer starts (loss from there on)."""
    ids = vocab.word_ids
    goal = ex.goal
    if relabel:
        roll = rng.random()
        if roll < 0.2 and len(ex.tower_next):
            goal = ex.tower_next
        elif roll < 0.3 and len(ex.tower_next):
            keep = np.delete(ex.tower_next, rng.integers(len(ex.tower_next)))
            candidates = np.setdiff1d(ex.fact_pool, ex.next_state)
            extra = candidates[rng.integers(len(candidates))] if len(candidates) else None
            goal = np.sort(np.append(keep, extra)) if extra is not None else keep
        elif roll < 0.4 and len(ex.tower_now):
            goal = ex.tower_now
    answer = list(ex.answer)
    if ex.applicable:
        done = bool(np.isin(goal, ex.next_state).all())
        answer[-1] = ids[DONE] if done else answer[-1]
    prompt = [vocab.bos_id, ids[GOAL], *goal.tolist(), ids[STATE], *ex.state.tolist(),
              ids[ACTION], ex.action, ids[ARROW]]
    return prompt + answer, len(prompt)


def goal_of(words: Iterable[str]) -> FactGoal:
    return FactGoal(frozenset(words))
