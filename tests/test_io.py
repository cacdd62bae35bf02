"""planner.io on real files: what each kind of path gets, permissions, failures, JSONL logs."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import stat
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import PlannerError
from planner.io import (
    CorruptLogError,
    FileWriteError,
    JsonlLog,
    atomic_output,
    atomic_write_bytes,
    atomic_write_text,
    current_umask,
    iter_jsonl_numbered,
    read_jsonl,
    writable_folder,
)


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(folder: Path) -> list[str]:
    """Temporary files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


class FifoReader:
    """Reads a FIFO to its end in a thread (opening a FIFO for writing waits for a reader)."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as fh:
            self.data = fh.read()

    def result(self) -> bytes:
        self.thread.join(timeout=10)
        if self.thread.is_alive():  # nobody wrote: release the reader, then fail
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self.thread.join(timeout=10)
            pytest.fail(f"nothing was written into the FIFO {self.path}")
        return self.data


# -- what each kind of path gets ---------------------------------------------------------------
def test_new_file_and_folders_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "f.bin"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert leftovers(path.parent) == []


def test_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    atomic_write_text(fifo, "through the pipe\n")
    assert reader.result() == b"through the pipe\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    # A writer that needs a file name: its temporary file is streamed in, then removed.
    reader = FifoReader(fifo)
    with atomic_output(fifo) as tmp:
        assert tmp.parent != tmp_path
        tmp.write_bytes(b"x" * 200_000)
    assert reader.result() == b"x" * 200_000
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not tmp.exists() and leftovers(tmp_path) == []


def test_dev_null_stays_a_character_device():
    atomic_write_text("/dev/null", "nothing")
    with atomic_output("/dev/null") as tmp:
        tmp.write_bytes(b"nothing either")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not tmp.exists()
    with JsonlLog("/dev/null") as log:
        log.write({"a": 1})
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_no_space_is_a_file_write_error():
    with pytest.raises(FileWriteError, match="/dev/full") as info:
        atomic_write_bytes("/dev/full", b"x" * 10)
    assert info.value.os_errno == errno.ENOSPC and info.value.errno is None and "ENOSPC" in str(info.value)
    with JsonlLog("/dev/full") as log, pytest.raises(FileWriteError, match="/dev/full"):
        log.write({"a": 1})
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_an_output_folder_is_made_and_checked_before_any_work(tmp_path):
    made = writable_folder(tmp_path / "a" / "b")
    assert made.is_dir() and list(made.iterdir()) == []  # the probe file is gone
    assert writable_folder(made) == made  # an existing folder is fine
    afile = tmp_path / "afile"
    afile.write_text("keep")
    with pytest.raises(FileWriteError, match=f"cannot write {re.escape(str(afile))}: it is a file, not a folder"):
        writable_folder(afile)
    with pytest.raises(FileWriteError, match=f"{re.escape(str(afile))} is a file, not a folder"):
        writable_folder(afile / "sub" / "deeper")
    assert afile.read_text() == "keep" and not (tmp_path / "sub").exists()
    # only checked: nothing is made, and nothing is left in the folder the check wrote in
    assert writable_folder(tmp_path / "later" / "deeper", create=False) == tmp_path / "later" / "deeper"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "afile"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_where_no_file_can_be_made_is_named():
    # /proc/self is a folder nobody, root included, can create files in
    with pytest.raises(FileWriteError, match="cannot write /proc/self: no file can be made in it"):
        writable_folder("/proc/self")


def test_symlink_target_is_written_and_the_link_kept(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    real = tmp_path / "real" / "data.json"
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "links" / "data.json"
    link.symlink_to(Path("..") / "real" / "data.json")
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == os.path.join("..", "real", "data.json")
    assert real.read_text() == "new" and mode_of(real) == 0o640
    with atomic_output(link) as tmp:
        assert tmp.parent == real.parent  # replaced atomically in the target's folder
        tmp.write_text("newer")
    assert link.is_symlink() and real.read_text() == "newer"
    assert leftovers(real.parent) == [] and leftovers(link.parent) == []


def test_dangling_link_creates_the_file_it_points_to(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "sub" / "made.txt")
    atomic_write_text(link, "made")
    assert link.is_symlink() and (tmp_path / "sub" / "made.txt").read_text() == "made"


@pytest.mark.parametrize("kind", ["directory", "socket", "link to a socket"])
def test_directories_and_sockets_are_refused(tmp_path, kind):
    path = tmp_path / "thing"
    with contextlib.ExitStack() as stack:
        if kind == "directory":
            path.mkdir()
        else:
            sock = stack.enter_context(socket.socket(socket.AF_UNIX))
            sock.bind(str(tmp_path / "sock"))
            if kind == "socket":
                path = tmp_path / "sock"
            else:
                path.symlink_to(tmp_path / "sock")
        word = "directory" if kind == "directory" else "socket"
        with pytest.raises(FileWriteError, match=re.escape(f"cannot write {path}: it is a {word}")):
            atomic_write_text(path, "x")
        ran = False
        with pytest.raises(FileWriteError, match=word), atomic_output(path):
            ran = True
        assert not ran
        with pytest.raises(FileWriteError, match=re.escape(str(path))):
            JsonlLog(path)
    assert leftovers(tmp_path) == []


def test_symlink_loop_is_refused(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(FileWriteError, match=re.escape(str(loop))):
        atomic_write_text(loop, "x")


# -- permissions -------------------------------------------------------------------------------
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_respect_the_umask(tmp_path, mask, expected):
    with umask(mask):
        assert current_umask() == mask
        atomic_write_text(tmp_path / "whole.txt", "x")
        with atomic_output(tmp_path / "named.gguf") as tmp:
            tmp.write_bytes(b"GGUF")
        with JsonlLog(tmp_path / "log.jsonl") as log:
            log.write({"a": 1})
    for name in ("whole.txt", "named.gguf", "log.jsonl"):
        assert mode_of(tmp_path / name) == expected, name


def test_current_umask_leaves_the_umask_alone():
    with umask(0o027):
        assert current_umask() == 0o027
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_replacing_keeps_the_mode_of_the_file(tmp_path, mode):
    path = tmp_path / "f"
    path.write_text("old")
    os.chmod(path, mode)
    with umask(0o022):
        atomic_write_text(path, "new")
    assert path.read_text() == "new" and mode_of(path) == mode


# -- unpredictable temporary names and failures ------------------------------------------------
def test_a_planted_link_at_the_old_fixed_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    planted = out / ".model.gguf.tmp"
    planted.symlink_to(victim)
    atomic_write_bytes(out / "model.gguf", b"model")
    with atomic_output(out / "model.gguf") as tmp:
        assert tmp.name != planted.name and tmp.name.startswith(".model.gguf.")
        assert not tmp.is_symlink() and mode_of(tmp) == 0o600
        tmp.write_bytes(b"model 2")
    assert (out / "model.gguf").read_bytes() == b"model 2"
    assert victim.read_text() == "precious" and planted.is_symlink()


@pytest.mark.parametrize("failure", [RuntimeError("writer failed"), KeyboardInterrupt()])
def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path, failure):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"old")
    with pytest.raises(type(failure)), atomic_output(path) as tmp:
        tmp.write_bytes(b"half")
        raise failure
    assert path.read_bytes() == b"old" and not tmp.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


def test_an_os_error_in_the_writer_names_the_target(tmp_path):
    path = tmp_path / "model.gguf"
    expected = re.escape(f"cannot write {path}: ") + ".*missing"
    with pytest.raises(FileWriteError, match=expected) as info, atomic_output(path):
        open(tmp_path / "missing" / "x", "rb")  # noqa: SIM115
    assert isinstance(info.value, OSError) and isinstance(info.value, PlannerError)
    assert info.value.os_errno == errno.ENOENT and info.value.errno is None and not path.exists()
    assert leftovers(tmp_path) == []


def test_a_parent_that_is_a_file_is_a_file_write_error(tmp_path):
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "out.json"
    with pytest.raises(FileWriteError, match=re.escape(str(path))) as info:
        atomic_write_text(path, "x")
    assert info.value.os_errno == errno.ENOTDIR and info.value.errno is None and info.value.path == str(path)
    with pytest.raises(FileWriteError, match=re.escape(str(path))):
        JsonlLog(path)


def _can_write_anyway(folder: Path) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def test_a_read_only_folder_is_a_file_write_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    folder.chmod(0o555)
    try:
        if _can_write_anyway(folder):
            pytest.skip("this user can write into a read-only folder (root)")
        with pytest.raises(FileWriteError, match=re.escape(f"{folder / 'old.txt'}: Permission denied")):
            atomic_write_text(folder / "old.txt", "new")
        with pytest.raises(FileWriteError, match=re.escape("new.jsonl")):
            JsonlLog(folder / "new.jsonl")
        assert (folder / "old.txt").read_text() == "old"
        assert sorted(p.name for p in folder.iterdir()) == ["old.txt"]
    finally:
        folder.chmod(0o755)


# -- JSONL ---------------------------------------------------------------------------------------
def test_read_jsonl_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\n{"a": 3, "b": "\xc3')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    assert [n for n, _ in iter_jsonl_numbered(path)] == [1, 3]
    assert read_jsonl(path, limit=1) == [{"a": 1}]
    path.write_bytes(b'{"a": 1}\n{"a": 2}')  # complete, only the newline missing
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ('{"a": 1}\nnot json\n{"a": 2}\n', 2, "Expecting value"),
        ('{"a": 1}\n[1, 2]\n', 2, "it is a JSON array"),
        ('{"a": 1}\n"text"\n', 2, "it is a JSON string"),
        ('{"a": 1}\n{"a": 2}\n{"a": \n', 3, "Expecting value"),  # terminated: not torn
    ],
)
def test_a_corrupt_line_names_file_and_line(tmp_path, text, line, why):
    path = tmp_path / "log.jsonl"
    path.write_text(text)
    with pytest.raises(CorruptLogError, match=re.escape(f"{path}:{line}: not a JSON object ({why}")):
        read_jsonl(path)
    with pytest.raises(ValueError):
        read_jsonl(path)


def test_appending_after_a_torn_line_starts_a_fresh_line(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonlLog(path) as log:
        log.write({"a": 1})
    with path.open("ab") as fh:
        fh.write(b'{"a": 2, "tor')  # a crash in the middle of a record
    with JsonlLog(path):
        pass  # opening alone changes nothing
    assert path.read_bytes().endswith(b'"tor')
    with JsonlLog(path) as log:
        log.write({"a": 3})
        log.write({"a": 4})
    assert path.read_text().splitlines() == ['{"a": 1}', '{"a": 3}', '{"a": 4}']
    assert read_jsonl(path) == [{"a": 1}, {"a": 3}, {"a": 4}]


def test_appending_after_a_complete_unterminated_line_keeps_it(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}')
    with JsonlLog(path) as log:
        log.write({"a": 3})
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_a_closed_log_refuses_writes(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl")
    log.close()
    log.close()
    assert log.closed
    with pytest.raises(FileWriteError, match="closed"):
        log.write({"a": 1})


# -- properties ----------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
records = st.dictionaries(st.text(), json_values, max_size=5)


@settings(max_examples=60, deadline=None)
@given(contents=st.lists(st.binary(max_size=4096), min_size=1, max_size=3))
def test_bytes_round_trip(contents):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.bin"
        for data in contents:
            atomic_write_bytes(path, data)
            assert path.read_bytes() == data
        assert os.listdir(tmp) == ["f.bin"]


@settings(max_examples=60, deadline=None)
@given(first=st.lists(records, min_size=1, max_size=4), rest=st.lists(st.lists(records, max_size=4), max_size=2),
       torn=st.data())
def test_records_round_trip_through_appends_and_torn_tails(first, rest, torn):
    # The first batch is not empty: a file holding nothing but a torn first record is not
    # recognisably a log, and is refused (see test_a_lone_torn_first_record_is_refused).
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.jsonl"
        written = []
        for batch in [first, *rest]:
            with JsonlLog(path, fsync=False) as log:
                for record in batch:
                    log.write(record)
            written += batch
            # A crash in the middle of the next record: any strict prefix of its line.
            line = json.dumps(torn.draw(records), ensure_ascii=False).encode()
            cut = torn.draw(st.integers(min_value=0, max_value=len(line) - 1))
            with path.open("ab") as fh:
                fh.write(line[:cut])
            assert read_jsonl(path) == written
        with JsonlLog(path) as log:
            log.write({"last": True})
        assert read_jsonl(path) == [*written, {"last": True}]


# -- files that are not logs are never changed ---------------------------------------------------
REFUSAL = "does not look like a JSONL log (its first line is not a JSON object); refusing to append"
PDDL_NO_NEWLINE = b"(define (problem p)\n  (:domain blocksworld)\n  (:objects a b)\n  (:goal (and (on a b))))"


def _not_logs(tmp_path: Path) -> dict[str, Path]:
    """Files a log path may name by mistake: name → path."""
    from tests.conftest import build_tiny_gguf

    files = {
        "pddl": PDDL_NO_NEWLINE,
        "text": b"notes\nmore notes\n",
        "text-one-line": b"just one line, no newline",
        "nul": b'{"a": 1}\x00\n{"b": 2}\n',
        "invalid-utf8": b'{"a": "\xff"}\n',
        "json-array": b"[1, 2]\n",
        "blank-then-text": b"\n  \n(define)",
        "torn-first-record": b'{"a": 1, "b',
        "deep-first-line": b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "deep-object-first-line": b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"\n",
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.dat"
        paths[name].write_bytes(data)
    paths["gguf"] = build_tiny_gguf(tmp_path / "model.gguf")
    return paths


def test_a_file_that_is_not_a_log_is_refused_and_kept_byte_for_byte(tmp_path):
    for name, path in _not_logs(tmp_path).items():
        before = path.read_bytes()
        with pytest.raises(FileWriteError, match=re.escape(f"cannot write {path}: it {REFUSAL}")) as info:
            JsonlLog(path)
        assert info.value.path == str(path) and info.value.errno is None, name
        link = tmp_path / f"link-to-{name}"
        link.symlink_to(path)
        with pytest.raises(FileWriteError, match=re.escape(REFUSAL)):
            JsonlLog(link)
        assert path.read_bytes() == before, name
    assert leftovers(tmp_path) == []


def test_a_lone_torn_first_record_is_refused(tmp_path):
    # A crash in the middle of a log's very first record leaves a file no reader can tell
    # from a text file that happens to start with a brace: it is refused, never cut.
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1, "b')
    assert read_jsonl(path) == []
    with pytest.raises(FileWriteError, match=re.escape(REFUSAL)):
        JsonlLog(path)
    assert path.read_bytes() == b'{"a": 1, "b'


@pytest.mark.parametrize("content", [b"", b"\n", b" \n\t\n", b'{"a": 1}', b'\n{"a": 1}\n'])
def test_empty_blank_and_genuine_logs_are_appended_to(tmp_path, content):
    path = tmp_path / "log.jsonl"
    path.write_bytes(content)
    with JsonlLog(path) as log:
        log.write({"new": 1})
    assert path.read_bytes().startswith(content) and read_jsonl(path)[-1] == {"new": 1}


def test_a_torn_last_line_of_a_genuine_log_is_still_cut(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n(not json, torn')
    with JsonlLog(path) as log:
        log.write({"a": 2})
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'


# -- input nested too deeply for Python's recursion limit ----------------------------------------
DEEP = b"[" * 100_000 + b"]" * 100_000


def test_a_deeply_nested_line_is_a_corrupt_log_error(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n' + DEEP + b'\n{"a": 2}\n')
    with pytest.raises(CorruptLogError, match=re.escape(f"{path}:2: not a JSON object (it is nested too deeply")):
        read_jsonl(path)
    with pytest.raises(CorruptLogError, match=re.escape(f"{path}:2:")):
        list(iter_jsonl_numbered(path))


def test_a_deeply_nested_torn_last_line_is_skipped_and_cut(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b'{"a": ' * 100_000)  # unterminated: a torn last line
    assert read_jsonl(path) == [{"a": 1}]
    with JsonlLog(path) as log:
        log.write({"a": 2})
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


# -- FileWriteError keeps no errno, so a command-line parser cannot swallow it -------------------
def _broken_fifo_log(tmp_path: Path) -> JsonlLog:
    """A log on a FIFO whose reader has gone away (writing gives EPIPE)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    log = JsonlLog(fifo)
    os.close(reader)
    return log


