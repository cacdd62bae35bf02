"""The examples run and do what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "expect"),
    [("automation_cell.py", "solved: True in 10 steps"),
     ("custom_policy.py", "reaches goal: True")],
)
def test_example_runs(script, expect):
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


def test_completion_world_model_example_runs(tmp_path):
    from tests.conftest import CHAT_TEMPLATE, build_tiny_gguf

    path = build_tiny_gguf(tmp_path / "chat.gguf", codec="chat", chat_template=CHAT_TEMPLATE, context=2048)
    done = subprocess.run([sys.executable, str(EXAMPLES / "completion_world_model.py"), str(path), "--steps", "2",
                           "--max-tokens", "24"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "agreement with the simulator: " in done.stdout and "/2, invalid answers: " in done.stdout


@pytest.mark.slow
def test_own_domain_example_runs_end_to_end(tmp_path):
    pytest.importorskip("torch")
    done = subprocess.run([sys.executable, str(EXAMPLES / "own_domain.py"), "--out", str(tmp_path),
                           "--problems", "12", "--steps", "20"], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "held-out problem solved:" in done.stdout
    assert (tmp_path / "model" / "model-q8_0.gguf").exists()
