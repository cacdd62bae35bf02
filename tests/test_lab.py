"""The laboratory environment (lab-v0): ScienceWorld's discrete tasks over ground facts."""

from __future__ import annotations

import importlib.util
import re
import shutil

import pytest

from planner.env.base import check_env
from planner.env.lab import SPLITS, TASKS, FocusGoal, make_lab
from planner.env.lab.actions import candidate_actions
from planner.env.lab.runtime import require_java, require_scienceworld
from planner.env.lab.world import Namer, facts_of, read_tree, slug
from planner.env.registry import accepts, make
from planner.errors import ConfigError, UnknownActionError
from planner.types import Action, FactGoal, State, parse_atom

HAS_SCIENCEWORLD = importlib.util.find_spec("scienceworld") is not None
HAS_JAVA = shutil.which("java") is not None
needs_lab = pytest.mark.skipif(not (HAS_SCIENCEWORLD and HAS_JAVA),
                               reason="needs the lab extra (pip install -e '.[lab]') and java on PATH")
NAME = re.compile(r"^[a-z0-9_]+$")


@pytest.fixture(scope="module")
def living():
    """find-living-thing, seed 0 of the training split (one JVM for the tests that share it)."""
    if not (HAS_SCIENCEWORLD and HAS_JAVA):
        pytest.skip("needs the lab extra (pip install -e '.[lab]') and java on PATH")
    env = make_lab(seed=0, task="find-living-thing")
    yield env
    env.close()


# -- clear errors (no simulator needed) ---------------------------------------------------------
def test_without_java_the_error_names_java_and_its_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(ConfigError, match=r"`java`.*openjdk-17-jre-headless"):
        require_java()
    if HAS_SCIENCEWORLD:
        with pytest.raises(ConfigError, match="java"):
            make("lab-v0", seed=0)


def test_without_scienceworld_the_error_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "scienceworld" else real(name, *a))
    with pytest.raises(ConfigError, match=r"scienceworld package: pip install -e '\.\[lab\]'"):
        require_scienceworld()
    with pytest.raises(ConfigError, match=r"\.\[lab\]"):
        make_lab(seed=0)


