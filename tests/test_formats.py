"""Transition logs exported as ShareGPT / OpenAI / Alpaca trajectories and imported back."""

from __future__ import annotations

import json
import random
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.data.collect import TransitionRecord, collect_blocksworld, read_records
from planner.data.formats import (
    FORMATS,
    FormatError,
    export_trajectories,
    import_trajectories,
    parse_format,
    read_trajectories,
    write_trajectories,
)
from planner.errors import ConfigError, PlannerError
from planner.io import FileWriteError, JsonlLog


def record(**fields: Any) -> TransitionRecord:
    """A transition of a small non-PDDL domain (a robot and a door), overridden by ``fields``."""
    base: dict[str, Any] = dict(
        problem="hall-1", domain="rooms", objects=["robot", "door"], goal=["robot in kitchen"],
        state=["door closed", "robot in hall"], action="open the door", applicable=True,
        next_state=["door open", "robot in hall"], reward=0.0, done=False, episode="hall-1/a", step=0,
        source="random", split="train")
    return TransitionRecord(**{**base, **fields})


def sample_log() -> list[TransitionRecord]:
    """Two episodes: a delta step, an inapplicable step, a goal step; the second has one step."""
    opened = ["door open", "robot in hall"]
    return [
        record(),
        record(step=1, state=opened, action="jump", applicable=False, next_state=opened),
        record(step=2, state=opened, action="go to kitchen", next_state=["door open", "robot in kitchen"],
               reward=1.0, done=True),
        record(episode="hall-1/b", source="plan", split="test"),
    ]


# -- round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_in_memory_and_through_a_file(fmt, tmp_path):
    log = sample_log()
    assert import_trajectories(export_trajectories(log, format=fmt), format=fmt) == log
    path = tmp_path / f"out.{fmt}"
    written = write_trajectories(path, log, format=fmt)
    assert written == (4 if fmt == "alpaca" else 2)
    assert read_trajectories(path, format=fmt) == log
    assert read_trajectories(path) == log  # format recognised from the keys


