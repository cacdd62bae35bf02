"""Domain signatures: what a PDDL domain is, whatever its file calls it; recording one in a GGUF
file; choosing the shipped model by it."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.env.blocksworld import DOMAIN_PDDL
from planner.env.pddl import parse_domain
from planner.errors import DomainError, ModelLoadError
from planner.world.factory import (
    MODELS_ENV,
    check_model_signature,
    default_model_for,
    default_model_path,
    models_dirs,
    package_models_dir,
    recorded_signature,
    shipped_models,
)
from planner.world.gguf_io import KEY_SIGNATURE, read_model_info
from planner.world.signature import (
    DomainSignature,
    OperatorSignature,
    domain_signature,
    rewrite_with_metadata,
    signature_differences,
    stamp_signature,
)
from tests.conftest import build_tiny_gguf

FOUR_OPS_DOMAIN = """\
;; The standard 4-operator Blocksworld as PlanBench writes it, declarations reordered.
(define (domain blocksworld-4ops)
  (:requirements :strips)
  (:predicates (clear ?x)
               (ontable ?x)
               (handempty)
               (holding ?x)
               (on ?x ?y))

  (:action unstack
    :parameters  (?ob ?underob)
    :precondition (and (on ?ob ?underob) (clear ?ob) (handempty))
    :effect (and (holding ?ob) (clear ?underob)
                 (not (on ?ob ?underob)) (not (clear ?ob)) (not (handempty))))

  (:action stack
    :parameters  (?ob ?underob)
    :precondition (and (clear ?underob) (holding ?ob))
    :effect (and (handempty) (clear ?ob) (on ?ob ?underob)
                 (not (clear ?underob)) (not (holding ?ob))))

  (:action pick-up
    :parameters (?ob)
    :precondition (and (clear ?ob) (ontable ?ob) (handempty))
    :effect (and (holding ?ob) (not (clear ?ob)) (not (ontable ?ob))
                 (not (handempty))))

  (:action put-down
    :parameters  (?ob)
    :precondition (holding ?ob)
    :effect (and (clear ?ob) (handempty) (ontable ?ob)
                 (not (holding ?ob)))))
