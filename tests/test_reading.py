"""Reading a transition log in several processes (``planner train --threads N``) gives the
examples, counts and errors that one process gives."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.data.collect import TransitionRecord, collect_blocksworld
from planner.errors import ConfigError
from planner.io import CorruptLogError
from planner.training.data import Encoded
from planner.training.errors import LogReadingError, TrainingDataError
from planner.training.reading import encode_log, pack_examples
from planner.world.codec import domain_vocabulary

PREDICATES = {"on": 2, "ontable": 1, "clear": 1, "handempty": 0, "holding": 1}
ACTIONS = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
MAX_OBJECTS = 8
VOCAB = domain_vocabulary(PREDICATES, ACTIONS, MAX_OBJECTS)
FIELDS = ("goal", "state", "answer", "next_state", "goal_next", "goal_now", "fact_pool", "rank")


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real Blocksworld transition log (problems of 3 to 5 blocks), as bytes."""
    folder = tmp_path_factory.mktemp("data")
    collect_blocksworld(folder, problems={"train": 6}, blocks=(3, 4, 5), seed=3)
    return (folder / "train.jsonl").read_bytes()


def _read(path: Path, processes: int, chunk_bytes: int = 2048) -> tuple[int, int, list[Encoded]]:
    return encode_log(path, VOCAB, PREDICATES, ACTIONS, MAX_OBJECTS, processes=processes, chunk_bytes=chunk_bytes)


def _same(one: list[Encoded], several: list[Encoded]) -> None:
    assert len(one) == len(several)
    for a, b in zip(one, several, strict=True):
        for name in FIELDS:
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and x.tolist() == y.tolist(), name
        assert (a.action, a.applicable, a.objects) == (b.action, b.applicable, b.objects)
        assert (type(a.action), type(a.applicable), type(a.objects)) == (type(b.action), type(b.applicable),
                                                                          type(b.objects))


def _shared(examples: list[Encoded], name: str) -> int:
    """How many distinct arrays the examples' ``name`` field holds."""
    return len({id(getattr(e, name)) for e in examples})


def test_several_processes_give_the_examples_of_one(tmp_path: Path, log: bytes) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(log)
    assert len(log) > 20 * 2048  # many ranges
    n, problems, one = _read(path, 1)
    m, problems_too, several = _read(path, 2)
    assert (n, problems) == (m, problems_too) == (len(log.splitlines()), 6)
    _same(one, several)
    # one read-only array per problem size and one rank array, as one process shares them
    assert _shared(several, "rank") == _shared(one, "rank") == 1
    assert _shared(several, "fact_pool") == _shared(one, "fact_pool") == 3
    assert not any(e.fact_pool.flags.writeable for e in several)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(1, 30_000), blanks=st.lists(st.integers(0, 10**6), max_size=4),
       torn=st.sampled_from(["", '{"problem": "p', "\n", "  "]))
def test_any_cut_blank_lines_and_a_torn_last_line_read_as_in_one_process(
        tmp_path: Path, log: bytes, chunk: int, blanks: list[int], torn: str) -> None:
    lines = log.splitlines(keepends=True)
    for place in blanks:
        lines.insert(place % (len(lines) + 1), b"\n")
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"".join(lines) + torn.encode())
    n, problems, one = _read(path, 1)
    m, problems_too, several = _read(path, 2, chunk)
    assert (n, problems) == (m, problems_too)
    _same(one, several)


def _record(problem: str, goal: list[str], action: str = "(pick-up b1)") -> str:
    state = ["(clear b1)", "(clear b2)", "(handempty)", "(ontable b1)", "(ontable b2)"]
    return TransitionRecord(problem=problem, domain="blocksworld", objects=["b1", "b2"], goal=goal, state=state,
                            action=action, applicable=False, next_state=state, reward=0.0, done=False,
                            episode=f"{problem}/random-0", step=0, source="random", split="train").model_dump_json()


def test_ranges_whose_goals_use_other_predicates_are_encoded_with_all_of_them(tmp_path: Path) -> None:
    # the first records' goals use `on`, the last ones' `ontable`: relabelled goals are drawn
    # from the facts of both predicates in every example, as in one process
    lines = [_record("a", ["(on b1 b2)"])] * 40 + [_record("b", ["(ontable b1)"])] * 40
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    _, _, one = _read(path, 1)
    _, _, several = _read(path, 2, chunk_bytes=len(lines[0]) * 5)
    _same(one, several)
    assert {"on", "ontable"} <= {word.split("(")[0] for word in VOCAB.decode(several[0].fact_pool.tolist())}


