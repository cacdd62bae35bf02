"""Transition logs as the chat data fine-tuning tools read (ShareGPT, OpenAI chat, Alpaca), and back.

Each episode becomes one conversation: the system message holds the domain, the objects, the
goal and the state before the first step; each user message is an action; each assistant
message is what the environment answered. :func:`import_trajectories` rebuilds records equal
(``==``) to the exported ones.

The text (the same in every format)
-----------------------------------
System message: a paragraph of instructions (free text, ignored on import), then four lines::

    Domain: "blocksworld"
    Objects: ["b1", "b2", "b3"]
    Goal: ["(on b2 b3)", "(ontable b1)", "(ontable b3)"]
    State: ["(clear b2)", "(clear b3)", "(handempty)", "(on b3 b1)", "(ontable b1)", "(ontable b2)"]

User message: the action, verbatim (``(unstack b3 b1)``).

Assistant message: one ``Key: value`` line each::

    Applicable: yes
    Added: ["(clear b1)", "(holding b3)"]
    Removed: ["(clear b3)", "(handempty)", "(on b3 b1)"]
    Reward: 0.0
    Done: no

``Applicable`` and ``Done`` are ``yes`` or ``no``; every other value is JSON, so no value holds
a raw newline and any fact text (no domain is assumed) parses back exactly. The change is
``Added``/``Removed`` (next state = sorted(state - removed + added)) when both states are
sorted lists without duplicates, as every collected log's are; otherwise the whole
``Next state: [...]``; no change line at all when the state did not change.

The formats
-----------
* ``sharegpt`` (JSONL, one conversation a line):
  ``{"conversations": [{"from": "system"|"human"|"gpt", "value": ...}, ...], "metadata": {...}}``
* ``openai`` (JSONL, one conversation a line):
  ``{"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...], "metadata": {...}}``
* ``alpaca`` (a JSON array, one record per step):
  ``{"instruction": <system text>, "input": <trajectory so far>, "output": <reply>, "metadata": {...}}``;
  ``input`` holds, for each earlier step, an ``Action: <JSON string>`` line and its reply,
  blocks separated by a blank line, then this step's ``Action:`` line.

Metadata: what the text does not carry, one ``metadata`` object per conversation or record,
with the same keys on every row (so table loaders such as Hugging Face ``datasets`` accept it)::

    {"episode": "bw-3-0/random-0", "problem": "bw-3-0", "split": "train", "source": "random",
     "steps": [0, 1, 2]}            (alpaca: "step": 2)

An episode whose records change problem, domain, objects, goal, split or source, or whose step
does not start from the previous step's next state, is split into as many conversations as
needed, all with the same ``episode``. Records come back in the order they are exported:
episodes in order of first appearance, steps in order within each (a collected log's order).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from planner.data.collect import TransitionRecord
from planner.errors import ConfigError, FormatError
from planner.io import atomic_write_text

__all__ = [
    "FORMATS",
    "ConversationMeta",
    "EpisodeMeta",
    "Format",
    "FormatError",
    "StepMeta",
    "export_trajectories",
    "import_trajectories",
    "parse_format",
    "read_trajectories",
    "write_trajectories",
]

Format = Literal["sharegpt", "openai", "alpaca"]
FORMATS: tuple[Format, ...] = get_args(Format)
_T = TypeVar("_T")

INTRO = (
    "You are the world model of an environment. Each user message is an action taken in the current "
    "state. Answer whether the action was applicable, how the state changed (the facts added and removed, "
    "or the whole next state), the reward and whether the episode is done. Applicable and Done are yes or "
    "no; every other value is JSON."
)
"""The instructions opening every system message (not read back on import)."""

_START_KEYS = ("Domain", "Objects", "Goal", "State")
_REPLY_SHAPES = (
    ("Applicable", "Reward", "Done"),
    ("Applicable", "Added", "Removed", "Reward", "Done"),
    ("Applicable", "Next state", "Reward", "Done"),
)
_FORMAT_KEYS: tuple[tuple[Format, str], ...] = (
    ("sharegpt", "conversations"), ("openai", "messages"), ("alpaca", "instruction"))
"""The key that tells each format apart, for reading files whose format is not given."""
_HEADER_FIELDS = ("problem", "domain", "objects", "goal", "split", "source")




class EpisodeMeta(BaseModel):
    """What the chat text does not carry: which episode, problem, split and behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    episode: str
    problem: str
    split: str
    source: str


