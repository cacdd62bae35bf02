"""The text-observation codec: how a text-only world's state, action and next observation
become words for a language model, and back.

For environments that offer only text (TextWorld's cooking games: ``cooking-v0``), the world
model reads the state's text and the command and writes the observation the command produces,
then whether the game is won::

    prompt:  §state <state words> §action <command words> §obs
    answer:  <observation words> §done | §cont

Words are letters and digits (with an inner apostrophe: ``You've``) or single punctuation
characters, so ``"You take the apple."`` is ``You take the apple .``. Two texts are the same
observation when their words are the same (spacing and line breaks aside): that is what next-
observation exact match compares. Markers start with ``§`` followed by letters, which no word of
a text can be (``§`` alone is one punctuation word).

The vocabulary is learned from training text; a word never seen (a held-out game's new name)
is read as ``<unk>`` in a prompt and cannot be written in an answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from planner.errors import CodecError

TEXT_CODEC_NAME = "text-obs"
TEXT_CODEC_VERSION = 1

STATE, ACTION, OBS, DONE, CONT = "§state", "§action", "§obs", "§done", "§cont"
TEXT_MARKERS = (STATE, ACTION, OBS, DONE, CONT)
ENDS = (DONE, CONT)

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]")


def text_words(text: str) -> list[str]:
    """The words of ``text`` (see the module's description)."""
    if not isinstance(text, str):
        raise CodecError(f"text must be a string, got {type(text).__name__}")
    return _WORD.findall(text)


def join_words(words: Iterable[str]) -> str:
    """A readable text of ``words``: spaces between words, none before closing punctuation."""
    out: list[str] = []
    for w in words:
        if out and (w in ".,!?;:)" or out[-1] in "("):
            out[-1] += w
        else:
            out.append(w)
    return " ".join(out)


def same_observation(a: str, b: str) -> bool:
    """Whether two texts are the same observation (the same words)."""
    return text_words(a) == text_words(b)


@dataclass(frozen=True)
class TextExample:
    """One transition as the codec writes it: prompt and answer words."""

    prompt: tuple[str, ...]
    answer: tuple[str, ...]


def state_words(state_text: str) -> list[str]:
    """The prompt's start, shared by every command in the state whose text is ``state_text``."""
    return [STATE, *text_words(state_text)]


def command_words(action: str) -> list[str]:
    """The prompt's end for ``action`` (a command): :class:`CodecError` when it has no words."""
    command = text_words(action)
    if not command:
        raise CodecError(f"the command {action!r} has no words")
    return [ACTION, *command, OBS]


def prompt_words(state_text: str, action: str) -> list[str]:
    """The prompt for ``action`` (a command) in the state whose text is ``state_text``."""
    return state_words(state_text) + command_words(action)


def answer_words(observation: str, done: bool) -> list[str]:
    """The answer: the observation's words, then ``§done`` (the game is won) or ``§cont``."""
    return [*text_words(observation), DONE if done else CONT]


def example(state_text: str, action: str, observation: str, done: bool) -> TextExample:
    return TextExample(tuple(prompt_words(state_text, action)), tuple(answer_words(observation, done)))


def parse_answer(words: Sequence[str]) -> tuple[str, bool]:
    """(observation text, done) of an answer; :class:`CodecError` without its closing marker
    or with a marker inside."""
    if not words or words[-1] not in ENDS:
        raise CodecError(f"the answer does not end with {DONE} or {CONT}: {' '.join(words)[-80:]!r}")
    body = list(words[:-1])
    inner = [w for w in body if w in TEXT_MARKERS]
    if inner:
        raise CodecError(f"the answer holds the marker {inner[0]!r} inside the observation")
    return join_words(body), words[-1] == DONE
