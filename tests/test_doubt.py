"""Searching past a model's doubted refusals: the forced-verdict decode of a real GGUF, the
doubting wrapper, and the agent that plans through doubts when no plan is found otherwise."""

from __future__ import annotations

import json
import random
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.agent import Agent, EpisodeResult
from planner.config import PlannerConfig
from planner.env.base import StepResult
from planner.errors import ConfigError
from planner.io import read_jsonl
from planner.types import Action, FactGoal, Prediction, State
from planner.world.base import ModelStats
from planner.world.cache import CachedWorldModel
from planner.world.doubt import DoubtingWorldModel, applied_outcomes
from planner.world.factory import default_model_path
from planner.world.llama import LlamaWorldModel
from planner.world.memory import ExperienceOverlay
from planner.world.oracle import OracleWorldModel
from tests.conftest import build_tiny_gguf

# -- the forced-verdict decode of a real GGUF ----------------------------------------------------


def test_flat_model_refuses_everything_but_writes_what_each_action_would_do(tmp_path, tiny_env):
    # All-zero weights: "fail" is likelier than any applicable answer, so every action is
    # refused; held to "ok", the model writes an outcome for each, consistent with the state.
    path = build_tiny_gguf(tmp_path / "flat.gguf", scale=0.0)
    model = LlamaWorldModel.for_environment(path, tiny_env, retries=0)
    state, actions = tiny_env.state, list(tiny_env.candidate_actions(tiny_env.state))
    assert not any(p.applicable for p in model.predict_many(state, actions))
    before = model.stats.predictions
    outcomes = model.predict_applied(state, actions)
    assert model.stats.predictions == before + len(actions)
    assert len(outcomes) == len(actions) and all(o.applicable for o in outcomes)
    assert all(o.next_state != state for o in outcomes)  # held to a change as well
    for o in outcomes:
        assert 0.0 < o.confidence < 0.5  # the whole answer, verdict included, against "fail"
        assert o.raw is not None and o.raw.split()[0] == "ok"
    assert model.predict_applied(state, []) == []
    model.close()


def test_forced_verdict_agrees_with_the_free_answer_where_the_model_says_it_applies(bw_env):
    env = bw_env(5, 2)
    model = LlamaWorldModel.for_environment(default_model_path("blocksworld"), env, on_invalid="reject")
    rng = random.Random(3)
    compared = 0
    for state in env.random_walk(env.state, 5, rng):
        actions = list(env.candidate_actions(state))
        free = model.predict_many(state, actions)
        forced = model.predict_applied(state, actions)
        for f, g in zip(free, forced):
            assert g.applicable and g.raw is not None and g.raw.split()[0] == "ok" and g.next_state != state
            if f.applicable and f.next_state != state:
                compared += 1
                assert g.next_state == f.next_state and g.confidence == pytest.approx(f.confidence, rel=1e-3)
    assert compared > 0
    model.close()


# -- the doubting wrapper --------------------------------------------------------------------------

S0 = State.from_facts(["(at a)"])
S1 = State.from_facts(["(at b)"])
SURE, DOUBT, IMPLAUSIBLE, KNOWN, EXCLUDED = (Action(f"(go {x})") for x in ("sure", "doubt", "odd", "known", "slice"))


class _Scripted:
    """Refuses every action, with a scripted confidence; writes a scripted outcome when held to "ok"."""

    def __init__(self, refusal: dict[Action, float], outcome: dict[Action, float]) -> None:
        self.refusal, self.outcome = refusal, outcome
        self.stats = ModelStats()
        self.asked: list[Action] = []

    def predict(self, state, action):
        return self.predict_many(state, [action])[0]

    def predict_many(self, state, actions):
        return [Prediction(applicable=False, next_state=state, confidence=self.refusal[a]) for a in actions]

    def predict_applied(self, state, actions):
        self.asked.extend(actions)
        return [Prediction(applicable=True, next_state=S1, confidence=self.outcome[a]) for a in actions]


def _scripted() -> _Scripted:
    # p(apply) = 1 - confidence: SURE 0.001, the others 0.4; IMPLAUSIBLE's outcome is unlikely
    # even given that it applies (0.02 / 0.4).
    refusal = {SURE: 0.999, DOUBT: 0.6, IMPLAUSIBLE: 0.6, KNOWN: 0.6, EXCLUDED: 0.6}
    outcome = {DOUBT: 0.38, IMPLAUSIBLE: 0.02, KNOWN: 0.38, EXCLUDED: 0.38, SURE: 0.001}
    return _Scripted(refusal, outcome)