@needs_lab
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"split": "dev"}, r"unknown laboratory split 'dev'; known: train, val, test"),
    ({"task": "boil"}, r"unsupported laboratory task 'boil'; supported: find-living-thing, .*chemistry-mix"),
])
def test_make_names_a_bad_split_or_task(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_lab(seed=0, **kwargs)


def test_lab_v0_is_registered_and_takes_a_split():
    assert accepts("lab-v0", "split") and accepts("lab-v0", "task")
    assert set(SPLITS) == {"train", "val", "test"}


# -- facts and candidates from the object tree alone (no simulator needed) ---------------------
def _node(uuid, name, contents=(), **props):
    return {"uuid": str(uuid), "name": name, "type": props.pop("type", ""), "isDeleted": False,
            "contents": {f"{c['name']}-{c['uuid']}": c for c in contents}, **props}


def _tree(order):
    cups = [_node(30, "wood cup", [_node(31, "blue paint", propMoveable={"isMovable": True})],
                  propContainer={"isContainer": "true", "isOpen": True, "isClosable": False},
                  propMoveable={"isMovable": True}),
            _node(20, "wood cup", propContainer={"isContainer": "true", "isOpen": True, "isClosable": False},
                  propMoveable={"isMovable": True}),
            _node(40, "cupboard", propContainer={"isContainer": "true", "isOpen": False, "isClosable": True}),
            _node(50, "plant", type="plant", propLife={"lifeformType": "apple", "isDead": False},
                  propMoveable={"isMovable": True}),
            _node(60, "terminal 1"), _node(61, "air")]
    agent = _node(70, "agent", [_node(71, "inventory", [_node(72, "orange", propMoveable={"isMovable": True})])])
    room = _node(10, "art studio", [*(cups[i] for i in order), agent])
    return _node(1, "universe", [room, _node(11, "kitchen", [_node(80, "red box", propMoveable={"isMovable": True},
                                                                    propContainer={"isContainer": "true"})])])


def test_names_and_facts_do_not_depend_on_the_tree_order():
    found = set()
    for order in ([0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 4, 2]):
        world = read_tree(_tree(order))
        namer = Namer()
        namer.assign(world)
        facts = facts_of(world, namer, doors=[("kitchen", True)], tracked=["red_box"], kinds=True)
        found.add(facts)
    (facts,) = found
    assert "(in wood_cup_1 art_studio)" in facts and "(in blue_paint wood_cup_2)" in facts  # uuid 20 < 30
    assert "(living apple_plant)" in facts and "(plant apple_plant)" in facts
    assert "(in orange inventory)" in facts and "(in red_box kitchen)" in facts
    assert "(door kitchen)" in facts and "(dooropen kitchen)" in facts
    assert "(closable cupboard)" in facts and "(opened cupboard)" not in facts and "(fixed cupboard)" in facts
    for fact in facts:  # no terminals, air, agent; every name an identifier
        _, args = parse_atom(fact)
        assert all(NAME.match(a) for a in args), fact
        assert not {"terminal_1", "air", "agent"} & set(args)
    assert slug("Art  Studio!") == "art_studio"


def test_candidates_depend_on_the_facts_alone():
    state = State.from_facts({
        "(at art_studio)", "(door hallway)", "(in jug art_studio)", "(container jug)",
        "(in cup art_studio)", "(container cup)", "(in blue_paint cup)", "(in apple inventory)",
        "(in sink art_studio)", "(container sink)", "(fixed sink)", "(closable box)", "(container box)",
        "(in box art_studio)"})
    ops = TASKS["chemistry-mix-paint-secondary-color"].operators
    found = {a.name for a in candidate_actions(state, ops)}
    assert {"(go hallway)", "(open hallway)", "(pour cup jug)", "(mix cup)", "(take jug)",
            "(move apple jug)", "(drop apple)", "(focus blue_paint)", "(open box)"} <= found
    assert "(take sink)" not in found and "(pour sink jug)" not in found and "(take apple)" not in found
    assert found == {a.name for a in candidate_actions(state, ops)}
    find_ops = TASKS["find-plant"].operators
    assert not any(a.operator in ("pour", "mix") for a in candidate_actions(state, find_ops))


def test_focus_goal_is_existential_and_follows_containment():
    goal = FocusGoal(kind="plant", box="red_box")
    base = {"(in pot art_studio)", "(in apple_plant pot)", "(living apple_plant)", "(plant apple_plant)"}
    assert goal.progress(State.from_facts(base)) == 0.0
    focused = base | {"(focused apple_plant)"}
    assert goal.progress(State.from_facts(focused)) == 0.5
    done = (focused - {"(in pot art_studio)"}) | {"(in pot red_box)"}
    assert goal.satisfied(State.from_facts(done)) and goal.progress(State.from_facts(done)) == 1.0
    assert not FocusGoal(kind="animal", box="red_box").satisfied(State.from_facts(done))
    with pytest.raises(ConfigError, match="unknown kind"):
        FocusGoal(kind="mineral")


# -- the simulator ---------------------------------------------------------------------------
@needs_lab
def test_the_same_seed_gives_the_same_variation_and_facts(living):
    other = make("lab-v0", seed=0, task="find-living-thing")
    try:
        assert other.variation == living.variation
        assert other.reset()[0] == living.reset()[0]
    finally:
        other.close()
    state, info = living.reset()
    assert info["task"] == "find-living-thing" and "living thing" in info["description"]
    for fact in state.facts:
        assert all(NAME.match(a) for a in parse_atom(fact)[1]), fact
    assert not any(p in fact for fact in state.facts for p in ("temperature", "score", "time"))


@needs_lab
@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_gold_path_reaches_the_goal_with_complete_candidates(name):
    env = make_lab(seed=1, split="val", task=name)
    try:
        gold = env.gold_path()
        assert gold
        state, _ = env.reset()
        assert not env.goal.satisfied(state)
        for action in gold:
            assert action in env.candidate_actions(state), f"{action} is no candidate at {state}"
            result = env.step(action)
            assert result.applicable, (action, result.info)
            assert env.goal.satisfied(result.state) == result.terminated, (action, result.info["score"])
            state = result.state
        assert result.terminated and result.reward == 1.0 and result.info["score"] == 100
        if name.startswith("find-"):
            assert isinstance(env.goal, FocusGoal)
        else:
            assert isinstance(env.goal, FactGoal)
    finally:
        env.close()


@needs_lab
def test_a_refused_command_is_not_applicable_and_changes_nothing(living):
    state, _ = living.reset()
    door = sorted(a for a in living.candidate_actions(state) if a.operator == "open")[0]
    opened = living.step(door)
    assert opened.applicable and opened.state != state
    again = living.step(door)  # ScienceWorld: "The door is already open."
    assert not again.applicable and again.state == opened.state and again.reward == 0.0
    assert "already open" in again.info["reason"]
    far = living.step(Action("(go sewer)"))  # no door of this room leads there: not even sent
    assert not far.applicable and far.state == opened.state and far.info["command"] is None
    with pytest.raises(UnknownActionError, match="unknown laboratory action"):
        living.step(Action("(eat apple)"))


@needs_lab
def test_focusing_on_a_wrong_object_fails_the_task(living):
    state, _ = living.reset()
    wrong = [a for a in living.candidate_actions(state)
             if a.operator == "focus" and f"(living {a.args[0]})" not in state.facts]
    result = living.step(wrong[0])
    assert result.truncated and not result.terminated and result.info["failed"]
    assert not living.goal.satisfied(result.state)


@needs_lab
def test_check_env_passes(living):
    check_env(living, max_steps=3)


@needs_lab
def test_simulate_replays_to_the_same_outcome(living):
    gold = living.gold_path()[:3]
    state, _ = living.reset()
    for action in gold:
        predicted = living.simulate(state, action)
        result = living.step(action)
        assert predicted.applicable == result.applicable and predicted.next_state == result.state
        state = result.state
    assert living.replay_mismatches == 0
    with pytest.raises(ConfigError, match="needs a state this environment reached"):
        living.simulate(State.from_facts({"(at nowhere)"}), gold[0])


@needs_lab
def test_close_stops_the_jvm():
    env = make_lab(seed=2, task="find-plant")
    process = env._session.sim._gateway.java_process
    env.close()
    process.wait(timeout=10)
    assert process.poll() is not None
    env.close()  # twice is fine


def test_a_failing_simulator_call_is_a_clear_error_and_an_interrupt_stays_one():
    from planner.env.lab.runtime import simulator_call
    from planner.errors import EnvironmentStepError, UnknownActionError

    with (pytest.raises(EnvironmentStepError, match=r"ScienceWorld failed on 'look': OSError: socket closed"),
          simulator_call("ScienceWorld failed on 'look'")):
        raise OSError("socket closed")
    with pytest.raises(UnknownActionError), simulator_call("step"):  # the planner's own errors pass through
        raise UnknownActionError("(fly)")

    def bridge_interrupted():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:  # the bridge's clean-up fails while handling the interrupt
            raise AttributeError("'GatewayConnection' object has no attribute 'shutdown_socket'") from None

    with pytest.raises(KeyboardInterrupt), simulator_call("step"):
        bridge_interrupted()


@needs_lab
def test_seed_task_names_the_task_a_seed_plays():
    from planner.env.lab import seed_task

    env = make_lab(seed=7, split="test")
    try:
        assert env.task.name == seed_task(7, "test")
    finally:
        env.close()
    with pytest.raises(ConfigError, match="unknown laboratory split 'dev'"):
        seed_task(7, "dev")
