"""Build a GGUF-backed world model from configuration, and find the shipped default models.

The shipped models live in the package (``planner/models/``, found through
:mod:`importlib.resources`, so they travel with a wheel); ``$PLANNER_MODELS`` names a folder
searched first. Without an explicit model, a problem gets the shipped model whose recorded
domain signature (:mod:`planner.world.signature`) equals its domain's, whatever the domain is
called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from planner.errors import ModelLoadError, PlannerError
from planner.logs import get_logger
from planner.types import arities_of
from planner.world.base import WorldModel
from planner.world.gguf_io import ModelInfo, read_model_info
from planner.world.signature import DomainSignature, domain_signature, signature_differences

log = get_logger(__name__)

MODELS_ENV = "PLANNER_MODELS"
"""Environment variable naming a folder of models searched before the shipped ones."""

MAX_LISTED_DIFFERENCES = 6
"""Differences quoted in an error message before the rest are only counted."""


def package_models_dir() -> Path:
    """The folder of the models shipped inside the package (``planner/models``)."""
    return Path(str(resources.files("planner") / "models"))


def models_dirs() -> list[Path]:
    """Folders searched for shipped models: ``$PLANNER_MODELS`` (when set), then the package's."""
    dirs = []
    if os.environ.get(MODELS_ENV):
        dirs.append(Path(os.environ[MODELS_ENV]))
    dirs.append(package_models_dir())
    return dirs


@dataclass(frozen=True)
class ShippedModels:
    """The GGUF files found in :func:`models_dirs` (a file name found twice: the first wins).

    Attributes:
        models: the readable ones, with their metadata.
        unreadable: ``"PATH: why"`` for each file that could not be read.
    """

    models: tuple[ModelInfo, ...]
    unreadable: tuple[str, ...]


def shipped_models(dirs: Sequence[Path] | None = None) -> ShippedModels:
    """Read the metadata (not the weights) of every ``*.gguf`` in ``dirs`` (default: :func:`models_dirs`)."""
    seen: set[str] = set()
    models: list[ModelInfo] = []
    unreadable: list[str] = []
    for folder in models_dirs() if dirs is None else dirs:
        for path in sorted(folder.glob("*.gguf")) if folder.is_dir() else []:
            if path.name in seen:
                continue
            seen.add(path.name)
            try:
                models.append(read_model_info(path))
            except PlannerError as exc:
                log.warning("unreadable_model", path=str(path), error=str(exc))
                unreadable.append(f"{path}: {exc}")
    return ShippedModels(tuple(models), tuple(unreadable))


def recorded_signature(info: ModelInfo) -> DomainSignature | None:
    """The domain signature ``info``'s file records (``None``: none recorded).

    Raises :class:`ModelLoadError` naming the file when the record is not a signature.
    """
    if info.signature is None:
        return None
    return DomainSignature.from_json(info.signature, source=str(info.path))


def _listed(differences: Sequence[str]) -> str:
    shown = "; ".join(differences[:MAX_LISTED_DIFFERENCES])
    more = len(differences) - MAX_LISTED_DIFFERENCES
    return shown + (f"; and {more} more" if more > 0 else "")


def default_model_for(signature: DomainSignature, *, domain_name: str,
                      dirs: Sequence[Path] | None = None) -> Path:
    """The shipped model for a domain with ``signature`` (named ``domain_name``).

    The model whose recorded signature equals ``signature``; failing that, a model that records
    no signature but was trained on a domain of the same name (its vocabulary is checked when it
    is bound to the problem). Raises :class:`ModelLoadError` naming the closest shipped model
    and how the domain differs from the one it learned when none fits.
    """
    found = shipped_models(dirs)
    candidates: list[tuple[list[str], ModelInfo]] = []
    unreadable = list(found.unreadable)
    for info in found.models:
        try:
            recorded = recorded_signature(info)
        except ModelLoadError as exc:
            log.warning("unreadable_signature", path=str(info.path), error=str(exc))
            unreadable.append(str(exc))
            continue
        if recorded is None:
            continue
        differences = signature_differences(recorded, signature)
        if not differences:
            return info.path
        candidates.append((differences, info))
    for info in found.models:
        if info.signature is None and info.domain == domain_name:
            return info.path
    raise ModelLoadError(_no_default_message(domain_name, candidates, unreadable, dirs))


def _no_default_message(domain_name: str, candidates: list[tuple[list[str], ModelInfo]], unreadable: list[str],
                        dirs: Sequence[Path] | None) -> str:
    where = ", ".join(map(str, models_dirs() if dirs is None else dirs))
    message = f"no shipped world model knows domain {domain_name!r} (searched {where})"
    if candidates:
        differences, closest = min(candidates, key=lambda c: (len(c[0]), c[1].path.name))
        message += (f"; the closest, {closest.path.name} (trained on {closest.domain!r}), differs "
                    f"(model vs domain): {_listed(differences)}")
    if unreadable:
        message += f"; unreadable: {_listed(unreadable)}"
    return message + "; pass --model PATH.gguf or --oracle"