def _bad_line(lines: list[bytes]) -> tuple[int, bytes, type[Exception], str]:
    """(where, what, the error, what it names): a line that is not a record, two thirds in."""
    at = len(lines) * 2 // 3
    return at, b'{"problem": 3}\n', CorruptLogError, f":{at + 1}:"


def _bad_record(lines: list[bytes]) -> tuple[int, bytes, type[Exception], str]:
    """A record naming an action the vocabulary lacks, near the end."""
    at = len(lines) - 3
    return at, (_record("z", ["(on b1 b2)"], action="(fly b1)") + "\n").encode(), TrainingDataError, \
        f"record {at} (problem 'z')"


@pytest.mark.parametrize("bad", [_bad_line, _bad_record])
def test_a_bad_line_or_record_is_named_as_one_process_names_it(tmp_path: Path, log: bytes, bad) -> None:
    lines = log.splitlines(keepends=True)
    at, line, error, named = bad(lines)
    lines.insert(at, line)
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"".join(lines))
    with pytest.raises(error) as one:
        _read(path, 1)
    with pytest.raises(error) as several:
        _read(path, 2)
    assert str(several.value) == str(one.value)
    assert named in str(one.value)


def test_packing_keeps_every_field_and_what_is_shared(tmp_path: Path, log: bytes) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(log)
    _, _, examples = _read(path, 1)
    packed = pack_examples(examples)
    again = packed.unpack()
    _same(examples, again)
    assert len(packed) == len(examples)
    assert _shared(again, "fact_pool") == _shared(examples, "fact_pool")
    assert all(np.shares_memory(e.state, packed.tokens) for e in again[:5])
    assert pack_examples([]).unpack() == []


def test_problems_of_other_sizes_keep_their_own_pools_even_when_equal(tmp_path: Path) -> None:
    # with empty goals every pool is empty: one process still keeps one per problem size
    def record(problem: str, objects: list[str]) -> str:
        state = sorted({"(handempty)", *(f"(clear {o})" for o in objects), *(f"(ontable {o})" for o in objects)})
        return TransitionRecord(problem=problem, domain="blocksworld", objects=objects, goal=[], state=state,
                                action=f"(pick-up {objects[0]})", applicable=False, next_state=state, reward=0.0,
                                done=False, episode=f"{problem}/random-0", step=0, source="random",
                                split="train").model_dump_json()

    lines = [record("a", ["b1", "b2", "b3"])] * 20 + [record("b", ["b1", "b2"])] * 20
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    _, _, one = _read(path, 1)
    _, _, several = _read(path, 2, chunk_bytes=len(lines[0]) * 3)
    _same(one, several)
    assert _shared(several, "fact_pool") == _shared(one, "fact_pool") == 2


def _dies_after_the_first_range(part):
    import os
    import signal

    from planner.training import reading

    if part.start > 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return reading.encode_range_before_the_test(part)


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork",
                    reason="the dying reader is planted through a forked child's copy of the module")
def test_a_reading_process_that_dies_is_an_error_not_a_wait(tmp_path: Path, log: bytes,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from planner.training import reading

    monkeypatch.setattr(reading, "encode_range_before_the_test", reading._encode_range, raising=False)
    monkeypatch.setattr(reading, "_encode_range", _dies_after_the_first_range)
    path = tmp_path / "train.jsonl"
    path.write_bytes(log)
    with pytest.raises(LogReadingError, match=r"ended without an answer .* --threads 1"):
        _read(path, 2)


def test_a_bad_chunk_size_is_named(tmp_path: Path, log: bytes) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(log)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match=f"chunk_bytes must be .* got {bad!r}"):
            encode_log(path, VOCAB, PREDICATES, ACTIONS, MAX_OBJECTS, processes=2, chunk_bytes=bad)  # type: ignore[arg-type]


def test_a_log_written_to_while_it_is_read_is_read_again_as_it_is(tmp_path: Path, log: bytes,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a collection appending to the log after it was cut into ranges: no range reads a mixture,
    # the whole log is read again in one process
    from planner.training import reading

    path = tmp_path / "train.jsonl"
    path.write_bytes(log)
    cut = reading._ranges
    more = log.splitlines(keepends=True)[:5]

    def cut_then_append(*args):
        ranges = cut(*args)
        with open(path, "ab") as fh:
            fh.write(b"".join(more))
        return ranges

    monkeypatch.setattr(reading, "_ranges", cut_then_append)
    n, problems, several = _read(path, 2)
    monkeypatch.undo()
    m, problems_too, one = _read(path, 1)
    assert n == m == len(log.splitlines()) + 5 and problems == problems_too
    _same(one, several)