class ConversationMeta(EpisodeMeta):
    """Metadata of a ShareGPT or OpenAI conversation: the step number of each user turn."""

    steps: list[int]


class StepMeta(EpisodeMeta):
    """Metadata of an Alpaca record: its step number."""

    step: int


@dataclass(frozen=True)
class _Chat:
    """How a chat format spells its messages."""

    list_key: str
    role_key: str
    text_key: str
    system: str
    user: str
    assistant: str


_CHATS = {
    "sharegpt": _Chat("conversations", "from", "value", "system", "human", "gpt"),
    "openai": _Chat("messages", "role", "content", "system", "user", "assistant"),
}


class _Start(NamedTuple):
    """What a system message says: the problem and the state before the first step."""

    domain: str
    objects: list[str]
    goal: list[str]
    state: list[str]


class _Reply(NamedTuple):
    """What an assistant message says."""

    applicable: bool
    next_state: list[str]
    reward: float
    done: bool


def parse_format(name: str) -> Format:
    """``name`` as a :data:`Format`; :class:`~planner.errors.ConfigError` naming it otherwise."""
    for fmt in FORMATS:
        if name == fmt:
            return fmt
    raise ConfigError(f"unknown trajectory format {name!r}; choose among {list(FORMATS)}")


# -- export ---------------------------------------------------------------------------------
def export_trajectories(records: Iterable[TransitionRecord], *, format: Format) -> list[dict[str, Any]]:
    """The trajectories of ``records`` in ``format`` (see the module notes): one conversation per
    episode for ``sharegpt`` and ``openai``, one record per step for ``alpaca``."""
    parse_format(format)
    segments = _segments(records)
    if format == "alpaca":
        return [item for segment in segments for item in _alpaca_items(segment)]
    return [_conversation(segment, _CHATS[format]) for segment in segments]


def write_trajectories(path: str | Path, records: Iterable[TransitionRecord], *, format: Format) -> int:
    """Write the trajectories of ``records`` to ``path`` atomically: JSONL for ``sharegpt`` and
    ``openai``, a JSON array for ``alpaca``. Returns the number of conversations (or Alpaca
    records) written; :class:`~planner.io.FileWriteError` names ``path`` on failure."""
    items = export_trajectories(records, format=format)
    if format == "alpaca":
        text = _dumps(items, indent=2) + "\n"
    else:
        text = "".join(_dumps(item) + "\n" for item in items)
    atomic_write_text(path, text)
    return len(items)


def _segments(records: Iterable[TransitionRecord]) -> list[list[TransitionRecord]]:
    """Records grouped by episode (first appearance first), by step within each, cut where a
    step does not continue the one before (see :func:`_continues`)."""
    episodes: dict[str, list[TransitionRecord]] = {}
    for rec in records:
        episodes.setdefault(rec.episode, []).append(rec)
    segments: list[list[TransitionRecord]] = []
    for steps in episodes.values():
        current: list[TransitionRecord] = []
        for rec in sorted(steps, key=lambda r: r.step):
            if current and not _continues(current[-1], rec):
                segments.append(current)
                current = []
            current.append(rec)
        segments.append(current)
    return segments


def _continues(prev: TransitionRecord, rec: TransitionRecord) -> bool:
    """Whether ``rec`` can follow ``prev`` in one conversation: same problem, domain, objects,
    goal, split and source, and it starts from ``prev``'s next state."""
    return rec.state == prev.next_state and all(getattr(rec, f) == getattr(prev, f) for f in _HEADER_FIELDS)


def _conversation(segment: list[TransitionRecord], chat: _Chat) -> dict[str, Any]:
    messages = [{chat.role_key: chat.system, chat.text_key: _system_text(segment[0])}]
    for rec in segment:
        messages.append({chat.role_key: chat.user, chat.text_key: rec.action})
        messages.append({chat.role_key: chat.assistant, chat.text_key: _reply_text(rec)})
    meta = ConversationMeta(**_episode_fields(segment[0]), steps=[rec.step for rec in segment])
    return {chat.list_key: messages, "metadata": meta.model_dump()}


