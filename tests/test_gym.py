"""The Gymnasium adapter: FrozenLake end to end, the adapter's rules, and a raising environment."""

from __future__ import annotations

import json

import pytest

gymnasium = pytest.importorskip("gymnasium", reason="the Gymnasium adapter needs gymnasium (the 'gym' extra)")

import planner  # noqa: E402
from planner.agent import Agent  # noqa: E402
from planner.config import PlannerConfig  # noqa: E402
from planner.env.base import Simulator, check_env  # noqa: E402
from planner.env.gym import GymEnvironment, GymSimulator, PredicateGoal, make_frozenlake  # noqa: E402
from planner.errors import ConfigError, EnvironmentStepError, UnknownActionError  # noqa: E402
from planner.types import Action, FactGoal, State  # noqa: E402
from planner.world.oracle import OracleWorldModel  # noqa: E402

LEFT, DOWN, RIGHT, UP = (Action(n) for n in ("(left)", "(down)", "(right)", "(up)"))


class LineWorld(gymnasium.Env):
    """Positions 0..length-1 on a line; actions 0 (left) and 1 (right); goal at the right end.

    ``explode_at``: step() raises RuntimeError when asked to move from that position.
    """

    def __init__(self, length: int = 5, explode_at: int | None = None) -> None:
        self.length, self.explode_at = length, explode_at
        self.observation_space = gymnasium.spaces.Discrete(length)
        self.action_space = gymnasium.spaces.Discrete(2)
        self.position = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return self.position, {}

    def step(self, action):
        if self.position == self.explode_at:
            raise RuntimeError(f"motor fault at {self.position}")
        move = 1 if action == 1 else -1
        self.position = min(max(self.position + move, 0), self.length - 1)
        done = self.position == self.length - 1
        return self.position, float(done), done, False, {}


def line_facts(obs):
    return [f"(at p{int(obs)})"]


def line_env(cls=GymSimulator, **kwargs):
    return cls(LineWorld(**kwargs), facts=line_facts, goal=FactGoal(frozenset({"(at p4)"})),
               action_names=["(left)", "(right)"])


# -- FrozenLake ------------------------------------------------------------------------------------
def test_frozenlake_states_goal_and_actions():
    env = planner.make("frozenlake-v0")
    assert isinstance(env, GymSimulator) and isinstance(env, Simulator)
    state, info = env.reset(seed=0)
    assert state == State.from_facts(["(at r0 c0)"]) and info["seed"] == 0
    assert env.goal == FactGoal(frozenset({"(at r3 c3)"}))
    assert list(env.candidate_actions(state)) == [LEFT, DOWN, RIGHT, UP]


def test_frozenlake_wall_is_inapplicable_and_leaves_the_state():
    env = planner.make("frozenlake-v0")
    state, _ = env.reset()
    result = env.step(LEFT)
    assert not result.applicable and result.state == state and result.reward == 0.0
    assert "did not change" in result.info["reason"]
    assert env.step(DOWN).applicable


def test_frozenlake_hole_truncates_and_the_goal_terminates():
    env = planner.make("frozenlake-v0")
    env.reset()
    for action in (DOWN, DOWN):
        assert not env.step(action).truncated
    hole = env.step(DOWN)  # (at r3 c0) is a hole
    assert hole.truncated and not hole.terminated and hole.info["env_terminated"] is True
    after = env.step(RIGHT)  # nothing moves in a hole: not applicable
    assert not after.applicable and after.state == hole.state
    env.reset()
    results = [env.step(a) for a in (RIGHT, RIGHT, DOWN, DOWN, DOWN, RIGHT)]
    assert results[-1].terminated and results[-1].reward == 1.0 and not results[-1].truncated
    assert not any(r.terminated for r in results[:-1])


def test_simulate_agrees_with_real_steps_and_changes_nothing():
    env = planner.make("frozenlake-v0", size=6, seed=3)
    state, _ = env.reset()
    walk = [RIGHT, DOWN, LEFT, UP, DOWN, DOWN, RIGHT, RIGHT]
    for action in walk:
        predicted = {a: env.simulate(state, a) for a in env.candidate_actions(state)}
        assert env.state == state  # simulating never moves the real environment
        result = env.step(action)
        pred = predicted[action]
        assert (pred.applicable, pred.next_state, pred.done) == (result.applicable, result.state, result.terminated)
        if result.truncated:
            break
        state = result.state