def check_model_signature(path: str | Path, signature: DomainSignature, *, domain_name: str) -> None:
    """Refuse the model at ``path`` for a domain whose signature differs from the recorded one.

    A model that records no signature passes here (its vocabulary is checked when it is bound
    to the problem). Raises :class:`ModelLoadError` naming the file and the differences.
    """
    info = read_model_info(path)
    recorded = recorded_signature(info)
    if recorded is None:
        return
    differences = signature_differences(recorded, signature)
    if differences:
        raise ModelLoadError(
            f"{path} was trained on domain {info.domain!r}, which differs from domain {domain_name!r} "
            f"(model vs domain): {_listed(differences)}")


def default_model_path(domain: str) -> Path:
    """The shipped model trained on the domain named ``domain`` (by its recorded name).

    Raises :class:`ModelLoadError` listing the shipped models when none is.
    """
    found = shipped_models()
    for info in found.models:
        if info.domain == domain:
            return info.path
    shipped = ", ".join(sorted(f"{i.path.name} ({i.domain})" for i in found.models)) or "none"
    raise ModelLoadError(f"no shipped world model was trained on domain {domain!r} (shipped: {shipped}); "
                         f"searched {', '.join(map(str, models_dirs()))}")


def model_path_for(env: Any, path: str | Path | None = None) -> Path:
    """The GGUF file a world model for ``env`` comes from: ``path`` (for a
    :class:`~planner.env.pddl.PDDLEnvironment`, checked against the signature the file records
    for its domain), or with ``path=None`` the shipped model for the domain's signature, or for
    any other environment the shipped model whose recorded domain is its ``world_model_domain``.

    Raises :class:`ModelLoadError` when no shipped model fits or the named one's signature
    differs from the domain's (naming how)."""
    from planner.env.pddl import PDDLEnvironment

    if not isinstance(env, PDDLEnvironment):
        if path is not None:
            return Path(path)
        domain = getattr(env, "world_model_domain", None)
        if not isinstance(domain, str):
            raise ModelLoadError(f"no shipped world model for {type(env).__name__}, an environment without a "
                                 "PDDL domain: name a learned one (planner learn writes DIR/model-q8_0.gguf)")
        return default_model_path(domain)
    task = env.task
    signature = domain_signature(task.domain)
    if path is None:
        return Path(default_model_for(signature, domain_name=task.domain_name))
    check_model_signature(path, signature, domain_name=task.domain_name)
    return Path(path)


def load_gguf_world_model(env: Any, *, path: str | Path | None = None, server: str | None = None,
                          **kwargs: Any) -> WorldModel:
    """The GGUF world model at ``path`` for ``env``: a :class:`~planner.env.pddl.PDDLEnvironment`
    (signature and vocabulary checked against its domain; ``path=None``: the shipped model for
    the domain's signature), or any environment with symbolic states (see
    :func:`bind_environment_model`; ``reset_seed`` is its keyword; ``path=None``: the shipped
    model whose recorded domain is the environment's ``world_model_domain``); other ``kwargs`` go to
    :class:`~planner.world.llama.LlamaWorldModel` (``n_ctx``, ``n_threads``, ``n_gpu_layers``,
    …; ``on_invalid`` defaults to ``"reject"``, as the planner uses a model). With ``server`` (a
    URL), the same file is answered by that llama.cpp server instead
    (:class:`~planner.world.remote.RemoteWorldModel`: ``concurrency``, ``timeout``, …; the
    in-process arguments ``n_ctx``, ``n_threads``, ``n_gpu_layers`` are the server's own).

    Raises :class:`ModelLoadError` naming the path and the cause; for a model that records
    the signature of its domain, the cause names how the problem's domain differs from it.
    """
    from planner.env.pddl import PDDLEnvironment
    from planner.world.llama import LlamaWorldModel

    path = model_path_for(env, path)
    if not isinstance(env, PDDLEnvironment):
        return bind_environment_model(path, env, server=server, **kwargs)
    kwargs.pop("reset_seed", None)
    kwargs.setdefault("on_invalid", "reject")
    if server is not None:
        from planner.world.remote import RemoteWorldModel

        return RemoteWorldModel.for_environment(path, env, url=server, **_remote_kwargs(kwargs))
    return LlamaWorldModel.for_environment(path, env, **kwargs)