"""
"""The built-in Blocksworld under another name, with other variable names and another order."""


def sig(text: str) -> DomainSignature:
    return domain_signature(parse_domain(text))


BLOCKSWORLD = sig(DOMAIN_PDDL)


# -- what a signature says --------------------------------------------------------------------


def test_blocksworld_signature_by_parameter_position():
    assert BLOCKSWORLD.predicates == {"on": ("object", "object"), "ontable": ("object",), "clear": ("object",),
                                      "handempty": (), "holding": ("object",)}
    assert BLOCKSWORLD.types == {"object": None} and BLOCKSWORLD.constants == {}
    assert BLOCKSWORLD.operators["stack"] == OperatorSignature(
        parameters=("object", "object"), precondition=("clear(?1)", "holding(?0)"),
        add=("clear(?0)", "handempty", "on(?0,?1)"), delete=("clear(?1)", "holding(?0)"))


def test_another_name_variables_order_and_comments_give_the_same_signature():
    other = sig(FOUR_OPS_DOMAIN)
    assert other == BLOCKSWORLD and signature_differences(BLOCKSWORLD, other) == []
    assert parse_domain(FOUR_OPS_DOMAIN).name != parse_domain(DOMAIN_PDDL).name


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("(and (holding ?x) (clear ?y))", "(holding ?x)", ["operator stack: precondition clear(?1) missing"]),
    ("(not (holding ?x)) (clear ?x) (handempty) (ontable ?x))",
     "(not (holding ?x)) (clear ?x) (handempty) (ontable ?x) (not (clear ?x)))",
     ["operator put-down: extra delete effect clear(?0)"]),
    ("(holding ?x)))\n  (:action put-down", "(holding ?x) (on ?x ?x)))\n  (:action put-down",
     ["operator pick-up: extra add effect on(?0,?0)"]),
    ("(:action stack\n    :parameters (?x ?y)", "(:action stack\n    :parameters (?y ?x)", None),
])
def test_real_differences_are_named(old, new, expected):
    assert old in DOMAIN_PDDL
    changed = DOMAIN_PDDL.replace(old, new, 1)
    differences = signature_differences(BLOCKSWORLD, sig(changed))
    if expected is not None:
        assert differences == expected
    assert differences, "a real difference must show"


def test_arity_and_operator_differences_read_well():
    extra = DOMAIN_PDDL[:-2] + "\n  (:action fly :parameters (?x) :precondition (clear ?x) :effect (holding ?x)))\n"
    assert signature_differences(BLOCKSWORLD, sig(extra)) == ["operator fly: extra operator"]
    assert signature_differences(sig(extra), BLOCKSWORLD) == ["operator fly: missing operator"]
    on3 = BLOCKSWORLD.model_copy(update={"predicates": {**BLOCKSWORLD.predicates, "on": ("object",) * 3}})
    assert signature_differences(BLOCKSWORLD, on3) == ["predicate on: arity 2 vs 3"]


def test_typed_domains_record_types_constants_and_either():
    typed = """(define (domain t) (:requirements :strips :typing)
      (:types block table - object) (:constants floor - table)
      (:predicates (on ?x - block ?y - (either block table)) (clear ?x - block))
      (:action drop :parameters (?b - block) :precondition (clear ?b)
        :effect (and (on ?b floor))))"""
    s = sig(typed)
    assert s.types == {"object": None, "block": "object", "table": "object"}
    assert s.constants == {"floor": "table"}
    assert s.predicates["on"] == ("block", "block|table")
    assert s.operators["drop"] == OperatorSignature(parameters=("block",), precondition=("clear(?0)",),
                                                    add=("on(?0,floor)",))
    untyped = sig(typed.replace(" - block", "").replace(" - (either block table)", ""))
    assert "operator drop: parameter types (block) vs (object)" in signature_differences(s, untyped)


def test_a_body_variable_that_is_no_parameter_is_refused():
    bad = DOMAIN_PDDL.replace(":precondition (holding ?x)", ":precondition (holding ?z)")
    with pytest.raises(DomainError, match=r"operator put-down: variable \?z"):
        sig(bad)


def test_json_round_trip_and_validation():
    data = BLOCKSWORLD.to_json()
    assert json.loads(json.dumps(data)) == data and list(data) == sorted(data)
    assert DomainSignature.from_json(data, source="x") == BLOCKSWORLD
    shuffled = json.loads(json.dumps(data))
    shuffled["operators"]["stack"]["precondition"].reverse()
    assert DomainSignature.from_json(shuffled, source="x") == BLOCKSWORLD
    with pytest.raises(ModelLoadError, match=r"m\.gguf: operators\.stack"):
        DomainSignature.from_json({"operators": {"stack": 3}}, source="m.gguf")
    with pytest.raises(ModelLoadError, match="colour"):
        DomainSignature.from_json({"colour": "red"}, source="m.gguf")


# -- property: only real differences count ---------------------------------------------------

# operator → (number of parameters, precondition, add, delete); atoms as (predicate, positions).
_OPS = {
    "pick-up": (1, [("clear", (0,)), ("ontable", (0,)), ("handempty", ())], [("holding", (0,))],
                [("ontable", (0,)), ("clear", (0,)), ("handempty", ())]),
    "put-down": (1, [("holding", (0,))], [("clear", (0,)), ("handempty", ()), ("ontable", (0,))],
                 [("holding", (0,))]),
    "stack": (2, [("holding", (0,)), ("clear", (1,))], [("clear", (0,)), ("handempty", ()), ("on", (0, 1))],
              [("holding", (0,)), ("clear", (1,))]),
    "unstack": (2, [("on", (0, 1)), ("clear", (0,)), ("handempty", ())], [("holding", (0,)), ("clear", (1,))],
                [("clear", (0,)), ("handempty", ()), ("on", (0, 1))]),
}
_PREDICATES = {"on": 2, "ontable": 1, "clear": 1, "handempty": 0, "holding": 1}
_names = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)


def _render(rng: random.Random, name: str, variables: list[str], ops: dict) -> str:
    """PDDL text of ``ops``, declarations and conjuncts in ``rng``'s order, with ``variables``."""

    def atom(pred: str, args: tuple[int, ...]) -> str:
        return "(" + " ".join([pred, *(f"?{variables[i]}" for i in args)]) + ")"

    def conj(atoms: list[str]) -> str:
        atoms = rng.sample(atoms, len(atoms))
        return atoms[0] if len(atoms) == 1 else "(and " + "\n   ".join(atoms) + ")"

    preds = [f"({p} {' '.join(f'?{v}' for v in variables[:n])})" for p, n in _PREDICATES.items()]
    actions = []
    for op, (n, pre, add, delete) in rng.sample(list(ops.items()), len(ops)):
        effect = [atom(*a) for a in add] + [f"(not {atom(*a)})" for a in delete]
        params = " ".join(f"?{v}" for v in variables[:n])
        actions.append(f"(:action {op} ; {rng.random()}\n :parameters ({params})\n"
                       f" :precondition {conj([atom(*a) for a in pre])}\n :effect {conj(effect)})")
    return (f"(define   (domain {name})\n (:requirements :strips)\n"
            f" (:predicates {' '.join(rng.sample(preds, len(preds)))})\n" + "\n".join(actions) + ")\n")


