"""Environments by name or path, in Gymnasium's style: ``make("blocksworld-v0", seed=3)``.

Two forms name an environment:

- a registered id such as ``"blocksworld-v0"`` (see :func:`register` and :func:`registered`);
- a path form ``"PATH.py:FACTORY"``: the module at ``PATH.py`` is loaded from its file and
  ``FACTORY(seed=seed, **kwargs)`` is called; it must return an object following the
  :class:`~planner.protocols.Environment` protocol.

Built-in ids:

- ``blocksworld-v0``: a generated Blocksworld problem (keyword ``blocks``, default 5; the seed
  picks the problem), played through :class:`~planner.env.pddl.PDDLEnvironment`.
- ``pddl-v0``: any PDDL problem, STRIPS or beyond (keywords ``domain`` and ``problem``, file
  paths; or ``problems``, a folder or a glob pattern, of which the seed picks one file).
- ``gripper-v0``, ``logistics-v0``, ``briefcase-v0``: generated problems of IPC domain
  families (see :mod:`planner.env.ipc`; the seed picks the problem, keywords set the size).
- ``frozenlake-v0``: Gymnasium's FrozenLake-v1 (needs the ``gym`` extra); see
  :func:`planner.env.gym.make_frozenlake`.
- ``household-v0``: a household game generated offline from the ``alfworld`` package's scenes,
  played by TextWorld's PDDL engine (needs the ``household`` extra); see
  :mod:`planner.env.household`.
- ``lab-v0``: a variation of a discrete ScienceWorld task (needs the ``lab`` extra and
  ``java``); see :mod:`planner.env.lab`.
- ``cooking-v0``: a TextWorld cooking game generated offline, text-only states (needs the
  ``household`` extra); see :mod:`planner.env.cooking`.

Errors: an unknown id, a bad keyword argument, a missing file or factory raise
:class:`ConfigError`; a factory or module that raises, or a factory whose result breaks the
protocol, raise :class:`EnvironmentCheckError` naming the source, the keyword arguments and the
last line of the traceback. A :class:`PlannerError` raised by a factory passes through as is
(it names its bad value already).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from planner.errors import ConfigError, EnvironmentCheckError, PlannerError
from planner.protocols import Environment, Goal

EnvFactory = Callable[..., Environment]
"""``factory(*, seed: int, **kwargs) -> Environment``: builds one environment."""

PATH_SEPARATOR = ":"
"""Separates the file from the factory's name in the path form ``PATH.py:FACTORY``."""

MAX_KWARGS_SHOWN = 200
"""Longest rendering (characters) of keyword arguments quoted in an error message."""


@dataclass(frozen=True, slots=True)
class EnvSpec:
    """A registered environment.

    Attributes:
        name: the id, e.g. ``"blocksworld-v0"``.
        factory: called as ``factory(seed=seed, **kwargs)``; returns the environment.
        description: one line shown when listing environments.
    """

    name: str
    factory: EnvFactory
    description: str = ""


_REGISTRY: dict[str, EnvSpec] = {}


def register(name: str, factory: EnvFactory, *, description: str = "", replace: bool = False) -> EnvSpec:
    """Register ``factory`` under the id ``name`` (Gymnasium style: ``"my-cell-v0"``).

    Raises :class:`ConfigError` for an id that is empty, holds whitespace or ``":"`` or ends in
    ``.py`` (those read as paths), a factory that is not callable, or an id already registered
    with another factory (unless ``replace``).
    """
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ConfigError(f"environment id must be a non-empty string without spaces, got {name!r}")
    if PATH_SEPARATOR in name or name.endswith(".py"):
        raise ConfigError(f"environment id {name!r} reads as a path (PATH.py:FACTORY); choose an id "
                          "without ':' that does not end in .py")
    if not callable(factory):
        raise ConfigError(f"factory for {name!r} must be callable, got {type(factory).__name__}")
    old = _REGISTRY.get(name)
    if old is not None and old.factory is not factory and not replace:
        raise ConfigError(f"environment id {name!r} is already registered ({_describe(old.factory)}); "
                          "pass replace=True to replace it")
    spec = EnvSpec(name=name, factory=factory, description=str(description))
    _REGISTRY[name] = spec
    return spec