def _alpaca_items(segment: list[TransitionRecord]) -> list[dict[str, Any]]:
    instruction = _system_text(segment[0])
    history: list[str] = []
    items = []
    for rec in segment:
        action_line = _line("Action", _dumps(rec.action))
        reply = _reply_text(rec)
        meta = StepMeta(**_episode_fields(rec), step=rec.step)
        items.append({"instruction": instruction, "input": "\n\n".join([*history, action_line]),
                      "output": reply, "metadata": meta.model_dump()})
        history.append(action_line + "\n" + reply)
    return items


def _episode_fields(rec: TransitionRecord) -> dict[str, str]:
    return {"episode": rec.episode, "problem": rec.problem, "split": rec.split, "source": rec.source}


def _system_text(rec: TransitionRecord) -> str:
    values = (rec.domain, rec.objects, rec.goal, rec.state)
    return INTRO + "\n\n" + "\n".join(_line(key, _dumps(v)) for key, v in zip(_START_KEYS, values))


def _reply_text(rec: TransitionRecord) -> str:
    lines = [_line("Applicable", _yes_no(rec.applicable))]
    if rec.next_state != rec.state:
        if _is_sorted_set(rec.state) and _is_sorted_set(rec.next_state):
            held, after = set(rec.state), set(rec.next_state)
            lines += [_line("Added", _dumps(sorted(after - held))), _line("Removed", _dumps(sorted(held - after)))]
        else:
            lines.append(_line("Next state", _dumps(rec.next_state)))
    lines += [_line("Reward", _dumps(rec.reward)), _line("Done", _yes_no(rec.done))]
    return "\n".join(lines)


def _is_sorted_set(facts: list[str]) -> bool:
    return all(a < b for a, b in itertools.pairwise(facts))


