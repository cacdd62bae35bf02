"""Voting over object numberings: the counting rules (property tests) and the GGUF model asked
under several numberings (the shipped Blocksworld model, run by llama.cpp)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.config import PlannerConfig
from planner.env.blocksworld import write_problem
from planner.env.pddl import PDDLEnvironment
from planner.errors import ConfigError, VocabularyError
from planner.types import Action, FactGoal, Prediction, State
from planner.world.codec import FactDeltaCodec
from planner.world.factory import default_model_path
from planner.world.llama import LlamaWorldModel
from planner.world.votes import MAX_VOTES, VOTE_BELOW, decided, numberings, tally, winner
from tests.conftest import BW_ACTIONS, BW_PREDICATES

MODEL = default_model_path("blocksworld")


def _answer(k: int) -> Prediction:
    """Answer ``k``: distinct outcomes for distinct ``k`` (confidence does not count)."""
    return Prediction(applicable=k > 0, next_state=State.from_facts([f"(f{k})"]), confidence=1.0 / (k + 2))


# -- numberings ------------------------------------------------------------------------------------

@given(st.lists(st.text("abcxyz_0123456789", min_size=1, max_size=6), min_size=1, max_size=9, unique=True),
       st.integers(1, MAX_VOTES))
def test_numberings_are_distinct_orders_of_the_objects_sorted_first(objects, votes):
    orders = numberings(objects, votes)
    assert orders[0] == tuple(sorted(objects))
    assert len(orders) == min(votes, math.factorial(len(objects)))
    assert len(set(orders)) == len(orders)
    assert all(sorted(o) == sorted(objects) for o in orders)
    assert numberings(list(reversed(objects)), votes) == orders  # the names decide, not their order


def test_a_numbering_makes_the_placeholders():
    codec = FactDeltaCodec(objects=("a", "b", "c"), predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=8,
                           numbering=("c", "a", "b"))
    assert codec.objects == ("a", "b", "c")
    assert codec.fact_word("(on c a)") == "on(x1,x2)"
    assert codec.word_fact("on(x3,x1)") == "(on b c)"
    with pytest.raises(VocabularyError, match="numbering must list each"):
        FactDeltaCodec(objects=("a", "b", "c"), predicates=BW_PREDICATES, actions=BW_ACTIONS, max_objects=8,
                       numbering=("a", "b", "b"))


# -- counting --------------------------------------------------------------------------------------

ballot_lists = st.lists(st.integers(0, 3), min_size=1, max_size=8)


@given(ballot_lists)
def test_the_winner_has_most_votes_and_ties_go_to_the_answer_given_first(ks):
    ballots = [_answer(k) for k in ks]
    best = winner(ballots)
    counts = {k: ks.count(k) for k in ks}
    top = max(counts.values())
    first_top = next(k for k in ks if counts[k] == top)
    assert best.same_outcome(_answer(first_top))
    assert best is ballots[ks.index(first_top)]  # represented by its first ballot
    assert sum(n for _, n in tally(ballots)) == len(ballots)


@settings(max_examples=300)
@given(ballot_lists, st.integers(0, 4), st.data())
def test_a_decided_vote_stays_decided_whatever_the_remaining_ballots(ks, remaining, data):
    ballots = [_answer(k) for k in ks]
    if not decided(ballots, remaining):
        return
    more = data.draw(st.lists(st.integers(0, 5), min_size=remaining, max_size=remaining))
    assert winner(ballots + [_answer(k) for k in more]).same_outcome(winner(ballots))


def test_undecided_when_the_remaining_ballots_could_still_overturn():
    a, b = _answer(1), _answer(2)
    assert not decided([a], 2)  # two newcomers could outvote it
    assert decided([a, a], 1)
    assert not decided([a, b], 1)
    assert decided([a, b, b], 0)
    with pytest.raises(ValueError, match="no ballots"):
        winner([])


# -- the GGUF model asked under several numberings --------------------------------------------------

def _renamed(order: tuple[str, ...]) -> dict[str, str]:
    """Names that sort in ``order`` (so the sorted numbering of the renamed problem is ``order``)."""
    return {o: f"n{i:02d}{o}" for i, o in enumerate(order)}


def _atom(text: str, new: dict[str, str]) -> str:
    name, *args = text.strip("()").split()
    return "(" + " ".join([name, *(new[a] for a in args)]) + ")"


def test_votes_return_the_majority_of_the_numberings_as_renamed_problems_answer(tmp_path):
    """Each numbering answers as the same problem with its objects renamed to sort in that order
    would, and the voted answer is the majority of those."""
    env = PDDLEnvironment(*write_problem(tmp_path, 6, seed=3))
    voted = LlamaWorldModel.for_environment(MODEL, env, on_invalid="reject", votes=3, mode="prefix")
    orders = numberings(voted.codec.objects, 3)
    assert [c.numbering or tuple(sorted(voted.codec.objects)) for c in voted.codecs] == orders
    singles = []
    for order in orders:
        new = _renamed(order)
        singles.append((new, LlamaWorldModel(MODEL, objects=[new[o] for o in order], mode="prefix",
                                             goal=FactGoal(frozenset(_atom(g, new) for g in env.goal.facts)),
                                             on_invalid="reject")))
    rng = random.Random(0)
    checked = applied = 0
    try:
        for state in env.random_walk(env.state, 4, rng):
            actions = list(env.candidate_actions(state))
            got = voted.predict_many(state, actions)
            for action, pred in zip(actions, got):
                ballots = []
                for new, single in singles:
                    back = {v: k for k, v in new.items()}
                    p = single.predict(State.from_facts(_atom(f, new) for f in state.facts),
                                       Action(_atom(action.name, new)))
                    ballots.append(Prediction(applicable=p.applicable, done=p.done,
                                              next_state=State.from_facts(_atom(f, back) for f in p.next_state.facts)))
                assert pred.same_outcome(winner(ballots)), action
                # its raw text reads in the sorted numbering, as one vote's would (a refusal's raw text
                # may be the applicable answer it found less likely than "fail")
                if pred.applicable:
                    assert pred.raw is not None and voted.codec.parse(pred.raw.split(), state).same_outcome(pred)
                    applied += 1
                checked += 1
    finally:
        voted.close()
        for _, single in singles:
            single.close()
    assert checked >= 20 and applied >= 4


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_renumbering_an_answer_names_the_same_objects(n, seed):
    objects = [f"o{i}" for i in range(n)]
    order = list(objects)
    random.Random(seed).shuffle(order)
    first = FactDeltaCodec(objects=tuple(objects), predicates={"on": 2, "clear": 1}, actions={}, max_objects=12)
    other = FactDeltaCodec(objects=tuple(objects), predicates={"on": 2, "clear": 1}, actions={}, max_objects=12,
                           numbering=tuple(order))
    facts = [f"(on {objects[i]} {objects[(i * 7 + 3) % n]})" for i in range(n)] + [f"(clear {o})" for o in objects]
    text = "ok add " + " ".join(other.fact_word(f) for f in facts) + " del cont"
    again = other.renumbered(text, first)
    assert again.split()[2:-2] == [first.fact_word(f) for f in facts]
    assert first.renumbered(again, other) == text
    assert other.renumbered("fail", first) == "fail"


def test_an_answer_won_by_another_numbering_reads_in_the_sorted_one(tmp_path, monkeypatch):
    """The sorted numbering's answers are swapped for a wrong outcome, so the other two (real,
    and agreeing) win; the winners' raw text is written in the sorted numbering's placeholders."""
    env = PDDLEnvironment(*write_problem(tmp_path, 6, seed=4))
    model = LlamaWorldModel.for_environment(MODEL, env, on_invalid="reject", votes=3, vote_below=1.0)
    real = model._predict_as

    def outvoted(k, state, actions, *, applied):
        answers = real(k, state, actions, applied=applied)
        return [_answer(7) for _ in answers] if k == 0 else answers

    monkeypatch.setattr(model, "_predict_as", outvoted)
    try:
        state = env.state
        preds = model.predict_many(state, list(env.candidate_actions(state)))
    finally:
        model.close()
    won = [p for p in preds if p.applicable and p.raw is not None]
    assert won and all(model.codec.parse(p.raw.split(), state).same_outcome(p) for p in won)


def test_a_third_numbering_is_asked_only_where_the_first_two_disagree(tmp_path, monkeypatch):
    """The model's answers are real; the second numbering's answer to every other action is
    swapped for another outcome, so that the two disagree there."""
    env = PDDLEnvironment(*write_problem(tmp_path, 4, seed=1))
    model = LlamaWorldModel.for_environment(MODEL, env, on_invalid="reject", votes=3, vote_below=1.0)
    assert all(p.confidence < 1.0 for p in model.predict_many(env.state, list(env.candidate_actions(env.state))))
    model.stats.split_votes = 0
    asked: list[dict[str, Prediction]] = []
    real = model._predict_as

    def recording(k, state, actions, *, applied):
        answers = real(k, state, actions, applied=applied)
        assert k == len(asked)  # the numberings in turn
        if len(asked) == 1:
            answers = [_answer(7) if i % 2 else p for i, p in enumerate(answers)]
        asked.append({a.name: p for a, p in zip(actions, answers)})
        return answers

    monkeypatch.setattr(model, "_predict_as", recording)
    state = env.state
    actions = [a.name for a in env.candidate_actions(state)]
    try:
        preds = model.predict_many(state, [Action(a) for a in actions])
    finally:
        model.close()
    first, second = asked[0], asked[1]
    assert list(first) == list(second) == actions
    split = [a for a in actions if not first[a].same_outcome(second[a])]
    assert split == actions[1::2]
    assert len(asked) == 3 and list(asked[2]) == split
    assert model.stats.split_votes == len(split)
    for a, pred in zip(actions, preds):
        ballots = [first[a], second[a]] + ([asked[2][a]] if a in split else [])
        assert pred is winner(ballots)


def test_votes_out_of_range_are_refused_naming_the_value(tiny_gguf, tiny_env):
    for bad in (0, MAX_VOTES + 1, 2.5, True):
        with pytest.raises(ConfigError, match="votes"):
            LlamaWorldModel.for_environment(tiny_gguf, tiny_env, votes=bad)
    with pytest.raises(ConfigError, match="votes"):
        PlannerConfig().updated(model={"votes": 0})
    with pytest.raises(ConfigError, match=r"oracle.*votes") as refused:
        PlannerConfig().updated(model={"kind": "oracle", "votes": 3})
    assert str(refused.value).endswith("votes must be 1 (got votes 3)")  # not the whole section again
    for bad in (0, 1.5, float("nan"), True):
        with pytest.raises(ConfigError, match="vote_below"):
            LlamaWorldModel.for_environment(tiny_gguf, tiny_env, votes=3, vote_below=bad)
        with pytest.raises(ConfigError, match="vote_below"):
            PlannerConfig().updated(model={"votes": 3, "vote_below": bad})


def test_each_numbering_keeps_its_prefix_in_the_kv_cache(tmp_path):
    """Asking the same state again evaluates no prefix token under any numbering: each keeps its
    own prefix sequence, so alternating numberings does not evaluate their prefixes again."""
    env = PDDLEnvironment(*write_problem(tmp_path, 5, seed=2))
    model = LlamaWorldModel.for_environment(MODEL, env, on_invalid="reject", votes=3, vote_below=1.0)
    state = env.state
    actions = list(env.candidate_actions(state))
    try:
        first = model.predict_many(state, actions)
        asked = 2 + (model.stats.split_votes > 0)
        tokens = model.stats.prompt_tokens
        again = model.predict_many(state, actions)
        second = model.stats.prompt_tokens - tokens
        prefix = len(model._prompt(model.codec, state, actions)[0])
    finally:
        model.close()
    assert [p.same_outcome(q) for p, q in zip(first, again)] == [True] * len(actions)
    assert tokens - second == asked * prefix


def test_a_prefix_that_failed_to_decode_is_not_taken_as_cached(tmp_path, monkeypatch):
    """A prefix decode that fails part way leaves the KV cache holding less than before: the
    next question about the earlier state evaluates its prefix again and answers as before."""
    env = PDDLEnvironment(*write_problem(tmp_path, 5, seed=4))
    model = LlamaWorldModel.for_environment(MODEL, env, on_invalid="reject", votes=3)
    state = env.state
    actions = list(env.candidate_actions(state))
    later = env.simulate(state, next(a for a in actions if env.simulate(state, a).applicable)).next_state
    try:
        before = model.predict_many(state, actions)
        real = model.engine.decode

        def failing(entries):
            raise RuntimeError("decode failed")

        monkeypatch.setattr(model.engine, "decode", failing)
        with pytest.raises(RuntimeError):
            model.predict_many(later, actions)
        monkeypatch.setattr(model.engine, "decode", real)
        tokens = model.stats.prompt_tokens
        after = model.predict_many(state, actions)
        assert model.stats.prompt_tokens - tokens > sum(map(len, model._suffixes(model.codec, actions, state)))
    finally:
        model.close()
    assert [(p.applicable, p.next_state, round(p.confidence, 4)) for p in after] == \
        [(p.applicable, p.next_state, round(p.confidence, 4)) for p in before]


def test_solve_with_votes_plans_and_reports_how_often_the_numberings_disagreed(bw_files, capsys, tmp_path):
    import json

    from planner.cli import main

    domain, problem = bw_files(5, 7)
    code = main(["solve", str(domain), str(problem), "--votes", "3", "--json", "--log", str(tmp_path / "ep.jsonl")])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["solved"] is True
    assert summary["votes"] == 3 and summary["vote_below"] == VOTE_BELOW
    end = [json.loads(line) for line in (tmp_path / "ep.jsonl").read_text().splitlines()][-1]
    assert end["event"] == "end" and end["data"]["split_votes"] == summary["split_votes"] >= 0
    assert main(["solve", str(domain), str(problem), "--votes", "16"]) == 2
    assert "votes" in capsys.readouterr().err
    # a threshold with one vote would change nothing: refused rather than ignored
    assert main(["solve", str(domain), str(problem), "--vote-below", "0.5"]) == 2
    assert "--vote-below 0.5 says which answers" in capsys.readouterr().err.replace("\n", " ")
    # ... but the configuration's votes count, and one vote leaves vote_below out of the summary
    (tmp_path / "v.toml").write_text("[model]\nvotes = 3\n")
    assert main(["solve", str(domain), str(problem), "--config", str(tmp_path / "v.toml"), "--vote-below", "0.5",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["votes"] == 3 and summary["vote_below"] == 0.5
    assert main(["solve", str(domain), str(problem), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["votes"] == 1 and "vote_below" not in summary
    # a file's votes and --oracle clash: the error says the file is part of it
    assert main(["solve", str(domain), str(problem), "--config", str(tmp_path / "v.toml"), "--oracle"]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "v.toml together with the command-line options" in err and "votes must be 1" in err


def test_eval_model_reports_the_votes_it_was_asked_under(tmp_path, capsys):
    import json

    from planner.cli import main
    from planner.data.collect import collect_blocksworld

    collect_blocksworld(tmp_path, problems={"train": 1, "val": 0, "test": 0}, blocks=(3,), seed=0)
    log = str(tmp_path / "train.jsonl")
    assert main(["eval-model", str(MODEL), "--data", log, "--limit", "20", "--votes", "3", "--vote-below", "0.5",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["votes"] == 3 and report["vote_below"] == 0.5
    assert main(["eval-model", str(MODEL), "--data", log, "--limit", "20", "--votes", "3", "--vote-below", "0.5"]) == 0
    assert "3 numberings of the objects (again below confidence 0.5)" in capsys.readouterr().out
    assert main(["eval-model", str(MODEL), "--data", log, "--limit", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["votes"] == 1 and "vote_below" not in report
    # a configuration file's [model] voting applies to a log too, the options winning over it
    (tmp_path / "v.toml").write_text("[model]\nvotes = 3\nvote_below = 0.7\n")
    config = ["--config", str(tmp_path / "v.toml")]
    assert main(["eval-model", str(MODEL), "--data", log, "--limit", "20", *config, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["votes"] == 3 and report["vote_below"] == 0.7
    assert main(["eval-model", str(MODEL), "--data", log, "--limit", "20", *config, "--votes", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["votes"] == 1
    (tmp_path / "bad.toml").write_text("[model]\nvotes = 99\n")
    assert main(["eval-model", str(MODEL), "--data", log, "--config", str(tmp_path / "bad.toml")]) == 2
    assert "bad.toml" in capsys.readouterr().err


def test_only_answers_less_sure_than_vote_below_are_asked_again(tmp_path, monkeypatch):
    env = PDDLEnvironment(*write_problem(tmp_path, 5, seed=5))
    state = env.state
    actions = list(env.candidate_actions(state))
    asked: dict[float, list[int]] = {}
    for below in (1e-9, 0.99, 1.0):
        model = LlamaWorldModel.for_environment(MODEL, env, on_invalid="reject", votes=3, vote_below=below)
        real = model._predict_as
        calls: list[int] = []
        first: list[Prediction] = []

        def recording(k, state, actions, *, applied, real=real, calls=calls, first=first):
            answers = real(k, state, actions, applied=applied)
            calls.append(len(actions))
            if k == 0:
                first.extend(answers)
            return answers

        monkeypatch.setattr(model, "_predict_as", recording)
        try:
            model.predict_many(state, actions)
        finally:
            model.close()
        asked[below] = calls
        unsure = sum(p.confidence < below for p in first)
        assert calls[0] == len(actions) and (len(calls) == 1 or calls[1] == unsure)
    assert asked[1e-9] == [len(actions)]  # nobody is that unsure: one numbering, as with one vote
