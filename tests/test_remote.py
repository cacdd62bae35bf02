"""A world model answered by a llama.cpp server: the same predictions as in-process, clear
failures. The test starts llama-cpp-python's server itself, on 127.0.0.1, with the shipped GGUF
(skipped with the reason when the ``server`` extra is not installed)."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from planner.config import ModelConfig, PlannerConfig
from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.errors import ConfigError, ModelLoadError, WorldModelError
from planner.world.factory import default_model_path, load_gguf_world_model
from planner.world.llama import LlamaWorldModel
from planner.world.serve import check_server_extra, free_port, running_server, server_command

pytest.importorskip("httpx", reason="the remote world model needs httpx (pip install 'planner[remote]')")
from planner.world.remote import RemoteWorldModel

MODEL = default_model_path("blocksworld")


def _server_extra_missing() -> str | None:
    try:
        check_server_extra()
    except ConfigError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def server_url():
    missing = _server_extra_missing()
    if missing:
        pytest.skip(missing)
    with running_server(MODEL) as url:
        yield url


def _env(tmp_path, blocks: int, seed: int) -> PDDLEnvironment:
    return PDDLEnvironment(*write_problem(tmp_path / f"p{seed}", blocks, seed=seed))


def test_served_model_predicts_as_the_in_process_model(server_url, tmp_path):
    compared = 0
    for seed in (3, 4):
        env = _env(tmp_path, 5, seed)
        states = env.random_walk(env.state, 11, random.Random(seed))
        local = LlamaWorldModel.for_environment(MODEL, env)
        remote = RemoteWorldModel.for_environment(MODEL, env, url=server_url, concurrency=4)
        try:
            for state in states:
                actions = list(env.candidate_actions(state))
                for a, b in zip(local.predict_many(state, actions), remote.predict_many(state, actions)):
                    assert (a.applicable, a.next_state, a.done, a.raw) == (b.applicable, b.next_state, b.done, b.raw)
                    # llama.cpp's logits depend a little on how tokens are batched (in-process: all
                    # siblings in one batch; the server: one sequence at a time).
                    assert b.confidence == pytest.approx(a.confidence, rel=0.03)
                    compared += 1
            # Held to "applies" (the agent's doubted refusals), the served model writes the same.
            actions = list(env.candidate_actions(states[-1]))
            for a, b in zip(local.predict_applied(states[-1], actions), remote.predict_applied(states[-1], actions)):
                assert a.applicable and (b.applicable, b.next_state, b.raw) == (True, a.next_state, a.raw)
                assert a.p_apply is not None and b.p_apply == pytest.approx(a.p_apply, rel=0.03, abs=1e-6)
            assert remote.stats.predictions == local.stats.predictions
            assert remote.client.requests >= remote.stats.predictions
        finally:
            local.close()
            remote.close()
    assert compared >= 200


def test_a_served_model_votes_as_the_in_process_model(server_url, tmp_path):
    """Votes are counted by the client: under three numberings, the served model's majority is the
    in-process model's, and they disagree on the same predictions."""
    env = _env(tmp_path, 5, 6)
    states = env.random_walk(env.state, 5, random.Random(6))
    local = LlamaWorldModel.for_environment(MODEL, env, votes=3, vote_below=1.0)
    remote = RemoteWorldModel.for_environment(MODEL, env, url=server_url, concurrency=4, votes=3, vote_below=1.0)
    try:
        for state in states:
            actions = list(env.candidate_actions(state))
            for a, b in zip(local.predict_many(state, actions), remote.predict_many(state, actions)):
                assert a.same_outcome(b) and a.raw == b.raw
        assert remote.stats.split_votes == local.stats.split_votes
    finally:
        local.close()
        remote.close()


