"""How states, actions and predictions become prompt text and come back.

The *fact-delta* codec (``fact-delta``) is for symbolic states. Object names are first mapped
to placeholders ``x1 … xn`` (objects in sorted order), so one model serves any object names. A
prompt is the goal, the state's facts and the action, stable text first (version 1)::

    goal on(x1,x2) ontable(x2) state clear(x1) handempty on(x1,x2) ontable(x2) action unstack(x1,x2) =>

Version 2 writes, between the action and ``=>``, the state's facts that name one of the
action's arguments, in the state's order::

    goal … state clear(x1) handempty on(x1,x2) ontable(x2) action unstack(x1,x2) clear(x1) on(x1,x2) ontable(x2) =>

so a rule that links the action to a fact through a third object (switching a lamp needs the
agent where the lamp is: ``in(x4,x5)`` then ``at(x5)``) is one look-up from the action's end of
the prompt instead of two. The state part is the same, so siblings still share it.

Version 3 writes fewer of them: only the facts whose *first* argument (their subject) is one of
the action's arguments — ``use(x4) in(x4,x5) toggleable(x4)``, not every ``in(x1,x4)`` of a
receptacle ``x4`` — so the link through a third object stays one look-up while the suffix stays
short (in the household games, 5 facts on average where version 2 writes 9).

In every version the model answers with a verdict and, when the action applies, the delta and done::

    ok add holding(x1) clear(x2) del clear(x1) handempty on(x1,x2) cont
    fail

The next state is the current one with the delta applied. Short outputs mean few generated
tokens: the main speed lever.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from planner.errors import CodecError, VocabularyError, WorldModelError
from planner.types import Action, FactGoal, Prediction, State
from planner.world.vocab import Vocabulary, placeholder, render_atom

CODEC_NAME = "fact-delta"
CODEC_VERSION = 1
"""The version training writes unless told otherwise (``planner train --codec-version``)."""
CODEC_VERSIONS = (1, 2, 3)
"""The versions :class:`FactDeltaCodec` reads and writes: 1 (``action A =>``), 2 (the facts that
name one of the action's arguments before ``=>``) and 3 (those whose first argument is one)."""

GOAL, STATE, ACTION, ARROW = "goal", "state", "action", "=>"
_PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9_-])x[1-9][0-9]*(?![A-Za-z0-9_-])")
"""A placeholder standing alone or as a fact word's argument (``x3`` in ``in(x3,x12)``)."""
OK, FAIL, ADD, DEL, DONE, CONT = "ok", "fail", "add", "del", "done", "cont"
MARKERS = (GOAL, STATE, ACTION, ARROW, OK, FAIL, ADD, DEL, DONE, CONT)


def parse_atom(text: str) -> tuple[str, tuple[str, ...]]:
    """``"(on a b)"`` → ``("on", ("a", "b"))``; :class:`CodecError` (a ``ValueError``) on a
    malformed atom."""
    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise CodecError(f"not a ground atom: {text!r}")
    parts = inner[1:-1].split()
    if not parts:
        raise CodecError(f"empty atom: {text!r}")
    return parts[0].lower(), tuple(p.lower() for p in parts[1:])


def parse_word(word: str) -> tuple[str, tuple[str, ...]]:
    """``"on(x1,x2)"`` → ``("on", ("x1", "x2"))``; ``"handempty"`` → ``("handempty", ())``."""
    if "(" not in word:
        return word, ()
    if not word.endswith(")"):
        raise CodecError(f"not a fact word: {word!r}")
    name, _, rest = word[:-1].partition("(")
    return name, tuple(rest.split(",")) if rest else ()


