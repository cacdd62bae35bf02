"""Voting over object numberings: ask a fact-delta model the same question under several
numberings of the problem's objects and keep the answer most of them give.

A fact-delta model sees objects only as placeholders ``x1 … xn``, numbered in the sorted order
of their names (:class:`~planner.world.codec.FactDeltaCodec`). A model that learned the
domain's rules answers alike under any numbering; where it learned an accident of the
numbering instead (a placeholder pair rarely seen together, a fact's position in the prompt),
another numbering often answers right, and the errors of different numberings seldom agree.
Voting trades model calls for fidelity: on the household test scenes, five numberings cut the
wrong next states of the shipped model from 32 to 18 of 5,936 for 2.2 times the model time
(``python benchmarks/votes.py``).

The questions are asked one numbering at a time, the other numberings only about answers the
first gives with a confidence below a threshold (:data:`VOTE_BELOW`), and an action stops being
asked once no later numbering can change its majority: with three votes, the third numbering is asked only about
the actions the first two disagree on, so voting costs about twice one call where the model is
sure of itself, not three times. A tie goes to the answer given first (the sorted numbering's
when it is among the tied), so two votes are one.

Plain functions; :class:`~planner.world.llama.LlamaWorldModel` (``votes=``) uses them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from planner.types import Prediction

MAX_VOTES = 15
"""Most numberings one prediction may be asked under."""
VOTE_BELOW = 0.99
"""Default confidence below which an answer is asked again under other numberings. On the
household test scenes every wrong next state of the shipped model had a confidence (the
probability of its whole answer) below 0.97, and 71% of all answers are above 0.99: asking
again only below 0.99 keeps what the votes fix for 2/3 of the model time of asking every answer
again."""


def numberings(objects: Sequence[str], votes: int) -> list[tuple[str, ...]]:
    """``votes`` distinct orders of ``objects`` (each becomes ``x1 … xn`` in that order): the
    sorted order first — the one a single-vote model uses — then permutations drawn from a
    generator seeded by the objects' names, so a problem gets the same numberings in every
    run and process. Fewer when ``objects`` have fewer orders than ``votes`` (``n!``)."""
    first = tuple(sorted(objects))
    out = [first]
    want = min(votes, math.factorial(len(first)))
    rng = random.Random("numberings\x1f" + "\x1f".join(first))
    seen = {first}
    while len(out) < want:
        order = list(first)
        rng.shuffle(order)
        key = tuple(order)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def tally(ballots: Sequence[Prediction]) -> list[tuple[Prediction, int]]:
    """The distinct answers among ``ballots`` (the same vote: the same outcome,
    :meth:`~planner.types.Prediction.same_outcome`) with their vote counts, most votes first,
    ties in the order the answers were first given (each answer is represented by its first
    ballot, whose confidence and raw text it keeps)."""
    answers: list[Prediction] = []
    counts: list[int] = []
    for ballot in ballots:
        for i, answer in enumerate(answers):
            if answer.same_outcome(ballot):
                counts[i] += 1
                break
        else:
            answers.append(ballot)
            counts.append(1)
    ranked = sorted(range(len(answers)), key=lambda i: (-counts[i], i))
    return [(answers[i], counts[i]) for i in ranked]


def decided(ballots: Sequence[Prediction], remaining: int) -> bool:
    """Whether ``remaining`` more ballots can no longer change the winner of ``ballots``: none
    left, or the leader's lead over the runner-up (an answer not given yet counts 0) exceeds
    them — or equals them when the leader was given first, since ties go to it."""
    if remaining <= 0:
        return True
    counts = tally(ballots)
    lead = counts[0][1] - (counts[1][1] if len(counts) > 1 else 0)
    return lead > remaining or (lead == remaining and counts[0][0].same_outcome(ballots[0]))


def winner(ballots: Sequence[Prediction]) -> Prediction:
    """The answer most ``ballots`` give (ties: the one given first), as first given.
    ``ValueError`` for no ballots."""
    if not ballots:
        raise ValueError("no ballots to count")
    return tally(ballots)[0][0]