def test_doubted_refusals_are_answered_as_applying_and_nothing_else_is():
    inner = _scripted()
    model = DoubtingWorldModel(inner, inner, threshold=0.05, known=lambda s, a: a == KNOWN,
                               exclude=lambda a: "slice" in a.name)
    actions = [SURE, DOUBT, IMPLAUSIBLE, KNOWN, EXCLUDED]
    preds = model.predict_many(S0, actions)
    assert [p.applicable for p in preds] == [False, True, False, False, False]
    assert preds[1].next_state == S1
    assert model.doubted == {(S0, DOUBT): pytest.approx(0.4)}
    assert set(inner.asked) == {DOUBT, IMPLAUSIBLE}  # never the sure, known or excluded ones
    model.predict_many(S0, actions)
    assert len(inner.asked) == 2  # outcomes are asked once per (state, action)
    assert model.predict(S0, DOUBT).applicable and model.stats is inner.stats


@settings(max_examples=60, deadline=None)
@given(threshold=st.floats(0.001, 1.0), confidence=st.floats(0.0, 1.0))
def test_only_refusals_at_least_as_doubtful_as_the_threshold_are_doubted(threshold, confidence):
    inner = _scripted()
    inner.refusal[DOUBT] = confidence
    inner.outcome[DOUBT] = 1.0  # a fully plausible outcome
    pred = DoubtingWorldModel(inner, inner, threshold=threshold).predict(S0, DOUBT)
    # Confidence 0 is an answer rejected as invalid: it says nothing, and is never doubted.
    assert pred.applicable == (confidence > 0.0 and 1.0 - confidence >= threshold)


def test_an_answer_that_changes_nothing_is_doubted_when_a_change_is_plausible():
    # "Applies, changes nothing" (a lamp switched on that was on) where the model also gives
    # the change it would make a fair share: searched as that change. An implausible change
    # (the model does not believe it) is left alone.
    inner = _scripted()
    inner.predict_many = lambda state, actions: [  # type: ignore[method-assign]
        Prediction(applicable=True, next_state=state, confidence=0.6, p_apply=0.97) for _ in actions]
    model = DoubtingWorldModel(inner, inner, threshold=0.05)
    assert model.predict(S0, DOUBT).next_state == S1  # outcome confidence 0.38 >= 0.3 * 0.97
    assert model.doubted == {(S0, DOUBT): pytest.approx(0.38)}
    assert model.predict(S0, IMPLAUSIBLE).next_state == S0  # 0.02: left as the model said
    assert (S0, IMPLAUSIBLE) not in model.doubted


def test_the_verdict_probability_decides_when_the_model_gives_it():
    # A refusal by "fail is likelier than the whole applicable answer": its confidence is fail's
    # share of the two, but the verdict itself gave "applies" 0.5. The outcome written for it is
    # unlikely even given that it applies (0.05 / 0.5): not plausible, so not doubted.
    inner = _scripted()
    inner.predict_many = lambda state, actions: [  # type: ignore[method-assign]
        Prediction(applicable=False, next_state=state, confidence=0.9, p_apply=0.5) for _ in actions]
    inner.predict_applied = lambda state, actions: [  # type: ignore[method-assign]
        Prediction(applicable=True, next_state=S1, confidence=0.05 * 0.5, p_apply=0.5) for _ in actions]
    model = DoubtingWorldModel(inner, inner, threshold=0.05)
    assert not model.predict(S0, DOUBT).applicable  # by 1 - confidence it would be (0.1, 0.25 of it)
    inner.predict_applied = lambda state, actions: [  # type: ignore[method-assign]
        Prediction(applicable=True, next_state=S1, confidence=0.45, p_apply=0.5) for _ in actions]
    model = DoubtingWorldModel(inner, inner, threshold=0.05)
    assert model.predict(S0, DOUBT).applicable and model.doubted == {(S0, DOUBT): 0.5}


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_a_bad_threshold_is_named(bad):
    inner = _scripted()
    with pytest.raises(ConfigError, match="doubt threshold"):
        DoubtingWorldModel(inner, inner, threshold=bad)
    with pytest.raises(ConfigError, match="plausible"):
        DoubtingWorldModel(inner, inner, threshold=0.1, plausible=2.0)