def test_file_layouts_follow_each_format(tmp_path):
    log = sample_log()
    for fmt in FORMATS:
        write_trajectories(tmp_path / fmt, log, format=fmt)
    lines = (tmp_path / "sharegpt").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 2
    assert [m["from"] for m in first["conversations"]] == ["system", "human", "gpt", "human", "gpt", "human", "gpt"]
    assert first["metadata"] == {"episode": "hall-1/a", "problem": "hall-1", "split": "train",
                                 "source": "random", "steps": [0, 1, 2]}
    messages = json.loads((tmp_path / "openai").read_text().splitlines()[1])["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    alpaca = json.loads((tmp_path / "alpaca").read_text())
    assert isinstance(alpaca, list)
    assert [sorted(item) for item in alpaca] == [["input", "instruction", "metadata", "output"]] * 4
    assert [item["metadata"]["step"] for item in alpaca] == [0, 1, 2, 0]
    assert alpaca[2]["input"].count("Action: ") == 3  # two earlier steps, then this one


def test_text_is_readable():
    conversation = export_trajectories(sample_log(), format="openai")[0]["messages"]
    system, action, reply, _, inapplicable, _, goal = (m["content"] for m in conversation)
    assert system.endswith('\n\nDomain: "rooms"\nObjects: ["robot", "door"]\nGoal: ["robot in kitchen"]\n'
                           'State: ["door closed", "robot in hall"]')
    assert action == "open the door"
    assert reply == ('Applicable: yes\nAdded: ["door open"]\nRemoved: ["door closed"]\nReward: 0.0\nDone: no')
    assert inapplicable == "Applicable: no\nReward: 0.0\nDone: no"
    assert goal.endswith("Reward: 1.0\nDone: yes")


def test_unsorted_states_are_written_whole():
    odd = record(state=["b", "a", "a"], next_state=["c", "b"])
    reply = export_trajectories([odd], format="sharegpt")[0]["conversations"][2]["value"]
    assert reply == 'Applicable: yes\nNext state: ["c", "b"]\nReward: 0.0\nDone: no'
    assert import_trajectories(export_trajectories([odd], format="sharegpt")) == [odd]


def test_a_broken_episode_becomes_several_conversations_with_one_id():
    first = record()
    jumped = record(step=1, state=["robot in attic"], next_state=["robot in attic"])  # not first's next state
    moved = record(step=2, state=["robot in attic"], split="val")  # another split
    items = export_trajectories([first, jumped, moved], format="openai")
    assert [item["metadata"]["steps"] for item in items] == [[0], [1], [2]]
    assert {item["metadata"]["episode"] for item in items} == {"hall-1/a"}
    assert import_trajectories(items) == [first, jumped, moved]


def test_records_come_back_grouped_by_episode_then_step():
    a0, a1, a2, b0 = sample_log()
    shuffled = [a2, b0, a0, a1]
    for fmt in FORMATS:
        assert import_trajectories(export_trajectories(shuffled, format=fmt)) == [a0, a1, a2, b0]


def test_text_unicode_cannot_carry_still_round_trips(tmp_path):
    odd = record(state=["\ud800 lone surrogate", "é"], action="\udfff")
    for fmt in FORMATS:
        write_trajectories(tmp_path / fmt, [odd], format=fmt)
        (tmp_path / fmt).read_bytes().decode("utf-8")  # valid UTF-8 on disk
        assert read_trajectories(tmp_path / fmt) == [odd]


def test_empty_log(tmp_path):
    for fmt in FORMATS:
        assert write_trajectories(tmp_path / fmt, [], format=fmt) == 0
        assert read_trajectories(tmp_path / fmt) == []


def test_a_real_collected_log_round_trips_byte_for_byte(tmp_path):
    collect_blocksworld(tmp_path / "data", blocks=[3, 4], seed=0, problems={"train": 3, "val": 0, "test": 1})
    for split in ("train", "test"):
        original = tmp_path / "data" / f"{split}.jsonl"
        log = read_records(original)
        assert log and any(not r.applicable for r in log) and any(r.done for r in log)
        for fmt in FORMATS:
            exported = tmp_path / f"{split}.{fmt}"
            write_trajectories(exported, log, format=fmt)
            back = read_trajectories(exported, format=fmt)
            assert back == log
            again = tmp_path / f"{split}.{fmt}.jsonl"
            with JsonlLog(again, fsync=False) as out:
                for rec in back:
                    out.write(rec)
            assert again.read_bytes() == original.read_bytes()


# -- generated logs -------------------------------------------------------------------------
TRICKY = st.sampled_from(["\n", "\n\n", "\r", "\u2028", "\x85", '"', "\\", ": ", "[", "Reward: 1", " "])
TEXT = st.lists(st.one_of(st.characters(), TRICKY), max_size=6).map("".join)
FACTS = st.lists(TEXT, max_size=5)
STATES = st.one_of(FACTS.map(lambda facts: sorted(set(facts))), FACTS)  # canonical, or any list


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any]:
    return dict(problem=draw(TEXT), domain=draw(TEXT), objects=draw(st.lists(TEXT, max_size=4)),
                goal=draw(STATES), split=draw(st.sampled_from(["train", "val", "test"])),
                source=draw(st.sampled_from(["random", "plan", "novelty", "probe", "demo"])))


@st.composite
def logs(draw: st.DrawFn) -> list[TransitionRecord]:
    """Episodes in log order (steps non-decreasing), their states mostly chained, with breaks,
    mid-episode header changes, inapplicable steps, unchanged and unsorted states."""
    records = []
    for e in range(draw(st.integers(0, 4))):
        episode, header = f"{e}/{draw(TEXT)}", draw(headers())
        state, step = draw(STATES), draw(st.integers(-5, 5))
        for _ in range(draw(st.integers(1, 5))):
            if draw(st.integers(0, 5)) == 0:
                state = draw(STATES)
            if draw(st.integers(0, 7)) == 0:
                header = draw(headers())
            next_state = draw(st.one_of(st.just(state), STATES))
            records.append(TransitionRecord(
                **header, state=state, action=draw(TEXT), applicable=draw(st.booleans()), next_state=next_state,
                reward=draw(st.floats(allow_nan=False)), done=draw(st.booleans()), episode=episode, step=step))
            state, step = next_state, step + draw(st.integers(0, 2))
    return records


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None)
@given(log=logs())
def test_generated_logs_round_trip(fmt, log):
    items = export_trajectories(log, format=fmt)
    assert import_trajectories(json.loads(json.dumps(items)), format=fmt) == log
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out"
        write_trajectories(path, log, format=fmt)
        assert read_trajectories(path) == log