def _arities_of(texts: Sequence[str], what: str, path: str | Path) -> dict[str, int]:
    """name → arity of Lisp forms; :class:`VocabularyError` naming one used with two arities."""
    from planner.errors import VocabularyError

    def conflict(name: str, first: int, other: int, text: str) -> VocabularyError:
        return VocabularyError(f"{path}: the environment uses {what} {name} with {first} and "
                               f"{other} arguments ({text})")

    return arities_of(texts, conflict=conflict)


def environment_vocabulary_problems(info: ModelInfo, *, facts: Sequence[str], actions: Sequence[str],
                                    objects: Sequence[str]) -> list[str]:
    """What the model ``info`` describes cannot write of a problem, one finding each: predicates
    and actions it does not know (by name and arity) and more objects than its placeholders.
    Empty when it can write all of it."""
    problems: list[str] = []
    for what, have, texts in (("predicate", info.predicates, facts), ("action", info.actions, actions)):
        for name, arity in sorted(_arities_of(texts, what, info.path).items()):
            if name not in have:
                problems.append(f"unknown {what} {name}/{arity}")
            elif have[name] != arity:
                problems.append(f"{what} {name} has {arity} arguments here but {have[name]} in the model")
    if len(objects) > info.max_objects:
        problems.append(f"{len(objects)} objects ({', '.join(objects)}), more than the model's {info.max_objects}")
    return problems


def environment_problem(info: ModelInfo, env: Any, *, reset_seed: int = 0) -> dict[str, Any]:
    """The problem of ``env.reset(seed=reset_seed)`` as a fact-delta model binds it: the
    keyword arguments ``objects``, ``goal``, ``state`` and ``actions`` of
    :class:`~planner.world.llama.LlamaWorldModel` (and of its ``rebind``).

    Objects are those named in the start state's facts, the goal's and the candidate actions,
    and those the environment declares (:func:`planner.env.base.episode_objects`); the goal is
    ``env.goal`` when a :class:`~planner.types.FactGoal` (else an empty one: the model never
    judges ``done``). Raises :class:`ModelLoadError` for a text state and
    :class:`~planner.errors.VocabularyError` naming every predicate and action (name/arity) the
    model does not know and an object count above its placeholders.
    """
    from planner.env.base import episode_objects
    from planner.errors import VocabularyError
    from planner.types import FactGoal

    state, _ = env.reset(seed=reset_seed)
    if not state.is_symbolic:
        raise ModelLoadError(f"{info.path}: a fact-delta model needs symbolic states, but "
                             f"{type(env).__name__}.reset() gave text ({state.text!r:.60})")
    goal = env.goal if isinstance(env.goal, FactGoal) else FactGoal(frozenset())
    actions = list(env.candidate_actions(state))
    facts = sorted({*state.facts, *goal.facts})
    objects = episode_objects(env, facts, actions)
    problems = environment_vocabulary_problems(info, facts=facts, actions=[a.name for a in actions],
                                               objects=objects)
    if problems:
        raise VocabularyError(f"{info.path} (trained on {info.domain!r}) cannot serve {type(env).__name__}",
                              problems=problems)
    return {"objects": objects, "goal": goal, "state": state, "actions": actions}


def bind_environment_model(path: str | Path, env: Any, *, reset_seed: int = 0, server: str | None = None,
                           **kwargs: Any) -> WorldModel:
    """The fact-delta GGUF model at ``path`` bound to ``env``, any environment with symbolic
    states (a learned model: ``planner learn``), for the problem of
    ``env.reset(seed=reset_seed)`` (see :func:`environment_problem`). The environment's
    signature is unknown, so a signature recorded in the model is not compared. ``kwargs`` go
    to :class:`~planner.world.llama.LlamaWorldModel` (``on_invalid`` defaults to ``"reject"``),
    or with ``server`` (a URL) to :class:`~planner.world.remote.RemoteWorldModel`.

    Raises :class:`ModelLoadError` for a file that is not a fact-delta model or a text state,
    and :class:`~planner.errors.VocabularyError` for a problem its vocabulary cannot write.
    """
    from planner.world.llama import LlamaWorldModel, check_codec

    info = read_model_info(path)
    check_codec(info)
    problem = environment_problem(info, env, reset_seed=reset_seed)
    kwargs.setdefault("on_invalid", "reject")
    if server is not None:
        from planner.world.remote import RemoteWorldModel

        return RemoteWorldModel(path, url=server, **problem, **_remote_kwargs(kwargs))
    return LlamaWorldModel(path, **problem, **kwargs)


IN_PROCESS_ONLY = ("n_ctx", "n_threads", "n_gpu_layers", "mode", "max_siblings")
"""Arguments of the in-process model that a served model leaves to its server."""


def _remote_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in IN_PROCESS_ONLY}