def test_the_model_behind_wrappers_is_found(bw_env):
    inner = _scripted()
    assert applied_outcomes(ExperienceOverlay(CachedWorldModel(inner))) is inner
    assert applied_outcomes(OracleWorldModel(bw_env(3, 0))) is None  # exact: nothing to doubt
    assert applied_outcomes(None) is None

    class Changes:  # a wrapper that changes its inner model's answers is not looked through
        def __init__(self, inner):
            self.inner = inner

    assert applied_outcomes(Changes(inner)) is None


# -- the agent -------------------------------------------------------------------------------------


class _DoubtsStacks:
    """The exact model, except that it refuses every ``stack`` that really applies — with doubt
    (probability of applying ``1 - confidence``) — and, held to "ok", writes the exact outcome."""

    def __init__(self, env, *, confidence: float = 0.7) -> None:
        self.exact = OracleWorldModel(env)
        self.stats = self.exact.stats
        self.confidence = confidence

    def predict(self, state, action):
        exact = self.exact.predict(state, action)
        if action.name.startswith("(stack") and exact.applicable:
            return Prediction(applicable=False, next_state=state, confidence=self.confidence)
        return exact

    def predict_many(self, state, actions):
        return [self.predict(state, a) for a in actions]

    def predict_applied(self, state, actions):
        return [self.exact.predict(state, a) for a in actions]


def _needs_a_stack(bw_env):
    """A Blocksworld start whose goal needs a stack, and whose stacks are two steps away."""
    for seed in range(60):
        env = bw_env(4, seed)
        stuck = Agent(env, _DoubtsStacks(env), max_probes=0).run()
        if stuck.stopped_by == "no_plan" and not stuck.steps:
            return seed
    raise AssertionError("no start needing a stack")  # pragma: no cover


def test_a_doubted_refusal_two_steps_away_is_planned_through(bw_env, tmp_path):
    seed = _needs_a_stack(bw_env)
    exact = Agent(bw_env(4, seed), OracleWorldModel(bw_env(4, seed))).run()
    env = bw_env(4, seed)
    log = tmp_path / "ep.jsonl"
    result = Agent(env, _DoubtsStacks(env), log_path=log).run()
    assert result.solved and result.probes == 0 and result.divergences == 0
    assert result.doubted >= 1 and result.doubted_applied == result.doubted
    assert len(result.steps) == len(exact.steps)  # as short as the exact model's plan
    doubted = [s for s in result.steps if s.doubted]
    assert len(doubted) == result.doubted and all(s.action.name.startswith("(stack") for s in doubted)
    records = read_jsonl(log)
    assert any("doubted" in r["data"] for r in records if r["event"] == "plan")
    assert sum(bool(r["data"].get("doubted")) for r in records if r["event"] == "step") == result.doubted
    assert records[-1]["data"]["doubted"] == result.doubted
    # Without doubt the same model needs probes (real steps taken blind) or gives up.
    off = PlannerConfig.model_validate({"agent": {"doubt": 0}})
    env = bw_env(4, seed)
    blind = Agent(env, _DoubtsStacks(env), config=off).run()
    assert blind.doubted == 0 and (blind.probes > 0 or not blind.solved)


def test_sure_refusals_are_not_doubted(bw_env):
    seed = _needs_a_stack(bw_env)
    env = bw_env(4, seed)
    result = Agent(env, _DoubtsStacks(env, confidence=0.999)).run()  # p(apply) 0.001
    assert result.doubted == 0 and result.probes >= 1  # probed its way on instead


def test_no_probe_budget_means_no_doubted_steps(bw_env):
    seed = _needs_a_stack(bw_env)
    env = bw_env(4, seed)
    result = Agent(env, _DoubtsStacks(env), max_probes=0).run()
    assert result.stopped_by == "no_plan" and result.doubted == 0 and not result.steps


class _WrongDoubts(_DoubtsStacks):
    """Refuses every stack with doubt, and held to "ok" writes the goal state for any action:
    its doubts are wrong wherever the action does not really apply as written."""

    def __init__(self, env) -> None:
        super().__init__(env, confidence=0.5)
        self.goal_state = State.from_facts(sorted(env.goal.facts))

    def predict(self, state, action):
        pred = super().predict(state, action)
        if not pred.applicable:
            return Prediction(applicable=False, next_state=state, confidence=0.5)
        return pred

    def predict_applied(self, state, actions):
        return [Prediction(applicable=True, next_state=self.goal_state, confidence=0.5) for _ in actions]


