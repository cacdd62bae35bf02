"""TextWorld cooking games generated offline (cooking-v0): text-only states, the game's commands."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from planner.env import cooking
from planner.env.base import check_env
from planner.env.cooking import (
    LOST_MARK,
    WON_MARK,
    CookingEnvironment,
    ObjectiveGoal,
    clean_text,
    game_seed,
    make_cooking,
)
from planner.env.registry import make, registered
from planner.errors import ConfigError, UnknownActionError
from planner.types import Action, State

needs_textworld = pytest.mark.skipif(importlib.util.find_spec("textworld") is None,
                                     reason="TextWorld is not installed (pip install -e '.[household]')")

BANNER = (
    "\n\n\n\n                    ________  ________  __    __  ________        \n"
    "                   |        \\|        \\|  \\  |  \\|        \\       \n"
    "                    \\$$$$$$$$| $$$$$$$$| $$  | $$ \\$$$$$$$$       \n"
    "                      | $$   | $$  \\     >$$  $$    | $$          \n"
    "              \\$$      \\$$  \\$$$$$$  \\$$   \\$$ \\$$$$$$$$ \\$$$$$$$ \n\n"
)
STATUS = ">" + " " * 60 + "-= Kitchen =-1/2"


# -- clean_text (no game needed) ----------------------------------------------------------------
def test_clean_text_removes_the_status_line_and_collapses_whitespace():
    feedback = ("\nYou take the white onion from the fridge.\n\n\n\nYour score has just gone up by one point.\n\n"
                + STATUS)
    assert clean_text(feedback) == "You take the white onion from the fridge. Your score has just gone up by one point."
    assert clean_text("\nYou open the fridge.\n\n\n" + ">   -= Living Room =-0/13") == "You open the fridge."


def test_clean_text_keeps_the_room_header_of_a_description():
    description = "-= Kitchen =-\nYou are in a kitchen.\n\n  The stove is empty."
    assert clean_text(description) == "-= Kitchen =- You are in a kitchen. The stove is empty."


def test_clean_text_removes_the_banner_of_the_first_feedback():
    first = (BANNER + "You are hungry! Let's cook a delicious meal.\n\n-= Kitchen =-\nYou are in a kitchen.\n\n\n\n"
             + STATUS.replace("1/2", "0/1"))
    assert clean_text(first) == "You are hungry! Let's cook a delicious meal. -= Kitchen =- You are in a kitchen."


def test_clean_text_removes_the_score_and_restart_lines_of_a_game_end():
    won = ("\nYou eat the meal. Not bad.\n\n\nYour score has just gone up by one point.\n\n\n"
           "                                                       *** The End ***\n\n"
           "You scored 5 out of a possible 5, in 8 turns.\n\n\n"
           "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?\n" + STATUS)
    assert clean_text(won) == "You eat the meal. Not bad. Your score has just gone up by one point. *** The End ***"
    lost = ("\nYou eat the white onion. Not bad.\n\n\n       *** You lost! ***\n\nYou scored 1 out of a possible 5, "
            "in 1 turn.\n\n\nWould you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?\n> ")
    assert clean_text(lost) == "You eat the white onion. Not bad. *** You lost! ***"
    assert clean_text(None) == "" and clean_text(" \n\t ") == ""


def test_the_goal_is_the_objective_reached_by_won_states():
    goal = ObjectiveGoal("Eat the meal.")
    assert str(goal) == "Eat the meal."
    won, lost, going = (State.from_text(f"room You are carrying: a knife. {WON_MARK}"),
                        State.from_text(f"room You are carrying nothing. {LOST_MARK}"),
                        State.from_text("room You are carrying nothing."))
    assert goal.satisfied(won) and goal.progress(won) == 1.0
    assert not goal.satisfied(lost) and not goal.satisfied(going) and goal.progress(going) == 0.0
    assert not goal.satisfied(State.from_facts(["(won)"]))


# -- settings -----------------------------------------------------------------------------------
def test_splits_give_disjoint_game_seeds():
    assert [game_seed(3, s) for s in ("train", "val", "test")] == [3, 10_003, 20_003]
    for bad in (-1, 10_000, True, 1.5):
        with pytest.raises(ConfigError, match="cooking seed must be"):
            game_seed(bad, "train")  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"go": 3}, "go .* got 3"),
    ({"recipe": 2, "take": 3}, r"take must be 0..recipe \(2\), got 3"),
    ({"take": -1}, "take .* got -1"),
    ({"recipe": 0}, "recipe must be 1..5 ingredients, got 0"),
    ({"recipe": 6, "take": 1}, "got 6"),
    ({"split": "dev"}, "unknown cooking split 'dev'"),
    ({"foods": "val"}, "unknown cooking foods split 'val'; known: train, valid, test"),
    ({"open": "yes"}, "open must be true or false, got 'yes'"),
    ({"go": "1"}, "go must be a whole number, got '1'"),
    ({"max_steps": 0}, "max_steps .* got 0"),
    ({"seed": 10_000}, "got 10000"),
])
def test_bad_settings_raise_config_error_naming_the_value(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_cooking(cache_dir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # nothing generated


def test_missing_textworld_is_a_one_line_error_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "textworld", None)  # import textworld raises ImportError
    with pytest.raises(ConfigError) as info:
        make_cooking(cache_dir=tmp_path)
    assert "household" in str(info.value) and "\n" not in str(info.value)


def test_the_cache_folder_follows_planner_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PLANNER_CACHE", str(tmp_path / "c"))
    assert cooking.cache_folder() == tmp_path / "c" / "cooking"
    monkeypatch.delenv("PLANNER_CACHE")
    assert cooking.cache_folder().parts[-3:] == (".cache", "planner", "cooking")
    assert cooking.cache_folder(tmp_path) == tmp_path


def test_cooking_is_registered():
    spec = registered()["cooking-v0"]
    assert "TextWorld cooking game" in spec.description and "'household' extra" in spec.description
    with pytest.raises(ConfigError, match="bad arguments"):
        make("cooking-v0", rooms=3)


# -- games (TextWorld) ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cooking-cache")


@pytest.fixture(scope="module")
def game(cache):
    """The train game of seed 0 (one room), generated once for the module."""
    if importlib.util.find_spec("textworld") is None:
        pytest.skip("TextWorld is not installed (pip install -e '.[household]')")
    return make_cooking(seed=0, cache_dir=cache)


@needs_textworld
def test_generation_is_deterministic_and_splits_differ(game, tmp_path):
    start, _ = game.reset()
    again = make_cooking(seed=0, cache_dir=tmp_path / "other")  # generated anew, in another cache
    assert again.path != game.path and again.reset()[0] == start
    held_out = make_cooking(seed=0, split="val", cache_dir=tmp_path / "other")
    assert held_out.settings["game_seed"] == 10_000
    assert held_out.reset()[0] != start
    assert start.text and "\n" not in start.text and start.text.endswith(".")


@needs_textworld
def test_a_cached_game_is_not_generated_again(game, cache, monkeypatch):
    stamp = os.stat(game.path).st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(cooking, "_generate", refuse)
    env = make_cooking(seed=0, cache_dir=cache, max_steps=7)  # max_steps is no game setting
    assert env.path == game.path and os.stat(env.path).st_mtime_ns == stamp and env.max_steps == 7
    assert [p.name for p in cache.iterdir()] == [game.path.parent.name]  # no temporary folder left
    assert sorted(p.name for p in game.path.parent.iterdir()) == ["game.json", "game.z8"]


@needs_textworld
def test_the_walkthrough_wins_the_game(game):
    state, info = game.reset()
    assert info["objective"].startswith("You are hungry!") and str(game.goal) == info["objective"]
    assert info["observation"] == state.text.rsplit(" You are carrying", 1)[0]
    assert not game.goal.satisfied(state)
    walk = game.walkthrough()
    assert walk and walk[-1] == Action("eat meal")
    total = 0.0
    for k, action in enumerate(walk):
        assert game.walkthrough() == walk[k:]
        result = game.step(action)
        total += result.reward
        assert result.applicable and not result.truncated
        assert result.terminated == (k == len(walk) - 1)
    assert total == game.max_score == result.info["score"] == 5
    assert result.info["won"] and not result.info["lost"]
    assert result.state.text.endswith(WON_MARK) and game.goal.satisfied(result.state)
    assert WON_MARK in result.info["observation"] and "You scored" not in result.info["observation"]
    assert game.walkthrough() == [] and list(game.candidate_actions(result.state)) == []
    with pytest.raises(UnknownActionError, match="game is over"):
        game.step(Action("look"))


@needs_textworld
def test_candidate_actions_are_the_admissible_commands(game):
    import textworld

    state, _ = game.reset()
    with cooking._quiet():
        tw = textworld.start(str(game.path), request_infos=textworld.EnvInfos(admissible_commands=True))
    admissible = tw.reset().admissible_commands
    assert list(game.candidate_actions(state)) == [Action(c) for c in sorted(admissible)]
    first = game.walkthrough()[0]
    after = game.step(first).state
    assert set(game.candidate_actions(after)) == {Action(c) for c in tw.step(first.name)[0].admissible_commands}
    assert game.candidate_actions(state) != game.candidate_actions(after)  # a state reached before: its own
    imagined = game.candidate_actions(State.from_text("an imagined kitchen"))
    assert set(imagined) >= set(game.candidate_actions(state)) | set(game.candidate_actions(after))


@needs_textworld
def test_a_command_that_is_not_admissible_raises_a_clear_error(game):
    state, _ = game.reset()
    with pytest.raises(UnknownActionError, match="'fly away' is not admissible in the cooking game here; "
                                                 "admissible: 'examine"):
        game.step(Action("fly away"))
    with pytest.raises(UnknownActionError, match="'eat meal' is not admissible"):
        game.step(Action("eat meal"))  # a command of the game, but not yet
    assert game.state == state


@needs_textworld
def test_branch_copies_the_current_state_and_leaves_the_original_alone(game):
    game.reset()
    game.step(game.walkthrough()[0])
    state, walk = game.state, game.walkthrough()
    twin = game.branch()
    assert twin.state == state and twin.walkthrough() == walk
    assert twin.candidate_actions(state) == game.candidate_actions(state)
    outcomes = {}
    tried = {walk[0], *game.candidate_actions(state)[:5]}  # several admissible commands from one state
    for action in sorted(tried):
        result = game.branch().step(action)
        outcomes[action] = (result.state, result.info["observation"], result.reward)
    assert game.state == state and game.walkthrough() == walk
    on_twin = twin.step(walk[0])
    assert game.state == state  # the twin's step left the original alone
    on_game = game.step(walk[0])
    assert (on_game.state, on_game.info["observation"], on_game.reward) == (
        on_twin.state, on_twin.info["observation"], on_twin.reward) == outcomes[walk[0]]
    assert twin.walkthrough() == game.walkthrough() == walk[1:]


@needs_textworld
def test_a_lost_game_ends_truncated_and_its_state_says_so(game):
    game.reset()
    for action in game.walkthrough():
        game.step(action)
        if action.name.startswith("take ") and "knife" not in action.name:
            break
    food = action.name.removeprefix("take ").split(" from ")[0]
    eat = Action(f"eat {food}")
    assert eat in game.candidate_actions(game.state)
    before = game.state
    result = game.step(eat)
    assert result.truncated and not result.terminated and result.info["lost"] and result.reward == 0.0
    assert result.state.text == f"{before.text} {LOST_MARK}"  # TextWorld keeps the last description
    assert not game.goal.satisfied(result.state) and game.walkthrough() == []


@needs_textworld
def test_episodes_are_truncated_at_max_steps(game):
    env = CookingEnvironment(game.path, max_steps=2)
    state, _ = env.reset()
    look = Action("look")
    assert not env.step(look).truncated
    result = env.step(look)
    assert result.truncated and not result.terminated and result.state == state
    assert result.info["observation"] == env.reset()[1]["observation"]  # look answers the description


@needs_textworld
def test_check_env_passes_and_make_builds_it(game, cache):
    check_env(game, max_steps=5)
    env = make("cooking-v0", seed=0, cache_dir=str(cache))
    assert isinstance(env, CookingEnvironment) and env.path == game.path
    check_env(env)
