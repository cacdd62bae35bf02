"""What a PDDL domain is, whatever its file calls it: the domain signature.

A signature lists the domain's types, constants, predicates (with the type of each argument)
and operators. Each operator is written by parameter position: its parameter types, and its
precondition, add and delete effects as atoms such as ``on(?0,?1)`` (``?i`` is the operator's
parameter ``i``, counting from 0; any other argument is a constant of the domain; a nullary
atom is its bare name, ``handempty``). Every list is sorted.

So two domain files that differ only in the domain's name, the parameter variables' names,
whitespace, comments, letter case or the order of declarations have equal signatures, and a
real difference (a precondition more or less, another effect, an extra operator, another
arity) makes them differ. The domain's name is not part of a signature: a model records it
separately (``planner.domain``), for people to read.

A world model records the signature of the domain it learned in its GGUF metadata
(``planner.signature``, a JSON object: :meth:`DomainSignature.to_json`), so the planner can
tell whether a problem's domain is the one the model knows (:func:`signature_differences`).
:func:`stamp_signature` adds that record to an existing GGUF file without touching anything
else in it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from planner.errors import DomainError, ModelLoadError, ModelWriteError
from planner.io import atomic_output
from planner.world.gguf_io import KEY_SIGNATURE

if TYPE_CHECKING:
    import gguf

SIGNATURE_VERSION = 1
"""Version of the signature format described in this module."""

ROOT_TYPE = "object"
"""PDDL's implicit root type; the type of every untyped parameter and argument."""

_VIRTUAL_GGUF_FIELDS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")
"""Fields :class:`gguf.GGUFReader` reports that are the header's, not metadata."""


class OperatorSignature(BaseModel):
    """One operator of a domain, by parameter position.

    Attributes:
        parameters: the type of each parameter, in order (``"object"`` when untyped; a
            parameter of several types is written ``"a|b"``, sorted).
        precondition: atoms that must hold, sorted (``"clear(?1)"``).
        add: atoms the operator makes true, sorted.
        delete: atoms the operator makes false, sorted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    parameters: tuple[str, ...] = ()
    precondition: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()

    @field_validator("precondition", "add", "delete", mode="before")
    @classmethod
    def _sorted(cls, value: Any) -> Any:
        """Atom lists are sets: keep them sorted, so equal sets compare equal."""
        return tuple(sorted(value)) if isinstance(value, list | tuple | set | frozenset) else value


def _root_only() -> dict[str, str | None]:
    """The types of an untyped domain."""
    return {ROOT_TYPE: None}


class DomainSignature(BaseModel):
    """What a PDDL domain is: see the module's description.

    Attributes:
        version: the signature format (:data:`SIGNATURE_VERSION`).
        types: type name → parent type name (``None`` for the root type ``object``).
        constants: constant name → type name.
        predicates: predicate name → the type of each argument (its length is the arity).
        operators: operator name → :class:`OperatorSignature`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(SIGNATURE_VERSION, ge=1)
    types: dict[str, str | None] = Field(default_factory=_root_only)
    constants: dict[str, str] = Field(default_factory=dict)
    predicates: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    operators: dict[str, OperatorSignature] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The signature as a JSON-ready object, keys sorted (what a GGUF file records)."""
        data: dict[str, Any] = json.loads(json.dumps(self.model_dump(mode="json"), sort_keys=True))
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str) -> DomainSignature:
        """A signature read back from JSON; :class:`ModelLoadError` naming ``source`` and the
        bad value when ``data`` is not one."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise ModelLoadError(
                f"invalid domain signature in {source}: {where}: {first['msg']} "
                f"(got {_short(first.get('input'))})") from None