def test_one_request_at_a_time_gives_the_same_answers(server_url, tmp_path):
    env = _env(tmp_path, 4, 7)
    actions = list(env.candidate_actions(env.state))
    one = RemoteWorldModel.for_environment(MODEL, env, url=server_url, concurrency=1)
    many = RemoteWorldModel.for_environment(MODEL, env, url=server_url, concurrency=16)
    try:
        assert [p.raw for p in one.predict_many(env.state, actions)] == \
               [p.raw for p in many.predict_many(env.state, actions)]
    finally:
        one.close()
        many.close()


def test_factory_and_config_route_to_the_server(server_url, tmp_path):
    env = _env(tmp_path, 4, 1)
    model = load_gguf_world_model(env, server=server_url, n_threads=3, n_gpu_layers=0)  # in-process knobs dropped
    try:
        assert isinstance(model, RemoteWorldModel)
        action = next(iter(env.candidate_actions(env.state)))
        assert model.predict(env.state, action).next_state is not None
    finally:
        model.close()
    cfg = PlannerConfig().updated(model={"server": server_url, "concurrency": 2})
    assert cfg.model.server == server_url


def test_solve_plans_with_a_served_model(server_url, tmp_path):
    from typer.testing import CliRunner

    from planner.cli import app

    domain, problem = write_problem(tmp_path, 4, seed=2)
    result = CliRunner().invoke(app, ["solve", str(domain), str(problem), "--server", server_url, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["solved"] is True


def test_no_server_is_one_clear_error(tmp_path):
    env = _env(tmp_path, 3, 0)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ModelLoadError, match=r"127\.0\.0\.1.*failed 2 times.*Connect"):
        RemoteWorldModel.for_environment(MODEL, env, url=url, http_retries=1, timeout=2)


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://127.0.0.1", "", None])
def test_bad_urls_are_refused(tmp_path, url):
    env = _env(tmp_path, 3, 0)
    with pytest.raises(ConfigError, match="http://"):
        RemoteWorldModel.for_environment(MODEL, env, url=url)


@pytest.mark.parametrize("value", ["localhost:8080", "http://", 7])
def test_config_refuses_a_bad_server(value):
    with pytest.raises(ConfigError, match=r"model\.server"):
        PlannerConfig().updated(model={"server": value})


def test_config_bounds_concurrency_and_timeout():
    with pytest.raises(ConfigError, match=r"model\.concurrency"):
        PlannerConfig().updated(model={"concurrency": 0})
    with pytest.raises(ConfigError, match=r"model\.timeout_s"):
        PlannerConfig().updated(model={"timeout_s": float("inf")})
    assert ModelConfig().server is None


class _Stub(BaseHTTPRequestHandler):
    """A server that lists a model and answers completions as ``self.server.reply`` says."""

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, json.dumps({"data": [{"id": MODEL.name}]}))

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts += 1
        self._send(*self.server.reply)


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.posts = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _stub_model(stub, tmp_path, **kwargs):
    env = _env(tmp_path, 3, 0)
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    model = RemoteWorldModel.for_environment(MODEL, env, url=url, timeout=5, **kwargs)
    return model, env


def test_server_errors_are_retried_then_named(stub, tmp_path):
    stub.reply = (503, '{"error": "busy"}')
    model, env = _stub_model(stub, tmp_path, http_retries=2)
    action = next(iter(env.candidate_actions(env.state)))
    with pytest.raises(WorldModelError, match=r"failed 3 times on POST /v1/completions: HTTP 503 .*busy"):
        model.predict(env.state, action)
    assert stub.posts == 3
    model.close()


def test_a_refused_request_is_not_retried(stub, tmp_path):
    stub.reply = (400, '{"error": "logprobs is not supported for models created with logits_all=False"}')
    model, env = _stub_model(stub, tmp_path, http_retries=3)
    action = next(iter(env.candidate_actions(env.state)))
    with pytest.raises(WorldModelError, match=r"refused POST /v1/completions: HTTP 400 .*logits_all"):
        model.predict(env.state, action)
    assert stub.posts == 1
    model.close()