class FactDelta(BaseModel):
    """A parsed model answer, validated against the state it was asked about.

    Validation context: ``state`` (frozenset of fact words), ``predicates`` (name → arity),
    ``objects`` (allowed placeholders).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    applicable: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    done: bool = False

    @field_validator("added", "removed")
    @classmethod
    def _known_facts(cls, facts: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        ctx = info.context or {}
        predicates: Mapping[str, int] = ctx.get("predicates", {})
        objects: frozenset[str] = ctx.get("objects", frozenset())
        for word in facts:
            name, args = parse_word(word)
            if name not in predicates:
                raise CodecError(f"unknown predicate {name!r} in {word!r}")
            if len(args) != predicates[name]:
                raise CodecError(f"{word!r}: {name} takes {predicates[name]} arguments")
            unknown = [a for a in args if a not in objects]
            if unknown:
                raise CodecError(f"{word!r}: unknown object {unknown[0]!r}")
        return facts

    @model_validator(mode="after")
    def _consistent_with_state(self, info: ValidationInfo) -> FactDelta:
        state: frozenset[str] = (info.context or {}).get("state", frozenset())
        check_delta(self.applicable, self.added, self.removed, self.done, state)
        return self


def check_delta(applicable: bool, added: Sequence[str], removed: Sequence[str], done: bool,
                state: frozenset[str]) -> None:
    """Raise :class:`CodecError` (a ``ValueError``) unless the delta is consistent with
    ``state`` (same fact syntax)."""
    if not applicable and (added or removed or done):
        raise CodecError("an inapplicable action cannot change the state or finish")
    if len(set(added)) != len(added) or len(set(removed)) != len(removed):
        raise CodecError(f"repeated facts in {list(added)} / {list(removed)}")
    present = [f for f in added if f in state]
    if present:
        raise CodecError(f"added facts already hold: {present}")
    absent = [f for f in removed if f not in state]
    if absent:
        raise CodecError(f"removed facts do not hold: {absent}")
    both = set(added) & set(removed)
    if both:
        raise CodecError(f"facts both added and removed: {sorted(both)}")
    # An applicable action may change nothing (switching on a lamp that is on): ``ok add del``.


@dataclass(frozen=True)
class FactDeltaCodec:
    """Renders prompts and parses answers for one problem's objects.

    Args:
        objects: the problem's object names; sorted, they become ``x1 … xn``.
        predicates: predicate name → arity.
        actions: action schema name → arity.
        max_objects: placeholders the model knows.
        numbering: the objects in the order they become ``x1 … xn`` instead (a permutation of
            ``objects``; empty: sorted). A model that learned the rules, not the names, answers
            alike under any numbering; :mod:`planner.world.votes` asks it under several.
        version: the prompt layout, one of :data:`CODEC_VERSIONS` (see the module's docstring).
    """

    objects: tuple[str, ...]
    predicates: Mapping[str, int]
    actions: Mapping[str, int]
    max_objects: int
    numbering: tuple[str, ...] = ()
    version: int = CODEC_VERSION

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version not in CODEC_VERSIONS:
            raise CodecError(f"fact-delta codec version must be one of {list(CODEC_VERSIONS)}, got {self.version!r}")
        if len(self.objects) > self.max_objects:
            raise VocabularyError(
                f"the problem has {len(self.objects)} objects but the model knows at most "
                f"{self.max_objects} (placeholders x1..x{self.max_objects})"
            )
        repeated = sorted({o for o in self.objects if self.objects.count(o) > 1})
        if repeated:
            raise VocabularyError(f"the problem lists objects more than once: {repeated[:5]}")
        ordered = sorted(self.objects)
        object.__setattr__(self, "objects", tuple(ordered))
        if self.numbering:
            if sorted(self.numbering) != ordered:
                raise VocabularyError(f"a numbering must list each of the problem's objects once: "
                                      f"{list(self.numbering)[:5]} for objects {ordered[:5]}")
            ordered = list(self.numbering)
        object.__setattr__(self, "_to_ph", {o: placeholder(i) for i, o in enumerate(ordered)})
        object.__setattr__(self, "_from_ph", {placeholder(i): o for i, o in enumerate(ordered)})
        # Memo of fact ↔ word translations: search asks about the same facts over and over.
        object.__setattr__(self, "_fact_words", {})
        object.__setattr__(self, "_word_facts", {})

    # -- names ------------------------------------------------------------------------------
    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(self._from_ph)  # type: ignore[attr-defined]

    def fact_word(self, fact: str) -> str:
        memo: dict[str, str] = self._fact_words  # type: ignore[attr-defined]
        word = memo.get(fact)
        if word is None:
            name, args = parse_atom(fact)
            problem = self._fact_problem(name, args, fact)
            if problem is not None:
                raise VocabularyError(problem)
            word = render_atom(name, [self._to_ph[a] for a in args])  # type: ignore[attr-defined]
            memo[fact] = word
        return word

    def word_fact(self, word: str) -> str:
        memo: dict[str, str] = self._word_facts  # type: ignore[attr-defined]
        fact = memo.get(word)
        if fact is None:
            name, args = parse_word(word)
            names = [self._from_ph[a] for a in args]  # type: ignore[attr-defined]
            fact = memo[word] = "(" + " ".join([name, *names]) + ")"
        return fact

    def renumbered(self, text: str, into: FactDeltaCodec) -> str:
        """``text`` (an answer or prompt written with this codec's placeholders) with each
        placeholder replaced by the one ``into`` (the same problem, another numbering) gives the
        same object; text that names no placeholder of this codec comes back unchanged."""
        to_ph: dict[str, str] = into._to_ph  # type: ignore[attr-defined]
        names: dict[str, str] = self._from_ph  # type: ignore[attr-defined]
        return _PLACEHOLDER.sub(lambda m: to_ph[names[m.group(0)]] if m.group(0) in names else m.group(0), text)

    def action_word(self, action: Action) -> str:
        name, args = parse_atom(action.name)
        problem = self._schema_problem("action", self.actions, name, args, action.name)
        if problem is not None:
            raise VocabularyError(problem)
        return render_atom(name, [self._to_ph[a] for a in args])  # type: ignore[attr-defined]

    # -- checking a problem against the vocabulary -------------------------------------------
    def _schema_problem(self, kind: str, schemas: Mapping[str, int], name: str, args: tuple[str, ...],
                        text: str) -> str | None:
        """Why ``text`` (parsed as ``name`` and ``args``) cannot be written, or ``None``."""
        found = self._finding(kind, schemas, name, args, text)
        return None if found is None else found[1]

    def _finding(self, kind: str, schemas: Mapping[str, int], name: str, args: tuple[str, ...],
                 text: str) -> tuple[tuple[str, ...], str] | None:
        """``(key, message)`` of the first reason ``text`` cannot be written; the key groups
        the same problem across atoms (one unknown predicate, one wrong arity, one object)."""
        if name not in schemas:
            known = ", ".join(sorted(schemas)) or "none"
            return ("unknown", kind, name), f"unknown {kind} {name!r} in {text} (the model knows {known})"
        if len(args) != schemas[name]:
            return ("arity", kind, name, str(len(args))), (
                f"{kind} {name!r} takes {schemas[name]} arguments, {text} has {len(args)}")
        unknown = [a for a in args if a not in self._to_ph]  # type: ignore[attr-defined]
        if unknown:
            return ("object", unknown[0]), f"object {unknown[0]!r} in {text} is not one of the problem's objects"
        return None

    def _fact_problem(self, name: str, args: tuple[str, ...], fact: str) -> str | None:
        return self._schema_problem("predicate", self.predicates, name, args, fact)

    def vocabulary_problems(self, *, facts: Iterable[str] = (), actions: Iterable[str] = (),
                            limit: int = 20) -> list[str]:
        """Why some of ``facts`` or ``actions`` (ground, as ``"(on a b)"``) cannot be written
        in this codec's vocabulary: one line per distinct problem (unknown predicate or action,
        wrong arity, object outside the problem, malformed atom), at most ``limit`` lines and a
        count of the rest. Empty when everything can be written."""
        found: dict[tuple[str, ...], str] = {}
        for kind, schemas, texts in (("predicate", self.predicates, facts), ("action", self.actions, actions)):
            for text in sorted(texts):
                try:
                    name, args = parse_atom(text)
                except CodecError as exc:
                    found.setdefault(("malformed", text), str(exc))
                    continue
                finding = self._finding(kind, schemas, name, args, text)
                if finding is not None:
                    found.setdefault(*finding)
        lines = list(found.values())
        if len(lines) > limit:
            lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
        return lines

    def state_words(self, state: State) -> list[str]:
        return sorted(self.fact_word(f) for f in state.facts)

    # -- prompts ----------------------------------------------------------------------------
    def prefix_words(self, goal: FactGoal, state: State) -> list[str]:
        """The stable part of a prompt: goal and state (shared by all siblings)."""
        return prompt_prefix(sorted(self.fact_word(f) for f in goal.facts), self.state_words(state), MARKER_WORDS)

    def suffix_words(self, action: Action, state: State | None = None) -> list[str]:
        """The per-action part of a prompt about ``state`` (version 1 does not read it)."""
        return self.suffixes([action], state)[0]

    def suffixes(self, actions: Sequence[Action], state: State | None = None) -> list[list[str]]:
        """:meth:`suffix_words` of each of ``actions`` about one ``state`` (its facts parsed once)."""
        words = [self.action_word(a) for a in actions]
        if self.version == 1:
            return [prompt_suffix(w, MARKER_WORDS) for w in words]
        if state is None:
            raise CodecError(f"fact-delta version {self.version} writes the state's facts after the action: "
                             "a state is needed")
        facts = self.state_words(state)
        args = {f: parse_word(f)[1][: 1 if subject_only(self.version) else None] for f in facts}
        return [prompt_suffix(w, MARKER_WORDS, argument_facts(facts, parse_word(w)[1], args.__getitem__))
                for w in words]

    def prompt_text(self, goal: FactGoal, state: State, action: Action) -> str:
        return " ".join(self.prefix_words(goal, state) + self.suffix_words(action, state))

    def answer_words(self, pred: Prediction, state: State) -> list[str]:
        """The answer a perfect model gives for ``pred`` (training targets, golden tests)."""
        if not pred.applicable:
            return [FAIL]
        before, after = set(self.state_words(state)), set(self.state_words(pred.next_state))
        return [OK, ADD, *sorted(after - before), DEL, *sorted(before - after),
                DONE if pred.done else CONT]

    # -- answers ----------------------------------------------------------------------------
    def parse(self, words: Sequence[str], state: State, *, confidence: float = 1.0,
              state_words: frozenset[str] | None = None) -> Prediction:
        """Parse and validate an answer; :class:`WorldModelError` (with the raw text) if bad.

        ``state_words`` may pass ``frozenset(self.state_words(state))`` computed once for
        many answers about the same state.
        """
        raw = " ".join(words)
        if len(words) == 1 and words[0] == FAIL:  # the common answer: no delta to validate
            return Prediction(applicable=False, next_state=state, confidence=confidence, raw=raw)
        if state_words is None:
            state_words = frozenset(self.state_words(state))
        try:
            delta = self._structure(words)
            checked = FactDelta.model_validate(
                delta,
                context={"state": state_words, "predicates": self.predicates, "objects": self.placeholders},
            )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise WorldModelError(f"malformed fact-delta answer: {_first_line(exc)}", raw=raw) from None
        if not checked.applicable:
            return Prediction(applicable=False, next_state=state, confidence=confidence, raw=raw)
        added = {self.word_fact(w) for w in checked.added}
        removed = {self.word_fact(w) for w in checked.removed}
        nxt = State((state.facts - removed) | added)
        return Prediction(applicable=True, next_state=nxt, reward=1.0 if checked.done else 0.0,
                          done=checked.done, confidence=confidence, raw=raw)

    @staticmethod
    def _structure(words: Sequence[str]) -> dict[str, object]:
        if not words:
            raise CodecError("empty answer")
        if words[0] == FAIL:
            if len(words) > 1:
                raise CodecError(f"unexpected words after 'fail': {list(words[1:])}")
            return {"applicable": False}
        if words[0] != OK:
            raise CodecError(f"answer must start with 'ok' or 'fail', got {words[0]!r}")
        if len(words) < 4 or words[1] != ADD or words[-1] not in (DONE, CONT) or DEL not in words:
            raise CodecError("expected 'ok add … del … done|cont'")
        split = list(words).index(DEL)
        added, removed = list(words[2:split]), list(words[split + 1:-1])
        stray = [w for w in added + removed if w in MARKERS]
        if stray:
            raise CodecError(f"misplaced marker {stray[0]!r}")
        return {"applicable": True, "added": tuple(added), "removed": tuple(removed),
                "done": words[-1] == DONE}


T = TypeVar("T")

MARKER_WORDS: Mapping[str, str] = {m: m for m in MARKERS}
"""Each marker as itself: :func:`prompt_prefix` and :func:`prompt_suffix` over words."""


def prompt_prefix(goal: Sequence[T], state: Sequence[T], markers: Mapping[str, T]) -> list[T]:
    """The one prompt layout, stable part first: ``goal G… state S…`` — over words, or over
    token ids (with ``markers`` mapping each marker word to its id), so runtime and training
    build prompts the same way. ``goal`` and ``state`` are already sorted."""
    return [markers[GOAL], *goal, markers[STATE], *state]


def prompt_suffix(action: T, markers: Mapping[str, T], facts: Sequence[T] = ()) -> list[T]:
    """The per-action end of a prompt: ``action A =>`` (version 1), or ``action A F… =>`` with
    the action's arguments' facts (versions 2 and 3, :func:`argument_facts`); the answer follows."""
    return [markers[ACTION], action, *facts, markers[ARROW]]


def subject_only(version: int) -> bool:
    """Whether the codec's ``version`` compares a fact with the action by the fact's first
    argument alone (version 3) rather than by all of them (version 2) — the one rule runtime
    prompts and training batches both follow."""
    return version >= 3


def argument_facts(state: Sequence[T], arguments: Iterable[object],
                   arguments_of: Callable[[T], Iterable[object]]) -> list[T]:
    """The facts of ``state`` (in its order) that name one of ``arguments``: what versions 2
    and 3 write after the action. ``arguments_of`` gives the arguments of a fact that count —
    all of them (version 2) or its first (version 3); over words (placeholders) at run time,
    over token ids (placeholder indices) in training."""
    wanted = set(arguments)
    if not wanted:
        return []
    return [f for f in state if not wanted.isdisjoint(arguments_of(f))]


def _first_line(exc: Exception) -> str:
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # pydantic: "1 validation error for X\nfield\n  Value error, message [type=...]"
    for ln in lines:
        if ln.startswith("Value error,"):
            return ln.removeprefix("Value error,").split(" [type=")[0].strip()
    return lines[-1] if lines else type(exc).__name__


def domain_vocabulary(predicates: Mapping[str, int], actions: Mapping[str, int], max_objects: int) -> Vocabulary:
    """The vocabulary of the fact-delta codec for a domain."""
    return Vocabulary.build(MARKERS, {**predicates, **actions}, max_objects)


def schemas_of(names: Iterable[str]) -> dict[str, int]:
    """Action schema name → arity, from ground action names such as ``"(stack a b)"``."""
    out: dict[str, int] = {}
    for n in names:
        name, args = parse_atom(n)
        out[name] = len(args)
    return out