def _short(value: Any, *, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- from a parsed domain --------------------------------------------------------------------


def domain_signature(domain: Any) -> DomainSignature:
    """The signature of a domain parsed by pyperplan (``pyperplan.pddl.pddl.Domain``).

    Raises :class:`DomainError` naming the operator and the variable when an operator's body
    uses a variable that is not one of its parameters.
    """
    return DomainSignature(
        types={str(name): _parent_name(t) for name, t in domain.types.items()},
        constants={str(name): str(t) for name, t in domain.constants.items()},
        predicates={str(name): tuple(_type_name(types) for _, types in p.signature)
                    for name, p in domain.predicates.items()},
        operators={str(name): _operator_signature(action) for name, action in domain.actions.items()},
    )


def _parent_name(pddl_type: Any) -> str | None:
    if str(pddl_type) == ROOT_TYPE or pddl_type.parent is None:
        return None
    return str(pddl_type.parent)


def _type_name(types: Iterable[Any]) -> str:
    """``"block"``, or ``"block|table"`` for a value of either type."""
    return "|".join(sorted({str(t) for t in types})) or ROOT_TYPE


def _operator_signature(action: Any) -> OperatorSignature:
    position = {var: i for i, (var, _) in enumerate(action.signature)}

    def atoms(predicates: Iterable[Any]) -> tuple[str, ...]:
        return tuple(sorted({_atom(p, position, operator=action.name) for p in predicates}))

    return OperatorSignature(
        parameters=tuple(_type_name(types) for _, types in action.signature),
        precondition=atoms(action.precondition),
        add=atoms(action.effect.addlist),
        delete=atoms(action.effect.dellist),
    )


def _atom(predicate: Any, position: Mapping[str, int], *, operator: str) -> str:
    """``on(?0,?1)`` for ``(on ?x ?y)`` in an operator with parameters ``(?x ?y)``."""
    args = []
    for name, _ in predicate.signature:
        if name in position:
            args.append(f"?{position[name]}")
        elif str(name).startswith("?"):
            raise DomainError(
                f"operator {operator}: variable {name} in ({predicate.name} …) is not one of its parameters "
                f"({', '.join(position) or 'none'})")
        else:
            args.append(str(name))
    return f"{predicate.name}({','.join(args)})" if args else str(predicate.name)


# -- comparing -------------------------------------------------------------------------------


def signature_differences(expected: DomainSignature, actual: DomainSignature) -> list[str]:
    """How ``actual`` differs from ``expected``, one line each; empty when they are equal.

    ``"missing"`` names what ``expected`` has and ``actual`` lacks, ``"extra"`` the reverse,
    and ``"A vs B"`` gives ``expected``'s value, then ``actual``'s. For example
    ``"operator stack: precondition clear(?1) missing"``, ``"predicate on: arity 2 vs 3"``,
    ``"operator fly: extra operator"``.
    """
    found: list[str] = []
    if expected.version != actual.version:
        found.append(f"signature format {expected.version} vs {actual.version}")
    found += _named_differences("type", expected.types, actual.types, _value_difference("parent"))
    found += _named_differences("constant", expected.constants, actual.constants, _value_difference("type"))
    found += _named_differences("predicate", expected.predicates, actual.predicates, _argument_differences)
    found += _named_differences("operator", expected.operators, actual.operators, _operator_differences)
    return found


_Compare = Callable[[Any, Any], list[str]]


def _named_differences(kind: str, expected: Mapping[str, Any], actual: Mapping[str, Any],
                       compare: _Compare) -> list[str]:
    """Entries missing from ``actual``, extra in it, then how shared entries differ."""
    found = [f"{kind} {name}: missing {kind}" for name in sorted(set(expected) - set(actual))]
    found += [f"{kind} {name}: extra {kind}" for name in sorted(set(actual) - set(expected))]
    for name in sorted(set(expected) & set(actual)):
        found += [f"{kind} {name}: {line}" for line in compare(expected[name], actual[name])]
    return found


def _value_difference(what: str) -> _Compare:
    def compare(a: Any, b: Any) -> list[str]:
        return [] if a == b else [f"{what} {a} vs {b}"]

    return compare


def _argument_differences(a: Sequence[str], b: Sequence[str], *, count: str = "arity",
                          types: str = "types") -> list[str]:
    """Differences of two argument (or parameter) type lists: their length, else their types."""
    if len(a) != len(b):
        return [f"{count} {len(a)} vs {len(b)}"]
    if tuple(a) != tuple(b):
        return [f"{types} ({', '.join(a)}) vs ({', '.join(b)})"]
    return []


def _operator_differences(a: OperatorSignature, b: OperatorSignature) -> list[str]:
    found = _argument_differences(a.parameters, b.parameters, count="parameters", types="parameter types")
    for part, label in (("precondition", "precondition"), ("add", "add effect"), ("delete", "delete effect")):
        mine, theirs = set(getattr(a, part)), set(getattr(b, part))
        found += [f"{label} {atom} missing" for atom in sorted(mine - theirs)]
        found += [f"extra {label} {atom}" for atom in sorted(theirs - mine)]
    return found


# -- recording a signature in an existing GGUF file ------------------------------------------


def stamp_signature(path: str | Path, signature: DomainSignature, *, out: str | Path | None = None) -> Path:
    """Record ``signature`` in the GGUF file ``path`` (as ``planner.signature``).

    Writes ``out`` (default: ``path`` itself, replaced atomically). Every other metadata key
    and every tensor (quantized ones included) is copied unchanged, which is checked before
    the file is put in place; an existing signature is replaced. The result depends only on
    the input file and ``signature``, so stamping again gives the same bytes.

    Raises :class:`ModelLoadError` when ``path`` is not a readable GGUF file and
    :class:`ModelWriteError` when the copy does not hold the same metadata and tensors.
    """
    text = json.dumps(signature.to_json(), sort_keys=True)
    return rewrite_with_metadata(path, out if out is not None else path, key=KEY_SIGNATURE, value=text)


def rewrite_with_metadata(src: str | Path, dst: str | Path, *, key: str, value: str) -> Path:
    """Copy the GGUF file ``src`` to ``dst`` with the string metadata ``key`` set to ``value``.

    The key keeps its place when ``src`` has it and comes after every other key otherwise.
    ``dst`` is written atomically, and only after the copy was checked to hold ``src``'s
    other metadata and its tensor bytes unchanged (:class:`ModelWriteError` if not).
    """
    import gguf

    reader = _open_gguf(src)
    with atomic_output(dst) as tmp:
        _write_copy(reader, tmp, key=key, value=value)
        problems = _copy_problems(reader, gguf.GGUFReader(str(tmp)), key=key, value=value)
        if problems:
            raise ModelWriteError(f"copying {src} with a new {key} changed it: {'; '.join(problems[:5])}")
    return Path(dst)


def _open_gguf(path: str | Path) -> gguf.GGUFReader:
    import gguf

    try:
        return gguf.GGUFReader(str(path))
    except FileNotFoundError:
        raise ModelLoadError(f"model file not found: {path}") from None
    except Exception as exc:  # the reader raises ValueError, OSError, struct errors
        raise ModelLoadError(f"not a readable GGUF file {path}: {type(exc).__name__}: {exc}") from None


def _metadata_fields(reader: gguf.GGUFReader) -> list[Any]:
    """The key-value fields a writer must repeat (the architecture is written by the writer)."""
    return [f for f in reader.fields.values()
            if f.name not in _VIRTUAL_GGUF_FIELDS and f.name != "general.architecture"]


def _write_copy(reader: gguf.GGUFReader, tmp: Path, *, key: str, value: str) -> None:
    import gguf

    arch = reader.fields["general.architecture"].contents() if "general.architecture" in reader.fields else "llama"
    writer = gguf.GGUFWriter(str(tmp), str(arch), endianess=reader.endianess)
    writer.data_alignment = reader.alignment
    placed = False
    for field in _metadata_fields(reader):
        if field.name == key:
            writer.add_string(key, value)
            placed = True
            continue
        kind = field.types[0]
        sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub_type)
    if not placed:
        writer.add_string(key, value)
    for tensor in reader.tensors:
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes,
                               tensor.tensor_type)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor in reader.tensors:
            writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    finally:
        writer.close()


def _copy_problems(src: gguf.GGUFReader, dst: gguf.GGUFReader, *, key: str, value: str) -> list[str]:
    """What differs between ``src`` and its copy ``dst``, apart from ``key`` being ``value``."""
    problems = []
    before = {f.name: (list(f.types), f.contents()) for f in _metadata_fields(src) if f.name != key}
    after = {f.name: (list(f.types), f.contents()) for f in _metadata_fields(dst) if f.name != key}
    problems += [f"metadata {name} changed" for name in sorted(set(before) | set(after))
                 if before.get(name) != after.get(name)]
    if key not in dst.fields or dst.fields[key].contents() != value:
        problems.append(f"metadata {key} not written")
    if [t.name for t in src.tensors] != [t.name for t in dst.tensors]:
        problems.append("tensor names or order changed")
    for a, b in zip(src.tensors, dst.tensors):
        if a.tensor_type != b.tensor_type or list(a.shape) != list(b.shape) or a.data.tobytes() != b.data.tobytes():
            problems.append(f"tensor {a.name} changed")
    return problems
