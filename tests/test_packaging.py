"""The shipped models travel with the package: wheel and sdist hold them, and an installed
wheel runs ``planner demo`` from any folder. No network: the build uses the current
environment's setuptools (``--no-build-isolation``) and installs without dependencies."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("setuptools", reason="building without network needs setuptools in this environment")
if importlib.util.find_spec("setuptools.command.bdist_wheel") is None and importlib.util.find_spec("wheel") is None:
    pytest.skip("building a wheel needs setuptools >= 70.1 or the wheel package", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("planner/models/blocksworld-q8_0.gguf", "planner/models/README.md")
_NOT_SOURCE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """What a build reads from the checkout (project file, readme, the package), copied, so that
    building leaves no ``build/`` or ``*.egg-info`` in the checkout."""
    dst = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "MANIFEST.in", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dst / name)
    shutil.copytree(ROOT / "planner", dst / "planner", ignore=_NOT_SOURCE)
    return dst


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(out), str(source)], cwd=source)
    (built,) = out.glob("planner-*.whl")
    return built


def test_the_wheel_holds_the_shipped_models(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SHIPPED) <= names
    assert zipfile.ZipFile(wheel).getinfo(SHIPPED[0]).file_size == (ROOT / SHIPPED[0]).stat().st_size


def test_the_sdist_holds_the_shipped_models(source, tmp_path):
    code = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    name = _run([sys.executable, "-c", code, str(tmp_path)], cwd=source).stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as sdist:
        members = {m.split("/", 1)[1] for m in sdist.getnames() if "/" in m}
    assert set(SHIPPED) <= members


def test_an_installed_wheel_runs_the_demo_from_another_folder(wheel, tmp_path):
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target),
          str(wheel)], cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PLANNER_MODELS"}
    env["PYTHONPATH"] = str(target)
    where = _run([sys.executable, "-c", "import planner.world.factory as f; print(f.package_models_dir())"],
                 cwd=elsewhere, env=env).stdout.strip()
    assert Path(where) == target / "planner" / "models"
    demo = _run([sys.executable, "-m", "planner.cli", "demo", "--blocks", "4", "--seed", "3", "--out", "demo",
                 "--json"], cwd=elsewhere, env=env)
    summary = json.loads(demo.stdout.strip().splitlines()[-1])
    assert summary["solved"] and summary["model"] == "default"
    assert (elsewhere / "demo").is_dir() and not (ROOT / "demo").exists()