def test_wrong_doubts_are_learned_from_and_bounded_by_the_probe_budget(bw_env):
    seed = _needs_a_stack(bw_env)
    env = bw_env(4, seed)
    result = Agent(env, _WrongDoubts(env), max_probes=3).run()
    failed = result.doubted - result.doubted_applied
    assert failed >= 1  # it tried, and each wrong doubt was a divergence
    assert failed + result.probes <= 3
    assert result.divergences >= failed
    # A refused real step is never doubted again at the same state.
    tried = [(s.state, s.action) for s in result.steps if s.doubted and s.diverged]
    assert len(tried) == len(set(tried))


def test_irreversible_actions_are_never_doubted(bw_env):
    seed = _needs_a_stack(bw_env)
    env = bw_env(4, seed)
    cfg = PlannerConfig.model_validate({"agent": {"verify": ["^\\(stack "]}})
    result = Agent(env, _DoubtsStacks(env), config=cfg).run()
    assert result.doubted == 0 and not result.solved
    assert not any(s.action.name.startswith("(stack") for s in result.steps)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "x"])
def test_a_bad_doubt_setting_is_named(bad):
    with pytest.raises(ValueError, match="doubt"):
        PlannerConfig.model_validate({"agent": {"doubt": bad}})


# -- shortcuts: a plan exists, but around a step the model doubts ---------------------------------

ROOMS = ("r0", "r1", "r2", "r3")
LINE = {("r0", "r1"), ("r1", "r2"), ("r2", "r3")}


class Corridor:
    """Rooms r0 … r3 on a corridor; ``(go rI rJ)`` moves along an edge. With ``door``, r0 also
    opens straight into r3. The goal is r3."""

    def __init__(self, *, door: bool) -> None:
        self.edges = LINE | ({("r0", "r3")} if door else set())
        self.goal = FactGoal(frozenset({"(at r3)"}))
        self.state = State.from_facts(["(at r0)"])

    def reset(self, *, seed=None):
        self.state = State.from_facts(["(at r0)"])
        return self.state, {}

    def candidate_actions(self, state):
        return [Action(f"(go {a} {b})") for a in ROOMS for b in ROOMS if a != b]

    def step(self, action):
        a, b = action.args
        ok = f"(at {a})" in self.state.facts and (a, b) in self.edges
        if ok:
            self.state = State.from_facts([f"(at {b})"])
        done = self.goal.satisfied(self.state)
        return StepResult(self.state, 1.0 if done else 0.0, done, False, MappingProxyType({}), ok)


class _DoubtsTheDoor:
    """Knows the corridor and believes in the door r0 → r3, but refuses it with doubt
    (probability of applying 0.4); held to "applies", it writes the move."""

    def __init__(self, *, doubts: frozenset = frozenset({("r0", "r3")})) -> None:
        self.stats = ModelStats()
        self.edges = LINE | {("r0", "r3")}
        self.doubts = doubts

    def _exact(self, state, action):
        a, b = action.args
        if f"(at {a})" in state.facts and (a, b) in self.edges:
            return Prediction(applicable=True, next_state=State.from_facts([f"(at {b})"]))
        return Prediction(applicable=False, next_state=state)

    def predict(self, state, action):
        if action.args in self.doubts:
            return Prediction(applicable=False, next_state=state, confidence=0.6)
        return self._exact(state, action)

    def predict_many(self, state, actions):
        return [self.predict(state, a) for a in actions]

    def predict_applied(self, state, actions):
        return [self._exact(state, a) for a in actions]


def _corridor(door: bool, **agent) -> EpisodeResult:
    cfg = PlannerConfig.model_validate({"agent": agent})
    return Agent(Corridor(door=door), _DoubtsTheDoor(), config=cfg).run()


def test_a_doubted_shortcut_is_taken_when_it_saves_enough_steps():
    result = _corridor(True)
    assert result.solved and [s.action.name for s in result.steps] == ["(go r0 r3)"]
    assert result.doubted == result.doubted_applied == 1 and result.divergences == 0
    # Off, or asked to save more steps than it does: the sure detour.
    for agent in ({"doubt_shortcut": 0}, {"doubt_shortcut": 3}, {"doubt": 0}):
        detour = _corridor(True, **agent)
        assert detour.solved and len(detour.steps) == 3 and detour.doubted == 0, agent


