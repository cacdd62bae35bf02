"""Search invariants (hypothesis) and plan optimality against pyperplan's A* with LM-cut."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import Budget, ConfigError, PlannerError, SearchProblem, SearchTree
from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
from planner.env.pddl import PDDLEnvironment
from planner.search.beam import beam_search
from planner.search.mcts import mcts
from planner.search.policies import (
    distance_value,
    goal_fraction_value,
    goal_reward,
    greedy,
    heuristic_value,
    model_reward,
    puct,
    random_rollout,
    uct,
)
from planner.types import FactGoal, Prediction, State
from planner.world.oracle import OracleWorldModel


def _env(tmp_path_factory, n, seed):
    folder = tmp_path_factory.mktemp("bw")
    (folder / "d.pddl").write_text(DOMAIN_PDDL)
    (folder / "p.pddl").write_text(generate_problem(n, seed=seed))
    return PDDLEnvironment(folder / "d.pddl", folder / "p.pddl")


def _problem(env, **kw) -> SearchProblem:
    return SearchProblem.from_env(env, OracleWorldModel(env), **kw)


def _check_tree(tree: SearchTree, discount: float) -> None:
    for node in tree:
        assert 0.0 <= node.estimate <= 1.0
        assert 0.0 <= node.mean_value <= 1.0 + 1e-9
        if node.terminal:
            assert node.estimate == 0.0
            assert not node.expanded
        for edge in node.edges:
            # Tree links: every edge leads to the node the table holds for its state.
            assert tree.get(edge.child.state) is edge.child
            assert edge.prediction.applicable
            assert edge.prediction.next_state == edge.child.state != node.state
            assert edge.reward == edge.prediction.reward == (1.0 if edge.child.terminal else 0.0)
            assert edge.estimate == pytest.approx(edge.reward + discount * edge.child.estimate)
            assert 0.0 <= edge.mean_value <= 1.0 + 1e-9
            assert edge.visits >= 0
        if node.edges:
            assert sum(e.prior for e in node.edges) == pytest.approx(1.0)


def _check_plan(env, result) -> None:
    """The plan's states are the model's predictions, it never repeats a state, and it reaches
    the goal exactly when it says so."""
    plan = result.plan
    assert plan.states[0] == env.state
    state = env.state
    for action, imagined in zip(plan.actions, plan.states[1:]):
        pred = env.simulate(state, action)
        assert pred.applicable and pred.next_state == imagined
        state = imagined
    assert len(set(plan.states)) == len(plan.states)
    assert plan.reaches_goal == env.goal.satisfied(state)
    assert 0.0 <= plan.value <= 1.0
    if plan.reaches_goal:
        assert plan.value == pytest.approx(0.95 ** (len(plan) - 1))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 5), seed=st.integers(0, 500), sims=st.integers(1, 200),
       sel=st.sampled_from(["uct", "puct", "greedy"]), search_seed=st.integers(0, 3))
def test_mcts_invariants(tmp_path_factory, n, seed, sims, sel, search_seed):
    env = _env(tmp_path_factory, n, seed)
    selection = {"uct": uct(c=0.5), "puct": puct(), "greedy": greedy()}[sel]
    result = mcts(_problem(env), env.state, Budget(simulations=sims), selection=selection, seed=search_seed)
    tree = result.tree
    _check_tree(tree, 0.95)
    _check_plan(env, result)
    assert result.stats.model_calls == result.stats.expansions * len(env.candidate_actions(env.state))
    if tree.root.terminal:
        return
    # Visit counts flow: the root is visited once per simulation; every other node exactly as
    # often as the edges into it; an expanded node once more than the edges leaving it (the
    # simulation that expanded it ended there), or more when simulations stopped there.
    assert tree.root.visits == result.stats.simulations
    into: dict[State, int] = {}
    for node in tree:
        for edge in node.edges:
            into[edge.child.state] = into.get(edge.child.state, 0) + edge.visits
    for node in tree:
        if node is not tree.root:
            assert node.visits == into.get(node.state, 0)
        leaving = sum(e.visits for e in node.edges)
        assert node.visits >= leaving + (1 if node.expanded else 0)
    # All simulations but the first (which expanded the root) leave the root by an edge,
    # unless the first goal path was one step long (then later ones stop at the root).
    if tree.root.edges and len(result.plan) != 1:
        assert sum(e.visits for e in tree.root.edges) == tree.root.visits - 1


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 5), seed=st.integers(0, 500), width=st.integers(1, 8),
       budget=st.integers(1, 60))
def test_beam_invariants(tmp_path_factory, n, seed, width, budget):
    env = _env(tmp_path_factory, n, seed)
    result = beam_search(_problem(env), env.state, Budget(beam_width=width, max_expansions=budget))
    _check_tree(result.tree, 0.95)
    _check_plan(env, result)
    assert result.stats.expansions <= budget


def test_search_is_deterministic_under_seed(tmp_path_factory):
    env = _env(tmp_path_factory, 5, 3)
    runs = [mcts(_problem(env), env.state, Budget(simulations=300), seed=7, selection=uct(c=0.3))
            for _ in range(2)]
    assert runs[0].plan == runs[1].plan
    assert runs[0].stats.nodes == runs[1].stats.nodes


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
@pytest.mark.parametrize("algorithm", ["beam", "mcts"])
def test_reaches_optimal_plan_length(tmp_path_factory, n, algorithm):
    for seed in range(3):
        env = _env(tmp_path_factory, n, seed)
        optimal = env.optimal_plan()
        assert optimal is not None
        problem = _problem(env, value=distance_value(env.distance_heuristic("ff")))
        if algorithm == "beam":
            result = beam_search(problem, env.state, Budget(beam_width=32))
        else:
            result = mcts(problem, env.state, Budget(simulations=2000))
        assert result.plan.reaches_goal, (n, seed)
        assert len(result.plan) == len(optimal), (n, seed, result.plan.actions, optimal)


def test_beam_with_goal_fraction_is_optimal_too(tmp_path_factory):
    for seed in range(3):
        env = _env(tmp_path_factory, 6, seed)
        result = beam_search(_problem(env, value=goal_fraction_value), env.state)
        assert len(result.plan) == len(env.optimal_plan())


def test_subtree_reuse_saves_model_calls_and_leaves_the_old_tree_alone(tmp_path_factory):
    env = _env(tmp_path_factory, 5, 2)
    problem = _problem(env)
    first = mcts(problem, env.state, Budget(simulations=500))
    before = {n.state: (n.visits, n.value_sum, [(e.visits, e.value_sum) for e in n.edges]) for n in first.tree}
    nxt = first.plan.states[1]
    reused = mcts(problem, nxt, Budget(simulations=500), tree=first.tree)
    fresh = mcts(_problem(env), nxt, Budget(simulations=500))
    assert reused.tree.root.state == nxt
    assert reused.stats.model_calls < fresh.stats.model_calls
    assert len(reused.plan) == len(first.plan) - 1
    # The earlier result is frozen in effect: the reuse searched a copy.
    assert first.tree.root.state == env.state
    after = {n.state: (n.visits, n.value_sum, [(e.visits, e.value_sum) for e in n.edges]) for n in first.tree}
    assert after == before
    assert not set(map(id, reused.tree)) & set(map(id, first.tree))


def test_reroot_copies_the_reachable_part(tmp_path_factory):
    env = _env(tmp_path_factory, 4, 1)
    tree = beam_search(_problem(env), env.state).tree
    child = tree.root.edges[0].child
    copy = tree.reroot(child.state)
    assert copy is not None and copy.root is not child and copy.root.state == child.state
    assert set(copy.nodes) <= set(tree.nodes)
    assert all(e.child is copy.get(e.child.state) for n in copy for e in n.edges)
    assert tree.reroot(State.from_facts(["(nowhere)"])) is None


def test_rollout_policy_and_time_budget(tmp_path_factory):
    env = _env(tmp_path_factory, 3, 1)
    result = mcts(_problem(env), env.state, Budget(simulations=50), rollout=random_rollout(depth=6))
    # Three blocks: the simulations explore every state and stop before the budget.
    assert result.stats.simulations <= 50 and result.stats.stopped_by in ("simulations", "exhausted")
    _check_plan(env, result)
    big = _env(tmp_path_factory, 8, 1)  # too many states to explore in 0.2 s
    timed = mcts(_problem(big), big.state, Budget(simulations=10**9, time_limit_s=0.2))
    assert timed.stats.stopped_by == "time"
    capped = mcts(_problem(env), env.state, Budget(simulations=10**9, max_expansions=3))
    assert capped.stats.stopped_by == "expansions" and capped.stats.expansions == 3


class _RewardedModel:
    """An exact model whose goal step pays ``reward`` instead of 1."""

    def __init__(self, env, reward: float) -> None:
        self.inner = OracleWorldModel(env)
        self.reward = reward

    @property
    def stats(self):
        return self.inner.stats

    def predict(self, state, action):
        return self.predict_many(state, [action])[0]

    def predict_many(self, state, actions):
        return [Prediction(p.applicable, p.next_state, reward=self.reward if p.done else 0.0, done=p.done)
                for p in self.inner.predict_many(state, actions)]


@pytest.mark.parametrize("algorithm", ["beam", "mcts"])
def test_search_uses_the_predicted_reward(tmp_path_factory, algorithm):
    env = _env(tmp_path_factory, 3, 1)
    problem = SearchProblem.from_env(env, _RewardedModel(env, 0.5), reward=model_reward)
    if algorithm == "beam":
        result = beam_search(problem, env.state)
    else:
        result = mcts(problem, env.state, Budget(simulations=300))
    assert result.plan.reaches_goal
    assert result.plan.value == pytest.approx(0.5 * 0.95 ** (len(result.plan) - 1))
    assert {e.reward for n in result.tree for e in n.edges if e.child.terminal} == {0.5}


def test_default_reward_is_judged_by_the_goal_for_symbolic_states(tmp_path_factory):
    """A model whose ``done``/reward is wrong on the goal step cannot hide the goal."""
    env = _env(tmp_path_factory, 3, 1)
    problem = SearchProblem.from_env(env, _RewardedModel(env, 0.0))
    result = beam_search(problem, env.state)
    assert result.plan.reaches_goal and result.plan.value == pytest.approx(0.95 ** (len(result.plan) - 1))
    assert goal_reward(env.state, Prediction(True, State.from_text("x"), reward=0.25), env.goal) == 0.25


def test_start_at_the_goal(tmp_path_factory):
    env = _env(tmp_path_factory, 3, 1)
    goal = FactGoal(frozenset(env.state.facts))
    problem = SearchProblem(model=OracleWorldModel(env), goal=goal, actions=env.candidate_actions)
    for result in (beam_search(problem, env.state), mcts(problem, env.state)):
        assert result.plan.reaches_goal and len(result.plan) == 0 and result.plan.value == 0.0
        assert result.stats.stopped_by == "goal" and result.stats.model_calls == 0


def test_tree_exports(tmp_path_factory, tmp_path):
    env = _env(tmp_path_factory, 4, 0)
    result = mcts(_problem(env), env.state, Budget(simulations=100))
    graph = result.to_networkx()
    assert graph.number_of_nodes() == result.stats.nodes
    assert all("action" in d for _, _, d in graph.edges(data=True))
    depths = {d["state"]: d["depth"] for _, d in graph.nodes(data=True)}
    assert depths[env.state.canonical()] == 0 and min(depths.values()) >= 0
    result.write_tree(tmp_path / "t.graphml")
    back = nx.read_graphml(tmp_path / "t.graphml")
    assert back.number_of_nodes() == graph.number_of_nodes()
    result.write_tree(tmp_path / "t.dot")
    assert (tmp_path / "t.dot").read_text().startswith("digraph search {")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Budget(simulations=0), "simulations"),
        (lambda: Budget(beam_width=0), "beam_width"),
        (lambda: Budget(max_depth=-1), "max_depth"),
        (lambda: Budget(max_expansions=2.5), "max_expansions"),  # type: ignore[arg-type]
        (lambda: Budget(time_limit_s=0), "time_limit_s"),
        (lambda: Budget(time_limit_s=float("nan")), "time_limit_s"),
        (lambda: uct(c=float("inf")), "exploration"),
        (lambda: puct(c=-1.0), "exploration"),
        (lambda: distance_value(lambda s: 0.0, discount=0.0), "discount"),
        (lambda: random_rollout(depth=0), "depth"),
        (lambda: heuristic_value(object(), "ff"), "'ff'"),
    ],
)
def test_bad_settings_are_rejected(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_bad_problems_are_rejected(tmp_path_factory):
    env = _env(tmp_path_factory, 3, 0)
    with pytest.raises(ConfigError, match="discount"):
        _problem(env, discount=1.5)
    with pytest.raises(ConfigError, match="nan"):
        mcts(_problem(env, value=lambda s, g: float("nan")), env.state)
    with pytest.raises(PlannerError, match="start state"):
        mcts(_problem(env), "not a state")  # type: ignore[arg-type]


def test_heuristic_value_auto(tmp_path_factory):
    env = _env(tmp_path_factory, 3, 0)
    assert heuristic_value(object()) is goal_fraction_value
    assert heuristic_value(env, "goal") is goal_fraction_value
    value = heuristic_value(env)
    assert value is not goal_fraction_value and 0.0 < value(env.state, env.goal) < 1.0

