"""Configuration files and the append-only JSONL log."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from planner.config import PlannerConfig, load_config
from planner.errors import ConfigError
from planner.io import JsonlLog, atomic_write_text, read_jsonl


def test_config_loads_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[search]\nalgorithm = "mcts"\nsimulations = 50\n[agent]\nmode = "receding"\n')
    cfg = load_config(path)
    assert cfg.search.algorithm == "mcts" and cfg.search.simulations == 50
    assert cfg.agent.mode == "receding"
    assert cfg.updated(search={"simulations": 9, "seed": None}).search.simulations == 9
    with pytest.raises(ValidationError):
        cfg.search.simulations = 3  # frozen


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[search]\nbogus = 1\n", "search.bogus"),
        ("[serch]\n", "serch"),
        ("[search]\nsimulations = -1\n", "simulations"),
        ('[search]\nalgorithm = "dfs"\n', "dfs"),
        ("[search\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_bad_value(tmp_path, text, match):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="beam_width"):
        PlannerConfig().updated(search={"beam_width": 0})


def test_jsonl_appends_and_tolerates_torn_tail(tmp_path):
    path = tmp_path / "a" / "log.jsonl"
    with JsonlLog(path) as log:
        log.write({"a": 1})
    with JsonlLog(path) as log:
        log.write({"a": 2})
    with path.open("a") as fh:
        fh.write('{"a": 3')  # a crash mid-line
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match=":2:"):
        read_jsonl(path)


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