def test_simulate_from_an_unreached_state_is_refused():
    env = planner.make("frozenlake-v0")
    with pytest.raises(EnvironmentStepError, match="needs a reset"):
        env.simulate(State.from_facts(["(at r0 c0)"]), DOWN)
    env.reset()
    with pytest.raises(EnvironmentStepError, match=r"cannot simulate from \(at r2 c2\)"):
        env.simulate(State.from_facts(["(at r2 c2)"]), DOWN)


@pytest.mark.parametrize("algorithm", ["beam", "mcts"])
def test_agent_solves_frozenlake_with_the_exact_model(algorithm, tmp_path):
    env = planner.make("frozenlake-v0", seed=0)
    config = PlannerConfig().updated(search={"algorithm": algorithm})
    result = Agent(env, OracleWorldModel(env), config=config, log_path=tmp_path / "ep.jsonl").run(seed=0)
    assert result.solved and result.stopped_by == "goal" and result.divergences == 0
    assert len(result.actions) == 6  # the shortest path on the 4x4 map
    records = [json.loads(line) for line in (tmp_path / "ep.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "end" and records[-1]["data"]["solved"] is True


@pytest.mark.parametrize("seed", [1, 2])
def test_agent_solves_random_8x8_maps(seed):
    env = planner.make("frozenlake-v0", seed=seed, size=8)
    check_env(env, seed=seed)
    result = Agent(env, OracleWorldModel(env)).run(seed=seed)
    assert result.solved


def test_equal_seeds_give_equal_random_maps():
    a, b = planner.make("frozenlake-v0", seed=4, size=6), planner.make("frozenlake-v0", seed=4, size=6)
    assert a.env.unwrapped.desc.tolist() == b.env.unwrapped.desc.tolist() and a.reset() == b.reset()


def test_slippery_frozenlake_has_no_simulator():
    env = planner.make("frozenlake-v0", is_slippery=True)
    assert type(env) is GymEnvironment and not isinstance(env, Simulator)
    check_env(env)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"size": 1}, "size must be a whole number in 2..64"),
    ({"size": "8"}, "size must be"),
    ({"map_name": "5x5"}, "map_name must be one of 4x4, 8x8"),
    ({"is_slippery": "no"}, "is_slippery must be true or false"),
    ({"max_steps": 0}, "max_steps must be a whole number >= 1"),
    ({"holes": "maybe"}, "holes must be true or false"),
    ({"map_name": "8x8", "size": 4}, "give map_name or size, not both"),
])
def test_frozenlake_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_frozenlake(**kwargs)


def test_max_steps_truncates():
    env = planner.make("frozenlake-v0", max_steps=2)
    env.reset()
    assert not env.step(RIGHT).truncated and env.step(RIGHT).truncated


# -- the adapter ------------------------------------------------------------------------------------
def test_id_form_default_action_names_and_a_goal_function():
    env = GymEnvironment("FrozenLake-v1", facts=lambda obs: [f"(cell {obs})"],
                         goal=lambda state: "(cell 15)" in state.facts)
    assert [a.name for a in env.candidate_actions(State())] == [f"(action {i})" for i in range(4)]
    assert isinstance(env.goal, PredicateGoal)
    state, _ = env.reset(seed=1)
    assert env.goal.progress(state) == 0.0
    assert env.goal.progress(State.from_facts(["(cell 15)"])) == 1.0
    (fact,) = env.step(Action("(action 1)")).state.facts  # the id's default map is slippery
    assert fact.startswith("(cell ")


def test_unseeded_resets_record_their_seed():
    env = GymEnvironment("FrozenLake-v1", facts=lambda obs: [f"(cell {obs})"], goal=FactGoal(frozenset({"(cell 15)"})))
    _, info = env.reset()
    assert isinstance(info["seed"], int) and env.episode_seed == info["seed"]