def test_answers_without_logprobs_name_the_server_setting(stub, tmp_path):
    stub.reply = (200, json.dumps({"choices": [{"text": " ok", "logprobs": None}]}))
    model, env = _stub_model(stub, tmp_path)
    action = next(iter(env.candidate_actions(env.state)))
    with pytest.raises(WorldModelError, match="--logits_all true"):
        model.predict(env.state, action)
    model.close()


def test_a_different_model_on_the_server_is_named(stub, tmp_path):
    reply = {"choices": [{"text": " hello", "logprobs": {"tokens": [" hello"], "token_logprobs": [-0.1],
                                                          "top_logprobs": [{" hello": -0.1}]}}]}
    stub.reply = (200, json.dumps(reply))
    model, env = _stub_model(stub, tmp_path)
    action = next(iter(env.candidate_actions(env.state)))
    with pytest.raises(WorldModelError, match="does it run the same GGUF file"):
        model.predict(env.state, action)
    model.close()


def test_invalid_answers_can_be_rejected_like_in_process(stub, tmp_path):
    reply = {"choices": [{"text": " hello", "logprobs": {"tokens": [" hello"], "token_logprobs": [-0.1],
                                                          "top_logprobs": [{}]}}]}
    stub.reply = (200, json.dumps(reply))
    model, env = _stub_model(stub, tmp_path, on_invalid="reject")
    action = next(iter(env.candidate_actions(env.state)))
    with pytest.raises(WorldModelError):  # a transport-level or vocabulary fault is never silenced
        model.predict(env.state, action)
    model.close()


def test_server_command_binds_loopback_and_checks_the_file(tmp_path):
    cmd = server_command(MODEL, port=9001)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--logits_all") + 1] == "true"
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        server_command(bad)
    with pytest.raises(ConfigError, match="port"):
        server_command(MODEL, port=70000)


def test_missing_server_extra_names_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    with pytest.raises(ConfigError, match=r"planner\[server\].*|uvicorn"):
        check_server_extra()


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc", "http://[::1", "http://127.0.0.1:99999", "http://:8080",
                                 "http://127.0.0.1:0"])
def test_malformed_urls_are_one_line_errors(url):
    with pytest.raises(ConfigError, match="server url"):
        PlannerConfig().updated(model={"server": url})
    from planner.world.remote import check_server_url

    with pytest.raises(ConfigError, match="server url"):
        check_server_url(url)


def test_the_exact_model_takes_no_server():
    with pytest.raises(ConfigError, match=r"oracle.*no server"):
        PlannerConfig().updated(model={"kind": "oracle", "server": "http://127.0.0.1:8080"})


def test_a_busy_port_is_named_before_serving():
    import socket

    from planner.world.serve import check_port_free, server_url

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1 port {port}"):
            check_port_free("127.0.0.1", port)
    assert server_url("::1", 8080) == "http://[::1]:8080"


@pytest.mark.parametrize("logprobs", [{"tokens": [], "token_logprobs": [], "top_logprobs": []},
                                      {"tokens": [" ok"], "token_logprobs": [-0.1], "top_logprobs": [[1, 2]]}])
def test_odd_server_answers_are_server_errors(stub, tmp_path, logprobs):
    from planner.errors import ServerError

    stub.reply = (200, json.dumps({"choices": [{"text": "", "logprobs": logprobs}]}))
    model, env = _stub_model(stub, tmp_path)
    action = next(iter(env.candidate_actions(env.state)))
    with pytest.raises(ServerError):
        model.predict(env.state, action)
    model.close()


def test_an_aborted_client_sends_nothing_more(stub, tmp_path):
    from planner.errors import ServerError

    stub.reply = (503, "{}")
    model, env = _stub_model(stub, tmp_path, http_retries=5)
    model.client.abort()
    action = next(iter(env.candidate_actions(env.state)))
    with pytest.raises(ServerError, match="abandoned"):
        model.predict(env.state, action)
    assert stub.posts == 0