@settings(max_examples=25, deadline=None)
@given(name=_names, variables=st.lists(_names, min_size=2, max_size=2, unique=True), seed=st.integers(0, 10**6))
def test_rewritten_blocksworld_keeps_its_signature(name, variables, seed):
    text = _render(random.Random(seed), name, variables, _OPS)
    assert sig(text) == BLOCKSWORLD


@settings(max_examples=25, deadline=None)
@given(variables=st.lists(_names, min_size=2, max_size=2, unique=True), seed=st.integers(0, 10**6))
def test_dropping_any_atom_is_named(variables, seed):
    rng = random.Random(seed)
    op = rng.choice(sorted(_OPS))
    n, *parts = _OPS[op]
    part = rng.choice([i for i in range(3) if len(parts[i]) > 1])
    dropped = rng.choice(parts[part])
    ops = {**_OPS, op: (n, *[[a for a in p if not (i == part and a == dropped)] for i, p in enumerate(parts)])}
    label = ("precondition", "add effect", "delete effect")[part]
    pred, args = dropped
    atom = pred + ("(" + ",".join(f"?{i}" for i in args) + ")" if args else "")
    differences = signature_differences(BLOCKSWORLD, sig(_render(rng, "x", variables, ops)))
    assert differences == [f"operator {op}: {label} {atom} missing"]


# -- recording a signature in a GGUF file ----------------------------------------------------


def _tensors(path) -> list[tuple[str, int, list[int], bytes]]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return [(t.name, int(t.tensor_type), [int(d) for d in t.shape], t.data.tobytes()) for t in reader.tensors]


def _metadata(path, *, without: str) -> dict:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {f.name: (list(f.types), f.contents()) for f in reader.fields.values()
            if f.name != without and not f.name.startswith("GGUF.")}


def test_stamp_records_the_signature_and_copies_everything_else(tmp_path):
    plain = build_tiny_gguf(tmp_path / "plain.gguf")
    assert read_model_info(plain).signature is None
    stamped = stamp_signature(plain, BLOCKSWORLD, out=tmp_path / "stamped.gguf")
    assert recorded_signature(read_model_info(stamped)) == BLOCKSWORLD
    assert _tensors(stamped) == _tensors(plain)
    assert _metadata(stamped, without=KEY_SIGNATURE) == _metadata(plain, without=KEY_SIGNATURE)
    again = stamp_signature(stamped, BLOCKSWORLD, out=tmp_path / "again.gguf")
    assert again.read_bytes() == stamped.read_bytes()


def test_stamp_in_place_replaces_an_existing_signature(tmp_path):
    path = stamp_signature(build_tiny_gguf(tmp_path / "m.gguf"), sig(DOMAIN_PDDL.replace("pick-up", "grab")))
    before = _tensors(path)
    stamp_signature(path, BLOCKSWORLD)
    assert recorded_signature(read_model_info(path)) == BLOCKSWORLD
    assert _tensors(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]  # no temporary file left behind


def test_stamp_refuses_what_is_not_a_gguf_file(tmp_path):
    (tmp_path / "x.gguf").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match=r"x\.gguf"):
        stamp_signature(tmp_path / "x.gguf", BLOCKSWORLD)
    with pytest.raises(ModelLoadError, match=r"missing\.gguf"):
        stamp_signature(tmp_path / "missing.gguf", BLOCKSWORLD)
    assert (tmp_path / "x.gguf").read_bytes() == b"not a model"


