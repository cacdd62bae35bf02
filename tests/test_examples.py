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