def test_a_wrong_shortcut_costs_one_step_and_is_learned():
    result = _corridor(False)  # no door: the model's doubt was right
    assert result.solved and [s.action.name for s in result.steps] == [
        "(go r0 r3)", "(go r0 r1)", "(go r1 r2)", "(go r2 r3)"]
    assert result.doubted == 1 and result.doubted_applied == 0 and result.divergences == 1


def test_after_a_wrong_doubt_the_search_goes_on_through_the_other_doubts_at_once():
    # No door, and the model doubts the door and r1 -> r2 (which is real): its own search finds
    # no plan; the door is tried and refused; the next search goes straight through the
    # remaining doubt (its own search, which found no plan from here, is not repeated).
    model = _DoubtsTheDoor(doubts=frozenset({("r0", "r3"), ("r1", "r2")}))
    result = Agent(Corridor(door=False), model).run()
    assert result.solved and [s.action.name for s in result.steps] == [
        "(go r0 r3)", "(go r0 r1)", "(go r1 r2)", "(go r2 r3)"]
    assert result.doubted == 2 and result.doubted_applied == 1 and result.divergences == 1
    assert result.searches == 3  # its own (no plan), through doubts, through the remaining doubt


@pytest.mark.parametrize("algorithm", ["beam", "mcts"])
@pytest.mark.parametrize("mode", ["plan", "receding"])
def test_doubts_work_with_either_search_and_either_mode(algorithm, mode):
    # The model knows only r0 -> r1 for sure; the door r0 -> r3 it doubts. MCTS returns a partial
    # plan (to r1, the best-valued state it saw) rather than none: that is no plan to the goal
    # either, and the search through doubts must still run from r0.
    model = _DoubtsTheDoor()
    model.edges = {("r0", "r1"), ("r0", "r3")}
    cfg = PlannerConfig.model_validate({"agent": {"mode": mode},
                                        "search": {"algorithm": algorithm, "simulations": 200}})
    result = Agent(Corridor(door=True), model, config=cfg).run()
    assert result.solved and [s.action.name for s in result.steps] == ["(go r0 r3)"]
    assert result.doubted == result.doubted_applied == 1 and result.probes == 0


def test_every_search_is_a_plan_record_and_an_episode_with_doubts_resumes(tmp_path):
    from planner.view.read import read_episode

    log = tmp_path / "ep.jsonl"
    model = _DoubtsTheDoor(doubts=frozenset({("r0", "r3"), ("r1", "r2")}))
    result = Agent(Corridor(door=False), model, log_path=log).run()
    records = read_jsonl(log)
    plans = [r["data"] for r in records if r["event"] == "plan"]
    assert len(plans) == result.searches == records[-1]["data"]["searches"]
    assert [p.get("doubting", False) for p in plans] == [False, True, True]
    assert plans[1]["doubted"] == {"0": 0.4} and plans[2]["doubted"] == {"1": 0.4}
    episode = read_episode(log)
    assert [seg.doubting for seg in episode.segments] == [False, True, True]
    assert [r.step.doubted for seg in episode.segments for r in seg.rows if r.step] == [True, False, True, False]
    # Interrupted after its first (wrong) doubted step, the episode resumes where it was.
    lines = log.read_text().splitlines()
    first_step = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == "step")
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:first_step + 1]) + "\n")
    resumed = Agent(Corridor(door=False), _DoubtsTheDoor(doubts=frozenset({("r0", "r3"), ("r1", "r2")}))).run(
        resume=cut)
    assert resumed.solved and resumed.resumed_steps == 1 and resumed.steps[0].doubted
    assert resumed.doubted == 2 and resumed.doubted_applied == 1


@settings(max_examples=200, deadline=None)
@given(must=st.sampled_from([None, "add", "del"]), n_absent=st.integers(0, 4), n_held=st.integers(1, 4),
       picks=st.lists(st.integers(0, 1_000), min_size=1, max_size=40), max_new=st.integers(6, 14))