def _line(key: str, value: str) -> str:
    return f"{key}: {value}"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _dumps(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON, non-ASCII text kept readable; all escaped when it holds text UTF-8
    cannot carry (a lone surrogate), so a file can always be written."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, indent=indent)
    return text


# -- import ---------------------------------------------------------------------------------
def import_trajectories(items: Iterable[Any], *, format: Format | None = None,
                        name: str = "<trajectories>") -> list[TransitionRecord]:
    """The transition records of exported trajectories ``items`` (decoded JSON values), in the
    order they were exported. ``format`` ``None`` recognises each item's format by its keys.

    Raises :class:`FormatError` naming ``name``, the record number (from 1) and the problem.
    """
    return _import(((f"record {i}", item) for i, item in enumerate(items, start=1)), format, name)


def read_trajectories(path: str | Path, *, format: Format | None = None) -> list[TransitionRecord]:
    """The transition records of the trajectory file ``path``: JSONL, or a JSON array (either
    works for every format). ``format`` ``None`` recognises each item's format by its keys.

    Raises :class:`FormatError` naming the file, the line (JSONL) or record (array) and the
    problem; ``OSError`` when the file cannot be read.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return _import(_numbered_items(text, str(path)), format, str(path))


def _numbered_items(text: str, name: str) -> Iterator[tuple[str, Any]]:
    """(where, decoded item) for each item of a JSON array or each line of a JSONL text."""
    if text.lstrip().startswith("["):
        yield from ((f"record {i}", item) for i, item in enumerate(_loads(text, name), start=1))
        return
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield f"line {number}", _loads(line, name, line=number)


def _loads(text: str, name: str, *, line: int | None = None) -> Any:
    """``text`` decoded; :class:`FormatError` naming ``name`` and the line otherwise (``line``
    when ``text`` is that one line of the file)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{name}: line {line or exc.lineno}: not JSON ({exc.msg}, column {exc.colno})") from None
    except (ValueError, RecursionError):
        where = f"{name}: line {line}" if line else name
        raise FormatError(f"{where}: not JSON (nested too deeply or a number out of range)") from None


def _import(numbered: Iterable[tuple[str, Any]], format: Format | None, name: str) -> list[TransitionRecord]:
    if format is not None:
        parse_format(format)
    records: list[TransitionRecord] = []
    for where, item in numbered:
        try:
            fmt = format or _detect(item)
            records += _alpaca_record(item) if fmt == "alpaca" else _conversation_records(item, _CHATS[fmt])
        except FormatError as exc:
            raise FormatError(f"{name}: {where}: {exc}") from None
    return records


def _detect(item: Any) -> Format:
    """The format of one item, from its keys."""
    if isinstance(item, dict):
        for fmt, key in _FORMAT_KEYS:
            if key in item:
                return fmt
    raise FormatError(f"not a conversation or an Alpaca record (no 'conversations', 'messages' or "
                      f"'instruction' key): {_short(item)}")


def _conversation_records(item: Any, chat: _Chat) -> list[TransitionRecord]:
    """The records of one ShareGPT or OpenAI conversation."""
    messages = item.get(chat.list_key) if isinstance(item, dict) else None
    if not isinstance(messages, list):
        raise FormatError(f"not a conversation: no {chat.list_key!r} list in {_short(item)}")
    texts = _message_texts(messages, chat)
    meta = _metadata(item, ConversationMeta)
    if len(meta.steps) != len(texts) // 2:
        raise FormatError(f"metadata.steps lists {len(meta.steps)} steps but the conversation has "
                          f"{len(texts) // 2} actions")
    start = _where("message 1", _parse_start, texts[0])
    state, records = start.state, []
    for i, step in enumerate(meta.steps):
        reply = _where(f"message {2 * i + 3}", _parse_reply, texts[2 * i + 2], state)
        records.append(_record(meta, step, start, state, texts[2 * i + 1], reply))
        state = reply.next_state
    return records


def _message_texts(messages: list[Any], chat: _Chat) -> list[str]:
    """The texts of ``messages``, checked to be a system message then user/assistant pairs."""
    if len(messages) < 3 or len(messages) % 2 == 0:
        raise FormatError(f"a conversation is a {chat.system!r} message then ({chat.user!r}, {chat.assistant!r}) "
                          f"pairs; found {len(messages)} messages")
    expected = [chat.system] + [chat.user, chat.assistant] * (len(messages) // 2)
    texts = []
    for number, (message, role) in enumerate(zip(messages, expected), start=1):
        found = message.get(chat.role_key) if isinstance(message, dict) else None
        text = message.get(chat.text_key) if isinstance(message, dict) else None
        if found != role:
            raise FormatError(f"message {number}: expected {chat.role_key} {role!r}, found {_short(found)}")
        if not isinstance(text, str):
            raise FormatError(f"message {number}: {chat.text_key!r} is not a string: {_short(text)}")
        texts.append(text)
    return texts


def _alpaca_record(item: Any) -> list[TransitionRecord]:
    """The one record of an Alpaca item (its ``input`` replayed from the system state)."""
    if not isinstance(item, dict):
        raise FormatError(f"not an Alpaca record: {_short(item)}")
    fields = {key: item.get(key) for key in ("instruction", "input", "output")}
    for key, value in fields.items():
        if not isinstance(value, str):
            raise FormatError(f"Alpaca field {key!r} is not a string: {_short(value)}")
    meta = _metadata(item, StepMeta)
    start = _where("instruction", _parse_start, fields["instruction"])
    *history, last = str(fields["input"]).split("\n\n")
    state = start.state
    for number, block in enumerate(history, start=1):
        action_line, _, answer = block.partition("\n")
        _where(f"input block {number}", _parse_action, action_line)
        state = _where(f"input block {number}", _parse_reply, answer, state).next_state
    action = _where(f"input block {len(history) + 1}", _parse_action, last)
    reply = _where("output", _parse_reply, str(fields["output"]), state)
    return [_record(meta, meta.step, start, state, action, reply)]


def _where(place: str, parse: Callable[..., _T], *args: Any) -> _T:
    """``parse(*args)``, a :class:`FormatError` prefixed with ``place``."""
    try:
        return parse(*args)
    except FormatError as exc:
        raise FormatError(f"{place}: {exc}") from None


def _metadata(item: dict[str, Any], model: type[EpisodeMeta]) -> Any:
    data = item.get("metadata")
    if not isinstance(data, dict):
        raise FormatError("no 'metadata' object (it carries episode, problem, split, source and step numbers)")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FormatError(f"metadata: {_first_error(exc)}") from None


def _record(meta: EpisodeMeta, step: int, start: _Start, state: list[str], action: str,
            reply: _Reply) -> TransitionRecord:
    try:
        return TransitionRecord(
            problem=meta.problem, domain=start.domain, objects=start.objects, goal=start.goal, state=state,
            action=action, applicable=reply.applicable, next_state=reply.next_state, reward=reply.reward,
            done=reply.done, episode=meta.episode, step=step, source=meta.source, split=meta.split)
    except ValidationError as exc:
        raise FormatError(f"not a transition record: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    return f"{where}: {first['msg']} (got {_short(first.get('input'))})"


# -- the text -------------------------------------------------------------------------------
def _parse_start(text: str) -> _Start:
    """The lines ``Domain``, ``Objects``, ``Goal``, ``State`` that end a system message (from its
    last ``Domain:`` line on; what comes before is free text)."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("Domain: ")]
    values = _keyed(lines[starts[-1] if starts else -1:], (_START_KEYS,), "system text")
    return _Start(_json_str(values["Domain"], "Domain"),
                  *(_facts(values[key], key) for key in _START_KEYS[1:]))


def _parse_reply(text: str, state: list[str]) -> _Reply:
    """An assistant reply to an action taken in ``state``."""
    values = _keyed(text.split("\n"), _REPLY_SHAPES, "reply")
    if "Next state" in values:
        next_state = _facts(values["Next state"], "Next state")
    elif "Added" in values:
        next_state = _apply(state, _facts(values["Added"], "Added"), _facts(values["Removed"], "Removed"))
    else:
        next_state = list(state)
    return _Reply(_flag(values["Applicable"], "Applicable"), next_state, _number(values["Reward"], "Reward"),
                  _flag(values["Done"], "Done"))


def _apply(state: list[str], added: list[str], removed: list[str]) -> list[str]:
    """The state after removing ``removed`` and adding ``added``, checked to be a true change."""
    held = set(state)
    for fact in removed:
        if fact not in held:
            raise FormatError(f"Removed fact {fact!r} does not hold in the state {_short(state)}")
    for fact in added:
        if fact in held:
            raise FormatError(f"Added fact {fact!r} already holds in the state {_short(state)}")
    return sorted((held - set(removed)) | set(added))


def _parse_action(line: str) -> str:
    return _json_str(_keyed([line], (("Action",),), "action line")["Action"], "Action")


def _keyed(lines: list[str], shapes: tuple[tuple[str, ...], ...], what: str) -> dict[str, str]:
    """The values of ``Key: value`` lines, checked to carry the keys of one of ``shapes`` in order."""
    keys = tuple(line.partition(": ")[0] if ": " in line else _short(line) for line in lines)
    if keys not in shapes:
        expected = " or ".join("/".join(shape) for shape in shapes)
        raise FormatError(f"{what}: expected lines {expected}, found {'/'.join(keys)}")
    return {key: line.partition(": ")[2] for key, line in zip(keys, lines)}


def _json(raw: str, key: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise FormatError(f"{key}: {_short(raw)} is not JSON") from None


def _facts(raw: str, key: str) -> list[str]:
    value = _json(raw, key)
    if not isinstance(value, list) or not all(isinstance(fact, str) for fact in value):
        raise FormatError(f"{key}: expected a JSON list of strings, got {_short(raw)}")
    return value


def _json_str(raw: str, key: str) -> str:
    value = _json(raw, key)
    if not isinstance(value, str):
        raise FormatError(f"{key}: expected a JSON string, got {_short(raw)}")
    return value


def _number(raw: str, key: str) -> float:
    value = _json(raw, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FormatError(f"{key}: expected a number, got {_short(raw)}")
    return value


def _flag(raw: str, key: str) -> bool:
    if raw not in ("yes", "no"):
        raise FormatError(f"{key}: expected yes or no, got {_short(raw)}")
    return raw == "yes"


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
