"""Start a llama.cpp completions server for a fact-delta GGUF model (llama-cpp-python's
server, the optional extra ``server``), for :class:`~planner.world.remote.RemoteWorldModel`.

The server binds to the loopback interface unless told otherwise, computes per-token
log-probabilities (``--logits_all``), and runs llama.cpp with the threads the in-process
model would use (one for small models: see :func:`planner.world.engine.default_threads`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from planner.errors import ConfigError, ModelLoadError
from planner.logs import get_logger
from planner.world.engine import MAX_GPU_LAYERS, check_whole, resolve_threads
from planner.world.gguf_io import read_model_info

log = get_logger(__name__)

LOOPBACK = "127.0.0.1"
SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
"""What llama-cpp-python's server imports beyond llama-cpp-python itself."""
MIN_SERVER_CTX = 512
"""Smallest context the server is started with (tokens; a model's trained context is often less)."""


def check_server_extra() -> None:
    """:class:`ConfigError` naming the extra when llama-cpp-python's server cannot start here."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"starting a model server needs llama-cpp-python's server extra (missing: "
                          f"{', '.join(missing)}): pip install 'planner[server]'")


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on at ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_url(host: str, port: int) -> str:
    """The base URL of a server on ``host:port`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_port_free(host: str, port: int) -> None:
    """:class:`ConfigError` naming ``host:port`` when a server could not listen there now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


def server_command(path: str | Path, *, host: str = LOOPBACK, port: int = 8080, n_threads: int | None = None,
                   n_gpu_layers: int = 0, python: str | None = None) -> list[str]:
    """The command line that serves the GGUF file ``path`` (checked: a fact-delta model's
    header must read) on ``host:port``."""
    info = read_model_info(path)
    check_whole("port", port, 1, 65535)
    check_whole("n_gpu_layers", n_gpu_layers, -1, MAX_GPU_LAYERS)
    threads = resolve_threads(n_threads, info.size_bytes)
    return [python or sys.executable, "-m", "llama_cpp.server", "--model", str(info.path), "--host", host,
            "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--n_gpu_layers", str(-1 if n_gpu_layers < 0 else n_gpu_layers),
            "--n_ctx", str(max(info.context, MIN_SERVER_CTX)), "--logits_all", "true", "--flash_attn", "true",
            "--verbose", "false"]


def wait_until_ready(url: str, process: subprocess.Popen[bytes], *, timeout: float, log_path: Path) -> None:
    """Return once ``url/v1/models`` answers; :class:`ModelLoadError` with the server's last
    output lines when it exits first or ``timeout`` seconds pass."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ModelLoadError(f"the model server exited with code {process.returncode} before answering: "
                                 f"{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise ModelLoadError(f"the model server at {url} did not answer within {timeout:.0f} s: {_tail(log_path)}")
        time.sleep(0.1)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no output)"
    return " | ".join(text[-lines:]) or "(no output)"


def stop(process: subprocess.Popen[bytes], *, grace: float = 10.0) -> int:
    """Stop the server (SIGTERM, then SIGKILL after ``grace`` seconds); its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


@contextlib.contextmanager
def running_server(path: str | Path, *, host: str = LOOPBACK, port: int | None = None, n_threads: int | None = None,
                   n_gpu_layers: int = 0, startup_timeout: float = 120.0) -> Iterator[str]:
    """Serve ``path`` for the duration of a ``with`` block; yields the server's base URL.

    ``port=None`` picks a free one. The server's output goes to a temporary file, quoted in
    the :class:`ModelLoadError` raised when it does not start."""
    check_server_extra()
    port = free_port(host) if port is None else port
    cmd = server_command(path, host=host, port=port, n_threads=n_threads, n_gpu_layers=n_gpu_layers)
    url = server_url(host, port)
    with tempfile.TemporaryDirectory(prefix="planner-serve-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as out:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            try:
                wait_until_ready(url, process, timeout=startup_timeout, log_path=log_path)
                log.info("model_server_ready", url=url, model=str(path), pid=process.pid)
                yield url
            finally:
                stop(process)
