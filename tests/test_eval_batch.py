"""``planner eval``: many episodes at once with the shipped model — serial, local processes and Ray
give the same results; results are resumable, one bad job does not stop the batch; ``collect`` and
``synth`` with ``--workers`` write the same records as serially."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner.cli import main
from planner.config import ModelConfig
from planner.env.blocksworld import write_problem
from planner.env.registry import make
from planner.scale.models import ModelPool
from planner.world.factory import load_gguf_world_model, package_models_dir

SHIPPED = package_models_dir() / "blocksworld-q8_0.gguf"
ROOT = Path(__file__).resolve().parents[1]
BW4 = ["--env", "blocksworld-v0", "--env-arg", "blocks=4"]

FLAKY = '''
import os
import signal
import socket

from planner.env.registry import make_blocksworld


def make(*, seed=0, blocks=4):
    """Blocksworld, except that seed 2 raises and seed 5 kills the process building it."""
    if seed == 2:
        raise RuntimeError("seed 2 is broken")
    if seed == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return make_blocksworld(seed=seed, blocks=blocks)
'''


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def episodes(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert lines[0]["record"] == "header"
    return lines[1:]


def outcome(records: list[dict]) -> dict:
    """Per job: what must not depend on how the batch ran."""
    return {r["job"]: (r["success"], r["plan_length"], tuple(r["plan"]), r["reference_length"], r["error"])
            for r in records}


def summary_of(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def serial_results(tmp_path_factory) -> dict:
    """Seeds 0-5 of 4-block Blocksworld, played one after another in this process."""
    path = tmp_path_factory.mktemp("serial") / "results.jsonl"
    assert main(["eval", *BW4, "--seeds", "0-5", "--model", str(SHIPPED), "--out", str(path)]) == 0
    records = episodes(path)
    assert {r["worker"] for r in records} == {f"{socket.gethostname()}:{os.getpid()}"}
    return outcome(records)


def test_serial_results_are_solved_episodes_with_optimal_references(serial_results):
    assert sorted(serial_results) == [0, 1, 2, 3, 4, 5]
    for success, length, plan, reference, error in serial_results.values():
        assert success and error is None and len(plan) == length
        assert reference is not None and length >= reference


def test_two_workers_give_the_same_results_as_one(capsys, tmp_path, serial_results):
    path = tmp_path / "results.jsonl"
    code, out, err = run(capsys, "eval", *BW4, "--seeds", "0-5", "--model", SHIPPED, "--workers", 2, "--out", path,
                         "--json")
    assert code == 0, err
    records = episodes(path)
    assert outcome(records) == serial_results
    workers = {r["worker"] for r in records}
    assert 1 <= len(workers) <= 2 and f"{socket.gethostname()}:{os.getpid()}" not in workers
    summary = summary_of(out)
    assert summary["executor"] == "processes" and summary["workers"] == 2
    assert (summary["jobs"], summary["ran"], summary["solved"], summary["errors"]) == (6, 6, 6, [])
    assert summary["mean_ratio"] >= 1.0 and summary["episodes_per_second"] > 0
    assert "success         6/6 (100.0%)" in out and "episodes/s" in out and "wall time" in out


def test_model_pool_loads_once_and_predicts_as_a_fresh_model():
    pool = ModelPool(ModelConfig(path=SHIPPED, n_threads=1, cache_size=0))
    for seed in (0, 1, 2, 7):
        env = make("blocksworld-v0", seed=seed, blocks=4 + seed % 2)
        state, _ = env.reset(seed=seed)
        actions = list(env.candidate_actions(state))
        pooled = pool.world_model(env, seed=seed).predict_many(state, actions)
        fresh_model = load_gguf_world_model(env, path=SHIPPED, n_threads=1)
        try:
            fresh = fresh_model.predict_many(state, actions)
        finally:
            fresh_model.close()
        assert [(p.applicable, p.next_state, p.done) for p in pooled] == [(p.applicable, p.next_state, p.done)
                                                                          for p in fresh]
    assert (pool.loads, pool.binds) == (1, 3)
    pool.close()


def test_pddl_problems_from_files_folders_and_patterns(capsys, tmp_path):
    folder = tmp_path / "probs"
    for seed in range(3):
        domain, _ = write_problem(folder, 4, seed=seed)
    path = tmp_path / "results.jsonl"
    code, out, err = run(capsys, "eval", domain, folder, "--out", path, "--json")
    assert code == 0, err
    records = episodes(path)
    assert sorted(r["job"] for r in records) == sorted(str(p.resolve()) for p in folder.glob("bw-*.pddl"))
    assert all(r["success"] and r["reference"] == "optimal" and r["ratio"] >= 1.0 for r in records)
    header = json.loads(path.read_text().splitlines()[0])
    assert header["source"] == "pddl" and header["domain"] == str(domain.resolve())
    assert header["model"] == str(SHIPPED.resolve()) and len(header["model_sha256"]) == 64

    # a pattern naming two of them, and one of them by name: two jobs, both already recorded
    code, out, err = run(capsys, "eval", domain, folder / "bw-4-[01].pddl", folder / "bw-4-0.pddl", "--out", path,
                         "--json")
    assert code == 0, err
    assert (summary_of(out)["jobs"], summary_of(out)["ran"]) == (2, 0)

    code, _, err = run(capsys, "eval", domain, folder / "nothing-*.pddl", "--out", tmp_path / "other.jsonl")
    assert code == 2 and "nothing-*.pddl" in err and len(err.strip().splitlines()) == 1


def test_an_interrupted_eval_resumes_where_it_stopped(capsys, tmp_path):
    path = tmp_path / "results.jsonl"
    args = ["eval", "--env", "blocksworld-v0", "--env-arg", "blocks=5", "--seeds", "0-9", "--workers", "2",
            "--out", str(path)]
    # A child inherits an ignored SIGINT from a background shell (a CI run started with `&`):
    # restore Python's handler, as a terminal's foreground job has it.
    start = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from planner.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", start, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if path.is_file() and len(path.read_text().splitlines()) >= 2:  # the header and a first episode
            break
        time.sleep(0.05)
    lines_at_interrupt = len(path.read_text().splitlines()) if path.is_file() else 0
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (lines_at_interrupt, out[-2000:], err)
    assert "interrupted:" in err and "run the same command again" in err
    before = episodes(path)
    assert 1 <= len(before) < 10
    time.sleep(0.5)
    for worker in {r["worker"] for r in before}:  # the workers were stopped with the command
        with pytest.raises(ProcessLookupError):
            os.kill(int(worker.rsplit(":", 1)[1]), 0)

    code, out, err = run(capsys, *args[:-2], "--out", path, "--json")
    assert code == 0, err
    summary = summary_of(out)
    assert (summary["jobs"], summary["done"], summary["ran"]) == (10, 10, 10 - len(before))
    after = episodes(path)
    jobs = [r["job"] for r in after]
    assert sorted(jobs) == list(range(10))  # every job once: none ran twice
    assert after[:len(before)] == before


def test_a_torn_last_line_is_tolerated_and_its_job_runs_again(capsys, tmp_path):
    path = tmp_path / "results.jsonl"
    assert run(capsys, "eval", *BW4, "--seeds", "0-2", "--out", path)[0] == 0
    lines = path.read_text().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]  # a kill in the middle of the last write
    lost = json.loads(lines[-1])["job"]
    path.write_text("".join(lines[:-1]) + torn)

    code, out, err = run(capsys, "eval", *BW4, "--seeds", "0-2", "--out", path, "--json")
    assert code == 0, err
    assert summary_of(out)["ran"] == 1
    records = episodes(path)  # every line parses: the torn one was cut off
    assert sorted(r["job"] for r in records) == [0, 1, 2] and records[-1]["job"] == lost


def test_a_results_file_of_another_batch_is_refused(capsys, tmp_path):
    path = tmp_path / "results.jsonl"
    assert run(capsys, "eval", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--seeds", "0-1",
               "--out", path)[0] == 0
    written = path.read_bytes()

    code, _, err = run(capsys, "eval", *BW4, "--seeds", "0-1", "--out", path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'env_args: {"blocks": 3} vs {"blocks": 4}' in err and "refusing to mix" in err

    code, _, err = run(capsys, "eval", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--seeds", "0-1",
                       "--oracle", "--out", path)
    assert code == 2 and 'model: "' in err and 'vs "oracle"' in err

    code, _, err = run(capsys, "eval", "--env", "blocksworld-v0", "--env-arg", "blocks=3", "--seeds", "0-1",
                       "--search", "mcts", "--out", path)
    assert code == 2 and 'config.search.algorithm: "beam" vs "mcts"' in err
    assert path.read_bytes() == written

    log = tmp_path / "transitions.jsonl"
    log.write_text('{"problem": "p"}\n')
    code, _, err = run(capsys, "eval", *BW4, "--seeds", "0-1", "--out", log)
    assert code == 2 and "not a planner eval results file" in err


def test_a_job_that_raises_is_recorded_and_the_batch_goes_on(capsys, tmp_path):
    factory = tmp_path / "flaky.py"
    factory.write_text(FLAKY)
    path = tmp_path / "results.jsonl"
    args = ["eval", "--env", f"{factory}:make", "--seeds", "0-2", "--out", path, "--json"]
    code, out, err = run(capsys, *args)
    assert code == 1
    by_job = {r["job"]: r for r in episodes(path)}
    assert by_job[0]["success"] and by_job[1]["success"] and by_job[0]["error"] is None
    assert not by_job[2]["success"] and by_job[2]["error"].startswith("job 2: EnvironmentCheckError:")
    assert "seed 2 is broken" in by_job[2]["error"]
    assert summary_of(out)["errors"] == [by_job[2]["error"]]
    assert err.strip().splitlines()[-1].startswith("planner: error: 1 of 3 jobs raised an error")

    code, out, _ = run(capsys, *args)  # the failed job runs again, the others not
    assert code == 1 and summary_of(out)["ran"] == 1
    assert [r["job"] for r in episodes(path)] == [0, 1, 2, 2]


def test_a_worker_that_dies_fails_only_its_own_job(capsys, tmp_path):
    factory = tmp_path / "flaky.py"
    factory.write_text(FLAKY)
    path = tmp_path / "results.jsonl"
    # (the command builds the first seed's environment itself, to check the arguments: not seed 5)
    code, _, err = run(capsys, "eval", "--env", f"{factory}:make", "--seeds", "3-7", "--workers", 2, "--out", path)
    assert code == 1, err
    by_job = {r["job"]: r for r in episodes(path)}
    assert sorted(by_job) == [3, 4, 5, 6, 7]
    assert by_job[5]["error"].startswith("job 5: WorkerDied:")
    assert all(by_job[s]["success"] for s in (3, 4, 6, 7))


@pytest.mark.parametrize("command", [
    ["eval", *BW4, "--seeds", "0-1", "--out", "{out}/r.jsonl", "--ray", "local"],
    ["collect", "--out", "{out}/data", "--train-problems", "1", "--val-problems", "0", "--test-problems", "0",
     "--ray", "local"],
    ["collect", "--out", "{out}/data", *BW4, "--seeds", "train=0-1", "--ray", "auto"],
    ["synth", *BW4, "--oracle", "--seeds", "0-1", "--out", "{out}/s.jsonl", "--ray", "local"],
])
def test_ray_without_ray_installed_is_one_line_naming_the_extra(capsys, tmp_path, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code, _, err = run(capsys, *[a.format(out=tmp_path) for a in command])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "pip install 'planner[ray]'" in err


def test_a_local_ray_gives_the_same_results(capsys, tmp_path, serial_results):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'planner[ray]')")
    path = tmp_path / "results.jsonl"
    code, out, err = run(capsys, "eval", *BW4, "--seeds", "0-5", "--model", SHIPPED, "--ray", "local",
                         "--workers", 2, "--out", path, "--json")
    assert code == 0, err
    assert outcome(episodes(path)) == serial_results
    summary = summary_of(out)
    assert (summary["executor"], summary["workers"], summary["solved"]) == ("ray", 2, 6)
    import ray

    assert not ray.is_initialized()  # the local Ray started for the run is stopped


def sorted_lines(*paths: Path) -> list[str]:
    return sorted(line for p in paths for line in p.read_text().splitlines() if line.strip())


def test_synth_with_workers_writes_the_serial_records(capsys, tmp_path):
    args = ["synth", *BW4, "--model", SHIPPED, "--seeds", "0-3", "--episodes", "2", "--max-steps", "8"]
    code, serial_out, err = run(capsys, *args, "--out", tmp_path / "serial.jsonl", "--json")
    assert code == 0, err
    code, parallel_out, err = run(capsys, *args, "--out", tmp_path / "parallel.jsonl", "--workers", 2, "--json")
    assert code == 0, err
    assert sorted_lines(tmp_path / "serial.jsonl") == sorted_lines(tmp_path / "parallel.jsonl")
    serial, parallel = json.loads(serial_out), json.loads(parallel_out)
    for key in ("episodes", "steps", "confirmed", "agreeing_steps", "consistency", "step_agreement"):
        assert serial[key] == parallel[key]
    records = [json.loads(line) for line in (tmp_path / "parallel.jsonl").read_text().splitlines()]
    for problem in {r["problem"] for r in records}:  # each seed's records stay together, in order
        indexes = [i for i, r in enumerate(records) if r["problem"] == problem]
        assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))


@pytest.mark.parametrize("source", [
    ["--train-problems", "4", "--val-problems", "1", "--test-problems", "1", "--blocks", "3-4"],
    [*BW4, "--seeds", "train=0-3,test=100-101", "--episodes-per-seed", "2", "--max-steps", "15"],
])
def test_collect_gives_the_same_records_for_any_worker_count(capsys, tmp_path, source):
    for name, workers in (("one", "1"), ("two", "2")):
        code, out, err = run(capsys, "collect", "--out", tmp_path / name, *source, "--workers", workers)
        assert code == 0, err
        assert "train:" in out and "test:" in out
    splits = sorted(p.name for p in (tmp_path / "one").glob("*.jsonl"))
    assert splits == sorted(p.name for p in (tmp_path / "two").glob("*.jsonl")) and "train.jsonl" in splits
    for split in splits:
        one = sorted_lines(tmp_path / "one" / split)
        assert one and one == sorted_lines(tmp_path / "two" / split)


def test_how_the_model_runs_is_not_part_of_a_batch_identity():
    from planner.config import PlannerConfig
    from planner.scale.eval import EvalSettings

    def header(**model):
        cfg = PlannerConfig().updated(model=model)
        return EvalSettings(config=cfg, env="blocksworld-v0", env_args={}).header().config

    in_process = header(n_threads=2)
    assert header(server="http://127.0.0.1:8090", timeout_s=60.0, concurrency=8, n_gpu_layers=-1) == in_process
    assert header(cache_size=10) != in_process  # what the planner sees still counts
    assert header(votes=3) != in_process and header(votes=3)["model"]["votes"] == 3
    assert "votes" not in in_process["model"]  # one vote: as files written before votes existed


def test_an_unreachable_ray_address_is_one_line_at_once(tmp_path):
    pytest.importorskip("ray", reason="needs the 'ray' extra")
    from planner.errors import ConfigError
    from planner.scale.ray_executor import _check_reachable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"127.0.0.1:{port}: cannot reach Ray"):
        _check_reachable(f"127.0.0.1:{port}")
    assert time.perf_counter() - start < 10
    with pytest.raises(ConfigError, match="not an address"):
        _check_reachable("127.0.0.1:notaport")