def test_unknown_action():
    env = line_env()
    env.reset()
    with pytest.raises(UnknownActionError, match=r"unknown action '\(jump\)'; the actions are \(left\), \(right\)"):
        env.step(Action("(jump)"))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"action_names": ["(a)"]}, "action_names must be 2 distinct"),
    ({"action_names": ["(a)", "(a)"]}, "action_names must be 2 distinct"),
    ({"goal": 3}, "goal must be a FactGoal"),
    ({"facts": "x"}, "facts must be a function"),
    ({"seed": "1"}, "seed must be a whole number or None"),
])
def test_adapter_configuration_errors(kwargs, match):
    args = {"facts": line_facts, "goal": FactGoal(frozenset({"(at p4)"})), **kwargs}
    with pytest.raises(ConfigError, match=match):
        GymEnvironment(LineWorld(), **args)


def test_non_discrete_action_space_is_refused():
    with pytest.raises(ConfigError, match=r"needs a Discrete action space, got Box"):
        GymEnvironment("MountainCarContinuous-v0", facts=lambda obs: [], goal=FactGoal())


def test_facts_must_be_strings():
    env = GymEnvironment(LineWorld(), facts=lambda obs: [obs], goal=FactGoal())
    with pytest.raises(ConfigError, match="facts\\(observation\\) must give strings, got 0"):
        env.reset()


def test_info_applicable_wins():
    class Reporting(LineWorld):
        def step(self, action):
            obs, reward, term, trunc, _ = super().step(action)
            return obs, reward, term, trunc, {"applicable": action == 1}

    env = GymEnvironment(Reporting(), facts=line_facts, goal=FactGoal(frozenset({"(at p4)"})))
    env.reset()
    assert env.step(Action("(action 1)")).applicable and not env.step(Action("(action 0)")).applicable


def test_environment_raising_in_step_ends_the_episode_with_a_log(tmp_path):
    real = line_env(explode_at=2)
    twin = line_env()  # an intact twin: the model never raises
    twin.reset(seed=0)
    model = OracleWorldModel(twin)
    log = tmp_path / "ep.jsonl"
    fault = r"step 2 on action \(right\): RuntimeError: motor fault at 2"
    with pytest.raises(EnvironmentStepError, match=fault) as info:
        Agent(real, model, log_path=log).run(seed=0)
    partial = info.value.episode_result  # type: ignore[attr-defined]
    assert partial.stopped_by == "error" and len(partial.steps) == 2
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["event"] for r in records[-2:]] == ["error", "end"]
    end = records[-1]["data"]
    assert end["stopped_by"] == "error" and end["solved"] is False and "motor fault" in end["error"]


def test_random_maps_show_their_holes_and_every_cell_is_an_object():
    env = planner.make("frozenlake-v0", seed=3, size=5)
    state, _ = env.reset(seed=3)
    desc = ["".join(c.decode() for c in row) for row in env.env.unwrapped.desc]
    holes = {f"(hole r{r} c{c})" for r, row in enumerate(desc) for c, cell in enumerate(row) if cell == "H"}
    assert holes and state.facts == {"(at r0 c0)", *holes}
    assert sorted(env.objects) == sorted([*(f"r{i}" for i in range(5)), *(f"c{i}" for i in range(5))])
    assert not any(f.startswith("(hole") for f in planner.make("frozenlake-v0").reset()[0].facts)  # fixed map


def test_exploration_names_every_cell_and_records_holes_as_dead_ends(tmp_path):
    from planner.data.collect import read_records
    from planner.data.explore import collect_from_env

    collect_from_env(lambda s: planner.make("frozenlake-v0", seed=s), out_dir=tmp_path, seeds={"train": range(6)},
                     episodes_per_seed=2, max_steps=30, domain="lake", seed=0)
    records = read_records(tmp_path / "train.jsonl")
    assert {tuple(r.objects) for r in records} == {("c0", "c1", "c2", "c3", "r0", "r1", "r2", "r3")}
    holes = {"(at r1 c1)", "(at r1 c3)", "(at r2 c3)", "(at r3 c0)"}  # the fixed 4x4 map
    fell = [r for r in records if r.applicable and set(r.next_state) & holes]
    assert fell  # some walks end in a hole
    for r in fell:  # after each fall: every action refused from the hole
        after = [x for x in records if x.episode == r.episode and x.step > r.step]
        assert sorted(x.action for x in after) == ["(down)", "(left)", "(right)", "(up)"]
        assert all(not x.applicable and x.state == x.next_state == r.next_state for x in after)