# -- choosing a model by signature -----------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path):
    """A folder with a Blocksworld model recorded under another name, and an unsigned one."""
    folder = tmp_path / "models"
    folder.mkdir()
    stamp_signature(build_tiny_gguf(tmp_path / "a.gguf"), BLOCKSWORLD, out=folder / "bw.gguf")
    build_tiny_gguf(folder / "legacy.gguf")  # records domain "blocksworld", no signature
    return folder


def test_the_model_with_the_same_signature_is_chosen_whatever_the_name(model_dir):
    assert default_model_for(sig(FOUR_OPS_DOMAIN), domain_name="blocksworld-4ops", dirs=[model_dir]).name == "bw.gguf"


def test_an_unsigned_model_is_chosen_by_its_domain_name_only(model_dir):
    (model_dir / "bw.gguf").unlink()
    path = default_model_for(sig(FOUR_OPS_DOMAIN), domain_name="blocksworld", dirs=[model_dir])
    assert path.name == "legacy.gguf"
    with pytest.raises(ModelLoadError, match="no shipped world model knows domain 'blocksworld-4ops'"):
        default_model_for(sig(FOUR_OPS_DOMAIN), domain_name="blocksworld-4ops", dirs=[model_dir])


def test_no_match_names_the_closest_model_and_the_differences(model_dir):
    changed = sig(DOMAIN_PDDL.replace("(and (holding ?x) (clear ?y))", "(holding ?x)"))
    with pytest.raises(ModelLoadError) as info:
        default_model_for(changed, domain_name="towers", dirs=[model_dir])
    text = str(info.value)
    assert "'towers'" in text and "bw.gguf" in text and "operator stack: precondition clear(?1) missing" in text
    assert "\n" not in text and "--model" in text


def test_unreadable_models_are_named_when_nothing_fits(model_dir):
    (model_dir / "broken.gguf").write_bytes(b"GGUF broken")
    rewrite_with_metadata(model_dir / "bw.gguf", model_dir / "odd.gguf", key=KEY_SIGNATURE, value='{"operators": 3}')
    found = shipped_models([model_dir])
    assert [i.path.name for i in found.models] == ["bw.gguf", "legacy.gguf", "odd.gguf"]
    assert len(found.unreadable) == 1 and "broken.gguf" in found.unreadable[0]
    with pytest.raises(ModelLoadError, match=r"broken\.gguf.*odd\.gguf"):
        default_model_for(sig(DOMAIN_PDDL.replace("pick-up", "grab")), domain_name="x", dirs=[model_dir])


def test_an_explicit_model_is_checked_against_its_recorded_signature(model_dir):
    check_model_signature(model_dir / "bw.gguf", sig(FOUR_OPS_DOMAIN), domain_name="blocksworld-4ops")
    check_model_signature(model_dir / "legacy.gguf", sig(DOMAIN_PDDL.replace("pick-up", "grab")), domain_name="x")
    with pytest.raises(ModelLoadError, match=r"bw\.gguf .*operator grab: extra operator"):
        check_model_signature(model_dir / "bw.gguf", sig(DOMAIN_PDDL.replace("pick-up", "grab")), domain_name="x")


def test_planner_models_folder_comes_first_and_wins_by_file_name(model_dir, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(model_dir))
    assert models_dirs() == [model_dir, package_models_dir()]
    (model_dir / "bw.gguf").rename(model_dir / "blocksworld-q8_0.gguf")
    found = shipped_models()
    assert [i.path for i in found.models if i.path.name == "blocksworld-q8_0.gguf"] == [
        model_dir / "blocksworld-q8_0.gguf"]
    monkeypatch.delenv(MODELS_ENV)
    assert models_dirs() == [package_models_dir()]


def test_the_shipped_model_lives_in_the_package():
    folder = package_models_dir()
    assert folder.parent.name == "planner" and (folder / "README.md").is_file()
    assert default_model_path("blocksworld") == folder / "blocksworld-q8_0.gguf"
    with pytest.raises(ModelLoadError, match="'sokoban'"):
        default_model_path("sokoban")