# -- malformed files ------------------------------------------------------------------------
def messages_of(item: dict[str, Any]) -> list[dict[str, Any]]:
    return item.get("conversations") or item["messages"]


def set_text(index: int, text: Callable[[str], str]) -> Callable[[dict[str, Any]], None]:
    """A mutation rewriting the text of message ``index``."""
    def mutate(item: dict[str, Any]) -> None:
        message = messages_of(item)[index]
        key = "value" if "value" in message else "content"
        message[key] = text(message[key])
    return mutate


def drop_metadata(item: dict[str, Any]) -> None:
    del item["metadata"]


def set_meta(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(item: dict[str, Any]) -> None:
        item["metadata"][key] = value
    return mutate


def swap_first_turns(item: dict[str, Any]) -> None:
    messages = messages_of(item)
    messages[1], messages[2] = messages[2], messages[1]


def drop_last(item: dict[str, Any]) -> None:
    messages_of(item).pop()


CONVERSATION_FAULTS = {
    "roles out of order": (swap_first_turns, r"line 3: message 2: expected (from 'human'|role 'user'), found"),
    "ends on an action": (drop_last, r"line 3: .*found 6 messages"),
    "missing metadata": (drop_metadata, r"line 3: no 'metadata' object"),
    "too few steps": (set_meta("steps", [0, 1]), r"line 3: metadata.steps lists 2 steps but .* 3 actions"),
    "step not a number": (set_meta("steps", ["0", 1, 2]), r"line 3: metadata: steps.0: .*got '0'"),
    "unknown split": (set_meta("split", "dev"), r"line 3: not a transition record: split: .*got 'dev'"),
    "no state line": (set_text(0, lambda t: t.rsplit("\n", 1)[0]),
                      r"line 3: message 1: system text: expected lines Domain/Objects/Goal/State, "
                      r"found Domain/Objects/Goal$"),
    "objects not strings": (set_text(0, lambda t: t.replace('Objects: ["robot", "door"]', "Objects: [1]")),
                            r"line 3: message 1: Objects: expected a JSON list of strings"),
    "verdict not yes/no": (set_text(2, lambda t: t.replace("Applicable: yes", "Applicable: maybe")),
                           r"line 3: message 3: Applicable: expected yes or no, got 'maybe'"),
    "reward missing": (set_text(4, lambda t: t.replace("Reward: 0.0\n", "")),
                       r"line 3: message 5: reply: expected lines Applicable/Reward/Done or .*, "
                       r"found Applicable/Done$"),
    "facts not JSON": (set_text(2, lambda t: t.replace('Added: ["door open"]', "Added: door open")),
                       r"line 3: message 3: Added: 'door open' is not JSON"),
    "removes a fact not held": (set_text(2, lambda t: t.replace('Removed: ["door closed"]', 'Removed: ["x"]')),
                                r"line 3: message 3: Removed fact 'x' does not hold in the state"),
    "adds a fact held": (set_text(2, lambda t: t.replace('Added: ["door open"]', 'Added: ["robot in hall"]')),
                         r"line 3: message 3: Added fact 'robot in hall' already holds"),
}


@pytest.mark.parametrize("fmt", ["sharegpt", "openai"])
@pytest.mark.parametrize("fault", sorted(CONVERSATION_FAULTS))
def test_a_malformed_conversation_names_file_and_line(fmt, fault, tmp_path):
    mutate, message = CONVERSATION_FAULTS[fault]
    items = export_trajectories(sample_log(), format=fmt)
    mutate(items[0])
    path = tmp_path / "bad.jsonl"
    # A blank line first: line numbers count every line of the file.
    path.write_text("\n" + json.dumps(items[1]) + "\n" + json.dumps(items[0]) + "\n")
    with pytest.raises(FormatError, match=message) as caught:
        read_trajectories(path, format=fmt)
    assert str(caught.value).startswith(f"{path}: line 3: ")


def test_a_line_that_is_not_json(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(export_trajectories(sample_log(), format="openai")[0]) + "\n{oops\n")
    with pytest.raises(FormatError, match=rf"^{re.escape(str(path))}: line 2: not JSON"):
        read_trajectories(path)


def test_an_item_of_no_known_format(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hello"}\n')
    with pytest.raises(FormatError, match=r"line 1: not a conversation or an Alpaca record"):
        read_trajectories(path)
    with pytest.raises(FormatError, match=r"line 1: not a conversation: no 'messages' list"):
        read_trajectories(path, format="openai")


def alpaca_set(key: str, text: Callable[[str], str]) -> Callable[[dict[str, Any]], None]:
    def mutate(item: dict[str, Any]) -> None:
        item[key] = text(item[key])
    return mutate


ALPACA_FAULTS = {
    "missing metadata": (drop_metadata, r"record 3: no 'metadata' object"),
    "action line": (alpaca_set("input", lambda t: t.replace('Action: "jump"', "Act: jump")),
                    r"record 3: input block 2: action line: expected lines Action, found Act$"),
    "history reply": (alpaca_set("input", lambda t: t.replace("Done: no", "Done: perhaps", 1)),
                      r"record 3: input block 1: Done: expected yes or no"),
    "output": (alpaca_set("output", lambda t: t.replace("Reward: 1.0", "Reward: lots")),
               r"record 3: output: Reward: 'lots' is not JSON"),
    "inconsistent output": (alpaca_set("output", lambda t: t.replace('Removed: ["robot in hall"]', 'Removed: ["y"]')),
                            r"record 3: output: Removed fact 'y' does not hold"),
    "instruction": (alpaca_set("instruction", lambda t: t.replace("Goal: ", "Aim: ")),
                    r"record 3: instruction: system text: expected lines Domain/Objects/Goal/State, "
                    r"found Domain/Objects/Aim/State"),
    "missing output": (lambda item: item.pop("output"), r"record 3: Alpaca field 'output' is not a string"),
}


@pytest.mark.parametrize("fault", sorted(ALPACA_FAULTS))
def test_a_malformed_alpaca_record_names_file_and_record(fault, tmp_path):
    mutate, message = ALPACA_FAULTS[fault]
    items = export_trajectories(sample_log(), format="alpaca")
    mutate(items[2])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(items, indent=2))
    with pytest.raises(FormatError, match=message) as caught:
        read_trajectories(path)
    assert str(caught.value).startswith(f"{path}: record 3: ")


def test_a_broken_json_array_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(export_trajectories(sample_log(), format="alpaca"), indent=2)[:-3])
    with pytest.raises(FormatError, match=rf"^{re.escape(str(path))}: line \d+: not JSON"):
        read_trajectories(path)