def test_answer_rules_make_the_change_they_must(must, n_absent, n_held, picks, max_new):
    """Any walk through the allowed tokens of one answer (held to ``ok`` when ``must``) ends
    well formed, within ``max_new`` tokens, adding only absent and removing only held facts —
    and with ``must="add"`` adding something, with ``must="del"`` removing and adding nothing."""
    import numpy as np

    from planner.world.llama import _AnswerIds, _FactDeltaRules

    ok, fail, add, dele, done, cont = range(6)
    absent = np.arange(10, 10 + n_absent)
    held = np.arange(20, 20 + n_held)
    ids = _AnswerIds(ok=ok, add=add, delete=dele, facts=np.concatenate([absent, held]),
                     verdicts=np.array([ok] if must else [ok, fail]), close_added=np.array([dele]),
                     close_removed=np.array([done, cont]), ends=frozenset((done, cont)))
    rules = _FactDeltaRules(ids, max_new, absent, held, must=must)
    tokens: list[int] = []
    for pick in picks * max_new:
        allowed = rules.allowed()
        assert len(allowed) > 0
        token = int(allowed[pick % len(allowed)])
        tokens.append(token)
        forced = rules.push(token)
        if forced is None:
            break
        tokens.extend(forced)
    else:
        raise AssertionError("the answer never ended")
    assert len(tokens) <= max_new
    if tokens[0] == fail:
        assert must is None and tokens == [fail]
        return
    assert tokens[:2] == [ok, add] and tokens[-1] in (done, cont)
    added = tokens[2:tokens.index(dele)]
    removed = tokens[tokens.index(dele) + 1:-1]
    assert set(added) <= set(absent.tolist()) and set(removed) <= set(held.tolist())
    assert len(set(added)) == len(added) and len(set(removed)) == len(removed)
    if must == "add" and n_absent:
        assert added
    if must == "del":
        assert not added and removed


def test_solve_takes_the_doubt_settings_and_names_a_bad_one(capsys):
    from planner.cli import main

    assert main(["solve", "--env", "blocksworld-v0", "--seed", "3", "--doubt", "2"]) == 2
    assert "agent.doubt" in capsys.readouterr().err
    assert main(["solve", "--env", "blocksworld-v0", "--seed", "3", "--doubt-shortcut", "-1"]) == 2
    assert "agent.doubt_shortcut" in capsys.readouterr().err
    assert main(["solve", "--env", "blocksworld-v0", "--seed", "3", "--doubt", "0.2", "--doubt-shortcut", "3",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["solved"] and summary["doubted"] >= 0 and "doubted_applied" in summary


def test_no_shortcut_search_where_the_model_was_sure_of_every_answer():
    model = _DoubtsTheDoor(doubts=frozenset())
    model.edges = set(LINE)  # knows the corridor, sure of every refusal
    result = Agent(Corridor(door=False), model).run()
    assert result.solved and len(result.steps) == 3
    assert result.searches == 1  # its own search only: nothing to doubt, no search through doubts


def test_the_steps_leading_to_a_wrong_doubt_count_against_the_budget():
    # The corridor ends at r2 (no way into r3); the model doubts r2 -> r3. Its plan through the
    # doubt walks r0 -> r1 -> r2 and fails there: 3 real steps spent on a doubt that did not pay
    # off, so of a budget of 4 one probe is left.
    env = Corridor(door=False)
    env.edges = {("r0", "r1"), ("r1", "r2")}
    model = _DoubtsTheDoor(doubts=frozenset({("r2", "r3")}))
    model.edges = set(LINE)  # no door
    result = Agent(env, model, max_probes=4).run()
    assert not result.solved and result.stopped_by == "no_plan"
    assert [s.action.name for s in result.steps[:3]] == ["(go r0 r1)", "(go r1 r2)", "(go r2 r3)"]
    assert result.doubted == 1 and result.doubted_applied == 0
    assert result.probes == 1


def test_after_a_wrong_doubt_where_no_sure_plan_existed_the_agent_probes_without_searching_again(tmp_path):
    # The model knows only r0 -> r1 for sure and doubts the door: its own search finds no plan,
    # the door is tried and refused, the search through the remaining doubts finds none — and
    # its own search, which found none from here, is not repeated before probing.
    model = _DoubtsTheDoor()
    model.edges = {("r0", "r1"), ("r0", "r3")}
    log = tmp_path / "ep.jsonl"
    result = Agent(Corridor(door=False), model, log_path=log, max_probes=3).run()
    events = [(r["event"], r["data"]) for r in read_jsonl(log)]
    failed = next(i for i, (e, d) in enumerate(events) if e == "step" and d.get("doubted"))
    assert not events[failed][1]["applicable"]
    after = [(e, d) for e, d in events[failed + 1:] if e in ("plan", "act")]
    assert after[0][0] == "plan" and after[0][1]["doubting"] and not after[0][1]["followed"]
    assert after[1][0] == "act" and after[1][1]["probe"]
    assert result.probes >= 1