def test_a_broken_pipe_is_a_file_write_error_without_errno(tmp_path):
    with _broken_fifo_log(tmp_path) as log, pytest.raises(FileWriteError) as info:
        log.write({"a": 1})
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, PlannerError)
    assert err.errno is None and err.os_errno == errno.EPIPE and err.path == str(tmp_path / "pipe")
    assert str(err).startswith(f"cannot write {tmp_path / 'pipe'}: ") and "EPIPE" in str(err)


def test_the_command_line_parser_does_not_swallow_a_broken_pipe(tmp_path):
    import typer

    app = typer.Typer()

    @app.command()
    def write() -> None:
        with _broken_fifo_log(tmp_path) as log:
            log.write({"a": 1})

    # The parser exits quietly with code 1 on an OSError whose errno is EPIPE (a closed
    # standard output); a log that cannot be written must surface instead.
    with pytest.raises(FileWriteError, match="pipe"):
        typer.main.get_command(app).main(args=[], standalone_mode=False)


def test_a_file_write_error_is_built_with_path_and_os_errno():
    err = FileWriteError("cannot write x: reason", path="x", os_errno=errno.ENOSPC)
    assert (err.errno, err.os_errno, err.path, str(err)) == (None, errno.ENOSPC, "x", "cannot write x: reason")
