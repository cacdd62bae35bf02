"""Search invariants (hypothesis) and plan optimality against pyperplan's A* with LM-cut."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
from planner.env.pddl import PDDLEnvironment
from planner.search.beam import beam_search
from planner.search.mcts import mcts
from planner.search.policies import (
    distance_value,
    goal_fraction_value,
    greedy,
    puct,
    random_rollout,
    uct,
)
from planner.search.tree import SearchTree
from planner.world.oracle import OracleWorldModel


def _env(tmp_path_factory, n, seed):
    folder = tmp_path_factory.mktemp("bw")
    (folder / "d.pddl").write_text(DOMAIN_PDDL)
    (folder / "p.pddl").write_text(generate_problem(n, seed=seed))
    return PDDLEnvironment(folder / "d.pddl", folder / "p.pddl")


def _check_tree(tree: SearchTree, discount: float) -> None:
    for node in tree:
        assert 0.0 <= node.estimate <= 1.0
        assert 0.0 <= node.mean_value <= 1.0 + 1e-9
        if node.terminal:
            assert node.estimate == 0.0
        for edge in node.edges:
            # Tree links: every edge leads to the node the table holds for its state.
            assert tree.get(edge.child.state) is edge.child or edge.child.state not in tree.nodes
            assert edge.prediction.applicable
            assert edge.prediction.next_state == edge.child.state
            assert 0.0 <= edge.mean_value <= 1.0 + 1e-9
            assert edge.visits >= 0
            assert edge.reward == (1.0 if edge.child.terminal else 0.0)
        if node.edges:
            priors = sum(e.prior for e in node.edges)
            assert priors == pytest.approx(1.0) or priors == 0.0


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 5), seed=st.integers(0, 500), sims=st.integers(1, 200),
       sel=st.sampled_from(["uct", "puct", "greedy"]), search_seed=st.integers(0, 3))
def test_mcts_invariants(tmp_path_factory, n, seed, sims, sel, search_seed):
    env = _env(tmp_path_factory, n, seed)
    selection = {"uct": uct(c=0.5), "puct": puct(), "greedy": greedy()}[sel]
    result = mcts(env.state, model=OracleWorldModel(env), goal=env.goal,
                  actions=env.candidate_actions, simulations=sims, selection=selection,
                  seed=search_seed)
    tree = result.tree
    _check_tree(tree, 0.95)
    # Visit counts: the root is visited once per simulation that went below it, and every
    # node's visits are at least the visits of the edges leaving it.
    assert tree.root.visits <= result.stats.simulations
    for node in tree:
        assert node.visits >= sum(e.visits for e in node.edges)
    # All simulations but the first (which expanded the root) leave the root by an edge.
    if tree.root.edges:
        assert sum(e.visits for e in tree.root.edges) == tree.root.visits - 1
    # The plan is consistent with the tree and with the real simulator.
    plan = result.plan
    state = env.state
    for action, imagined in zip(plan.actions, plan.states[1:]):
        pred = env.simulate(state, action)
        assert pred.applicable and pred.next_state == imagined
        state = imagined
    assert plan.reaches_goal == env.goal.satisfied(state)
    assert 0.0 <= plan.value <= 1.0
    assert result.stats.model_calls == result.stats.expansions * len(env.candidate_actions(state))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 5), seed=st.integers(0, 500), width=st.integers(1, 8),
       budget=st.integers(1, 60))
def test_beam_invariants(tmp_path_factory, n, seed, width, budget):
    env = _env(tmp_path_factory, n, seed)
    result = beam_search(env.state, model=OracleWorldModel(env), goal=env.goal,
                         actions=env.candidate_actions, beam_width=width,
                         max_expansions=budget)
    _check_tree(result.tree, 0.95)
    assert result.stats.expansions <= budget
    state = env.state
    for action, imagined in zip(result.plan.actions, result.plan.states[1:]):
        assert env.simulate(state, action).next_state == imagined
        state = imagined
    assert result.plan.reaches_goal == env.goal.satisfied(state)
    # Each state appears once in a plan (no cycles).
    assert len(set(result.plan.states)) == len(result.plan.states)


def test_search_is_deterministic_under_seed(tmp_path_factory):
    env = _env(tmp_path_factory, 5, 3)
    runs = [mcts(env.state, model=OracleWorldModel(env), goal=env.goal,
                 actions=env.candidate_actions, simulations=300, seed=7,
                 selection=uct(c=0.3)) for _ in range(2)]
    assert runs[0].plan == runs[1].plan
    assert runs[0].stats.nodes == runs[1].stats.nodes


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
@pytest.mark.parametrize("algorithm", ["beam", "mcts"])
def test_reaches_optimal_plan_length(tmp_path_factory, n, algorithm):
    for seed in range(3):
        env = _env(tmp_path_factory, n, seed)
        optimal = env.optimal_plan()
        assert optimal is not None
        value = distance_value(env.distance_heuristic("ff"))
        kwargs = dict(model=OracleWorldModel(env), goal=env.goal,
                      actions=env.candidate_actions, value=value)
        if algorithm == "beam":
            result = beam_search(env.state, beam_width=32, **kwargs)
        else:
            result = mcts(env.state, simulations=2000, **kwargs)
        assert result.plan.reaches_goal, (n, seed)
        assert len(result.plan) == len(optimal), (n, seed, result.plan.actions, optimal)


def test_beam_with_goal_fraction_is_optimal_too(tmp_path_factory):
    for seed in range(3):
        env = _env(tmp_path_factory, 6, seed)
        result = beam_search(env.state, model=OracleWorldModel(env), goal=env.goal,
                             actions=env.candidate_actions, value=goal_fraction_value)
        assert len(result.plan) == len(env.optimal_plan())


def test_subtree_reuse_saves_model_calls(tmp_path_factory):
    env = _env(tmp_path_factory, 5, 2)
    model = OracleWorldModel(env)
    first = mcts(env.state, model=model, goal=env.goal, actions=env.candidate_actions,
                 simulations=500)
    nxt = first.plan.states[1]
    reused = mcts(nxt, model=model, goal=env.goal, actions=env.candidate_actions,
                  simulations=500, tree=first.tree)
    fresh = mcts(nxt, model=OracleWorldModel(env), goal=env.goal,
                 actions=env.candidate_actions, simulations=500)
    assert reused.tree.root.state == nxt
    assert reused.stats.model_calls < fresh.stats.model_calls
    assert len(reused.plan) == len(first.plan) - 1


def test_rollout_policy_and_time_budget(tmp_path_factory):
    env = _env(tmp_path_factory, 3, 1)
    result = mcts(env.state, model=OracleWorldModel(env), goal=env.goal,
                  actions=env.candidate_actions, simulations=50,
                  rollout=random_rollout(depth=6))
    assert result.stats.simulations == 50
    timed = mcts(env.state, model=OracleWorldModel(env), goal=env.goal,
                 actions=env.candidate_actions, simulations=10**9, time_limit_s=0.2)
    assert timed.stats.stopped_by == "time"


def test_tree_exports(tmp_path_factory, tmp_path):
    env = _env(tmp_path_factory, 4, 0)
    result = mcts(env.state, model=OracleWorldModel(env), goal=env.goal,
                  actions=env.candidate_actions, simulations=100)
    graph = result.to_networkx()
    assert graph.number_of_nodes() == result.stats.nodes
    assert all("action" in d for _, _, d in graph.edges(data=True))
    result.write_tree(tmp_path / "t.graphml")
    back = nx.read_graphml(tmp_path / "t.graphml")
    assert back.number_of_nodes() == graph.number_of_nodes()
    result.write_tree(tmp_path / "t.dot")
    assert (tmp_path / "t.dot").read_text().startswith("digraph search {")


def test_bad_budgets_are_rejected(tmp_path_factory):
    env = _env(tmp_path_factory, 3, 0)
    kw = dict(model=OracleWorldModel(env), goal=env.goal, actions=env.candidate_actions)
    with pytest.raises(ValueError, match="simulations"):
        mcts(env.state, simulations=0, **kw)
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(env.state, beam_width=0, **kw)