def test_import_from_memory_names_the_record():
    items = export_trajectories(sample_log(), format="sharegpt")
    drop_metadata(items[1])
    with pytest.raises(FormatError, match=r"^mine: record 2: no 'metadata' object"):
        import_trajectories(items, name="mine")


def test_randomly_corrupted_text_is_refused_or_read_consistently():
    """Any one-character change to a reply either fails with FormatError or still parses."""
    items = export_trajectories(sample_log(), format="openai")
    rng = random.Random(0)
    for _ in range(300):
        item = json.loads(json.dumps(items[0]))
        message = messages_of(item)[rng.choice([0, 2, 4, 6])]
        text = message["content"]
        i = rng.randrange(len(text))
        message["content"] = text[:i] + rng.choice('x"[]:\n ') + text[i + 1:]
        try:
            import_trajectories([item])
        except FormatError as exc:
            assert str(exc).startswith("<trajectories>: record 1: ")


def test_errors_and_bad_arguments(tmp_path):
    assert issubclass(FormatError, PlannerError) and issubclass(FormatError, ValueError)
    assert parse_format("alpaca") == "alpaca"
    with pytest.raises(ConfigError, match="'csv'"):
        parse_format("csv")
    with pytest.raises(ConfigError, match="'csv'"):
        export_trajectories(sample_log(), format="csv")  # type: ignore[arg-type]
    with pytest.raises(FileWriteError, match=str(tmp_path)):
        write_trajectories(tmp_path, sample_log(), format="openai")  # a folder
    (tmp_path / "latin1.jsonl").write_bytes(b"\xff\n")
    with pytest.raises(FormatError, match=r"latin1\.jsonl: not UTF-8"):
        read_trajectories(tmp_path / "latin1.jsonl")