def registered() -> Mapping[str, EnvSpec]:
    """The registered environments by id (a read-only view, sorted by id)."""
    return MappingProxyType(dict(sorted(_REGISTRY.items())))


def make(name_or_path: str, *, seed: int = 0, **kwargs: Any) -> Environment:
    """The environment named by a registered id or by ``"PATH.py:FACTORY"``.

    Args:
        name_or_path: a registered id (``"blocksworld-v0"``) or ``"PATH.py:FACTORY"``.
        seed: passed to the factory as ``seed=``; picks the problem where the environment
            generates one (equal seeds give equal resets).
        **kwargs: passed on to the factory (``blocks=4`` for ``blocksworld-v0``).

    Raises :class:`ConfigError` or :class:`EnvironmentCheckError` as the module says.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be a whole number, got {seed!r}")
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ConfigError(f"environment must be a registered id or PATH.py:FACTORY, got {name_or_path!r}")
    if is_path_form(name_or_path):
        factory = load_factory(name_or_path)
    else:
        factory = _lookup(name_or_path).factory
    return _build(factory, name_or_path, seed=seed, kwargs=kwargs)


def accepts(name_or_path: str, keyword: str) -> bool:
    """Whether the factory of a registered id or ``PATH.py:FACTORY`` takes the keyword
    argument ``keyword`` (``"split"``: environments whose held-out variations are chosen by
    name, as ``household-v0``'s scenes are). Errors as :func:`make`'s."""
    factory = load_factory(name_or_path) if is_path_form(name_or_path) else _lookup(name_or_path).factory
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return keyword in parameters


def split_aware(name_or_path: str, kwargs: Mapping[str, Any],
                ranges: Mapping[str, range]) -> Callable[[int], Environment]:
    """``seed -> environment`` for seeds named by split (``planner learn``, ``planner collect``
    and their worker jobs): when the factory takes a ``split`` keyword argument and ``kwargs``
    does not set it, each seed is built with the name of the split whose range holds it
    (``train``, ``val``, ``test``; a seed in none of them: ``train``), so held-out seeds play
    held-out variations (``household-v0``'s scenes). ``kwargs`` may set ``split`` only to the
    one split ``ranges`` name: seeds named for one split but played in another would put
    held-out variations in training data, or the reverse (:class:`ConfigError` naming both).
    Errors of :func:`accepts` too."""
    kwargs = dict(kwargs)
    if not accepts(name_or_path, "split"):
        return lambda s: make(name_or_path, seed=s, **kwargs)
    if "split" in kwargs:
        other = [name for name in ranges if name != kwargs["split"]]
        if other:
            seeds = ranges[other[0]]
            span = str(seeds.start) if len(seeds) == 1 else f"{seeds.start}-{seeds.stop - 1}"
            raise ConfigError(f"--env-arg split={kwargs['split']} plays every seed in the {kwargs['split']} split, "
                              f"but --seeds names {other[0]}={span}: drop --env-arg split (each seed is then "
                              f"played in the split that names it), or name the seeds {kwargs['split']}=…")
        return lambda s: make(name_or_path, seed=s, **kwargs)

    def build(seed: int) -> Environment:
        split = next((name for name, seeds in ranges.items() if seed in seeds), "train")
        return make(name_or_path, seed=seed, split=split, **kwargs)

    return build


def is_path_form(text: str) -> bool:
    """True when ``text`` names a file (``PATH.py:FACTORY``, or a bare ``PATH.py``) rather than an id."""
    return PATH_SEPARATOR in text or text.endswith(".py")


def _lookup(name: str) -> EnvSpec:
    spec = _REGISTRY.get(name)
    if spec is None:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ConfigError(f"unknown environment {name!r}; registered: {known} (or give PATH.py:FACTORY)")
    return spec


# -- the path form ----------------------------------------------------------------------------
def split_path_form(text: str) -> tuple[Path, str]:
    """``"dir/cell.py:make_cell"`` → ``(Path("dir/cell.py"), "make_cell")``.

    Raises :class:`ConfigError` when the factory name is missing or not an identifier, or the
    file does not end in ``.py``.
    """
    path_text, sep, factory = text.rpartition(PATH_SEPARATOR)
    if not sep:
        raise ConfigError(f"{text!r}: name the factory too, as PATH.py:FACTORY")
    if not factory.isidentifier():
        raise ConfigError(f"{text!r}: factory name {factory!r} is not a Python identifier (PATH.py:FACTORY)")
    path = Path(path_text)
    if path.suffix != ".py":
        raise ConfigError(f"{text!r}: {path} is not a Python file (PATH.py:FACTORY needs a .py file)")
    return path, factory


def load_factory(text: str) -> EnvFactory:
    """The callable ``FACTORY`` of the file named by ``"PATH.py:FACTORY"``.

    Raises :class:`ConfigError` for a missing file or factory, or one that is not callable;
    :class:`EnvironmentCheckError` when the module raises while it is loaded.
    """
    path, name = split_path_form(text)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise ConfigError(f"environment file {what}: {path} (from {text!r})")
    module = load_module(path)
    if not hasattr(module, name):
        callables = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                           and getattr(v, "__module__", None) == module.__name__)
        raise ConfigError(f"{path} has no {name!r}; callables defined there: {', '.join(callables) or 'none'}")
    factory = getattr(module, name)
    if not callable(factory):
        raise ConfigError(f"{path}:{name} is not callable (it is a {type(factory).__name__}); "
                          "it must be a function FACTORY(seed, **kwargs) -> Environment")
    return factory  # type: ignore[no-any-return]


def load_module(path: Path) -> ModuleType:
    """Load the Python file ``path`` as a fresh module (not added to the import path).

    The module is registered in ``sys.modules`` under a name derived from its resolved path
    while it runs (dataclasses need that) and stays there afterwards. Raises
    :class:`EnvironmentCheckError` with the traceback's last line when the file raises,
    :class:`ConfigError` when it cannot be read.
    """
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode("utf-8")).hexdigest()[:12]
    module_name = f"_planner_env_{_identifier(resolved.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a loader
        raise ConfigError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except OSError as exc:
        sys.modules.pop(module_name, None)
        raise ConfigError(f"cannot read environment file {path}: {exc.strerror or exc}") from None
    except (Exception, SystemExit) as exc:  # user code: an exit is a failure to load, not ours
        sys.modules.pop(module_name, None)
        raise EnvironmentCheckError([f"loading {path} raised {_last_line(exc)}"]) from exc
    return module


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text) or "module"


# -- building and checking --------------------------------------------------------------------
def _build(factory: EnvFactory, source: str, *, seed: int, kwargs: dict[str, Any]) -> Environment:
    """Call ``factory(seed=seed, **kwargs)`` and check what it returns (cheaply)."""
    _check_arguments(factory, source, seed=seed, kwargs=kwargs)
    call = f"{source}(seed={seed}{_render_kwargs(kwargs)})"
    try:
        env = factory(seed=seed, **kwargs)
    except PlannerError:
        raise
    except (Exception, SystemExit) as exc:
        raise EnvironmentCheckError([f"{call} raised {_last_line(exc)}"]) from exc
    check_protocol(env, source=call)
    return env


def _check_arguments(factory: EnvFactory, source: str, *, seed: int, kwargs: dict[str, Any]) -> None:
    """:class:`ConfigError` naming the keyword arguments ``factory`` does not accept."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature: let the call decide
        return
    try:
        signature.bind(seed=seed, **kwargs)
    except TypeError as exc:
        accepted = [p.name for p in signature.parameters.values()
                    if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "seed"]
        raise ConfigError(f"{source}: bad arguments (seed={seed}{_render_kwargs(kwargs)}): {exc}; "
                          f"it accepts seed and {', '.join(accepted) or 'no keyword arguments'}") from None


def check_protocol(env: Any, *, source: str) -> None:
    """Cheap structural check of an environment (no reset, no step): the protocol's methods
    are callable and ``goal`` has ``satisfied()`` and ``progress()``. Raises
    :class:`EnvironmentCheckError` naming ``source`` and every problem found.
    """
    problems = [f"{source} returned a {type(env).__name__} without a callable {name}()"
                for name in ("reset", "step", "candidate_actions") if not callable(getattr(env, name, None))]
    try:
        goal = env.goal
    except AttributeError:
        problems.append(f"{source} returned a {type(env).__name__} without a goal attribute")
    except Exception as exc:
        problems.append(f"{source}: reading .goal raised {_last_line(exc)}")
    else:
        if not isinstance(goal, Goal):
            problems.append(f"{source}: goal must have satisfied() and progress(), got {type(goal).__name__}")
    if problems:
        raise EnvironmentCheckError(problems)


def _last_line(exc: BaseException) -> str:
    """The last line of ``exc``'s formatted traceback, e.g. ``"ValueError: bad size 3"``."""
    lines = traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).strip().splitlines()
    return text[-1].strip() if text else type(exc).__name__


def _render_kwargs(kwargs: Mapping[str, Any]) -> str:
    text = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    return text if len(text) <= MAX_KWARGS_SHOWN else text[: MAX_KWARGS_SHOWN - 1] + "…"


def _describe(factory: Callable[..., Any]) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


# -- built-in environments --------------------------------------------------------------------
def make_blocksworld(*, seed: int = 0, blocks: int = 5, max_steps: int | None = None) -> Environment:
    """A generated Blocksworld problem of ``blocks`` blocks (2..50) picked by ``seed``.

    The PDDL files live in a private temporary folder removed when the environment is
    garbage-collected. ``max_steps``: truncate the episode after this many real steps.
    """
    from planner.env.blocksworld import DOMAIN_PDDL, generate_problem
    from planner.env.pddl import environment_from_text

    return environment_from_text(DOMAIN_PDDL, generate_problem(blocks, seed=seed), name="blocksworld",
                                 max_steps=max_steps)


def make_pddl(*, seed: int = 0, domain: str | Path, problem: str | Path | None = None,
              problems: str | Path | None = None, strict: bool = False,
              max_steps: int | None = None) -> Environment:
    """The PDDL problem in the files ``domain`` and ``problem`` (STRIPS or beyond, see
    :class:`~planner.env.pddl.PDDLEnvironment`).

    Instead of ``problem``, ``problems`` names a folder (its ``*.pddl`` files but the domain)
    or a glob pattern (``"probs/p*.pddl"``); the files are sorted by name and ``seed`` picks
    one (``seed % count``). Otherwise ``seed`` is ignored: PDDL problems are deterministic.
    ``strict``: raise on inapplicable actions; ``max_steps``: truncate after this many real
    steps. Raises :class:`ConfigError` unless exactly one of ``problem`` and ``problems`` is
    given, or when ``problems`` matches no file.
    """
    from planner.env.pddl import PDDLEnvironment

    if (problem is None) == (problems is None):
        raise ConfigError("pddl-v0 needs exactly one of problem=PATH and problems=DIR|GLOB, got "
                          + ("both" if problem is not None else "neither"))
    if problems is not None:
        files = problem_files(problems, domain=domain)
        return PDDLEnvironment(domain, files[seed % len(files)], strict=strict, max_steps=max_steps)
    return PDDLEnvironment(domain, Path(str(problem)), strict=strict, max_steps=max_steps)


def problem_files(pattern: str | Path, *, domain: str | Path | None = None) -> list[Path]:
    """The problem files a folder holds (``*.pddl``) or a glob pattern matches, sorted by
    path, ``domain`` left out; :class:`ConfigError` naming ``pattern`` when there is none."""
    root = Path(pattern)
    if root.is_dir():
        found = sorted(root.glob("*.pddl"))
    else:
        anchor = Path(root.anchor) if root.is_absolute() else Path()
        relative = str(root.relative_to(anchor)) if root.is_absolute() else str(root)
        found = sorted(anchor.glob(relative)) if relative not in ("", ".") else []
    skip = Path(domain).resolve() if domain is not None else None
    files = [f for f in found if f.is_file() and f.resolve() != skip]
    if not files:
        raise ConfigError(f"problems={str(pattern)!r} names no problem file (a folder of .pddl files or a glob "
                          "pattern such as probs/p*.pddl)")
    return files


def _register_builtins() -> None:
    register("blocksworld-v0", make_blocksworld,
             description="generated Blocksworld problem (blocks=5; the seed picks the problem)")
    register("pddl-v0", make_pddl,
             description="a PDDL problem (domain=PATH, problem=PATH or problems=DIR|GLOB: the seed picks one)")
    from planner.env.ipc.briefcase import make_briefcase
    from planner.env.ipc.gripper import make_gripper
    from planner.env.ipc.logistics import make_logistics

    register("gripper-v0", make_gripper,
             description="IPC-1998 Gripper, STRIPS (balls=4; seed 0 is the IPC problem, others are drawn)")
    register("logistics-v0", make_logistics,
             description="IPC-2000 Logistics, typed (cities=2, locations=2, packages=2, airplanes=1; seed picks)")
    register("briefcase-v0", make_briefcase,
             description="briefcase world, ADL: forall/when effects (locations=3, portables=2; needs the 'pddl' extra)")
    register("frozenlake-v0", _frozenlake_factory(),
             description="Gymnasium FrozenLake-v1, not slippery (needs gymnasium: the 'gym' extra)")
    register("household-v0", _household_factory,
             description="ALFWorld-style household game generated offline (split=train|val|test by scene, "
                         "task=TYPE, engine=textworld|planner; needs the 'household' extra)")
    register("lab-v0", _lab_factory,
             description="ScienceWorld laboratory task (split=train|val|test by variation, task=NAME; needs the "
                         "'lab' extra and java)")
    register("cooking-v0", _cooking_factory,
             description="TextWorld cooking game generated offline, text-only states (split=train|val|test by game "
                         "seed, go=1|6|9|12, recipe=N; needs the 'household' extra)")


def _frozenlake_factory() -> EnvFactory:
    """The FrozenLake factory with the signature of :func:`planner.env.gym.make_frozenlake`
    (so its keyword arguments are checked) without importing gymnasium until it is called."""
    from planner.env import gym as gym_module

    return gym_module.make_frozenlake



def _household_factory(*, seed: int = 0, split: str = "train", task: str | None = None, engine: str = "textworld",
                       max_steps: int | None = None) -> Environment:
    """:func:`planner.env.household.make_household`, imported when called."""
    from planner.env.household import make_household

    return make_household(seed=seed, split=split, task=task, engine=engine, max_steps=max_steps)


def _lab_factory(*, seed: int = 0, split: str = "train", task: str | None = None,
                 max_steps: int | None = None) -> Environment:
    """:func:`planner.env.lab.make_lab`, imported when called."""
    from planner.env.lab import make_lab

    return make_lab(seed=seed, split=split, task=task, max_steps=max_steps)


def _cooking_factory(*, seed: int = 0, split: str = "train", recipe: int = 1, take: int = 1, go: int = 1,
                     open: bool = True, cook: bool = True, cut: bool = True, foods: str = "train",
                     max_steps: int | None = 50, cache_dir: str | None = None) -> Environment:
    """:func:`planner.env.cooking.make_cooking`, imported when called."""
    from planner.env.cooking import make_cooking

    return make_cooking(seed=seed, split=split, recipe=recipe, take=take, go=go, open=open, cook=cook, cut=cut,
                        foods=foods, max_steps=max_steps, cache_dir=cache_dir)


_register_builtins()
