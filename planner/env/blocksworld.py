"""A Blocksworld problem generator writing standard 4-operator STRIPS PDDL.

Operators: ``pick-up``, ``put-down``, ``stack``, ``unstack``; predicates ``on``, ``ontable``,
``clear``, ``handempty``, ``holding``. Blocks are named ``b1`` … ``bn`` unless names are given.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from planner.errors import ConfigError
from planner.io import FileWriteError, atomic_write_text

MIN_BLOCKS = 2
"""Fewest blocks in a generated problem: one block is always on the table, so no goal over one
block can differ from its start."""
MAX_BLOCKS = 50
"""Most blocks in a generated problem. ``n`` blocks ground to ``2n + 2n²`` actions, every one a
candidate at every state the planner expands: 50 blocks give 5,100 (grounded in about 0.05 s);
150 would give 45,300 and make each expansion slow."""
_GOAL_ATTEMPTS = 10_000
"""Draws of a goal arrangement before giving up on one that differs from the start (two
blocks: each draw differs with probability at least 1/2)."""
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")

DOMAIN_PDDL = """\
(define (domain blocksworld)
  (:requirements :strips)
  (:predicates (on ?x ?y) (ontable ?x) (clear ?x) (handempty) (holding ?x))
  (:action pick-up
    :parameters (?x)
    :precondition (and (clear ?x) (ontable ?x) (handempty))
    :effect (and (not (ontable ?x)) (not (clear ?x)) (not (handempty)) (holding ?x)))
  (:action put-down
    :parameters (?x)
    :precondition (holding ?x)
    :effect (and (not (holding ?x)) (clear ?x) (handempty) (ontable ?x)))
  (:action stack
    :parameters (?x ?y)
    :precondition (and (holding ?x) (clear ?y))
    :effect (and (not (holding ?x)) (not (clear ?y)) (clear ?x) (handempty) (on ?x ?y)))
  (:action unstack
    :parameters (?x ?y)
    :precondition (and (on ?x ?y) (clear ?x) (handempty))
    :effect (and (holding ?x) (clear ?y) (not (clear ?x)) (not (handempty)) (not (on ?x ?y)))))
"""


def random_towers(blocks: Sequence[str], rng: random.Random) -> list[list[str]]:
    """A uniformly shuffled arrangement of ``blocks`` into towers (bottom first)."""
    order = list(blocks)
    rng.shuffle(order)
    towers: list[list[str]] = []
    for block in order:
        # Start a new tower or put the block on top of an existing one.
        choice = rng.randrange(len(towers) + 1)
        if choice == len(towers):
            towers.append([block])
        else:
            towers[choice].append(block)
    return towers


def tower_facts(towers: Sequence[Sequence[str]], *, hand_empty: bool = True) -> list[str]:
    """Ground facts describing ``towers`` (each listed bottom first)."""
    facts: list[str] = []
    for tower in towers:
        facts.append(f"(ontable {tower[0]})")
        facts.extend(f"(on {upper} {lower})" for lower, upper in itertools.pairwise(tower))
        facts.append(f"(clear {tower[-1]})")
    if hand_empty:
        facts.append("(handempty)")
    return sorted(facts)


def generate_problem(
    n_blocks: int, *, seed: int, names: Sequence[str] | None = None
) -> str:
    """PDDL text of a random Blocksworld problem with ``n_blocks`` blocks.

    The initial state and the goal are independent random tower arrangements; the goal lists
    every ``on`` and ``ontable`` fact of its arrangement. The same (n_blocks, seed, names)
    always gives the same text, and the goal never holds at the start. Raises
    :class:`ConfigError` (a ``ValueError``) for a number of blocks outside
    ``MIN_BLOCKS..MAX_BLOCKS`` (2..50) or names that are not distinct PDDL names.
    """
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or not MIN_BLOCKS <= n_blocks <= MAX_BLOCKS:
        raise ConfigError(f"n_blocks must be a whole number in {MIN_BLOCKS}..{MAX_BLOCKS} (with one block no goal "
                          f"can differ from the start; more than {MAX_BLOCKS} ground to too many candidate actions), "
                          f"got {n_blocks!r}")
    blocks = list(names) if names is not None else [f"b{i + 1}" for i in range(n_blocks)]
    if len(blocks) != n_blocks or len(set(blocks)) != n_blocks:
        raise ConfigError(f"need {n_blocks} distinct block names, got {blocks}")
    bad = [b for b in blocks if not isinstance(b, str) or not _NAME.fullmatch(b)]
    if bad:
        raise ConfigError(f"block names must be PDDL names (a letter, then letters, digits, - or _), got {bad[:5]}")
    rng = random.Random(f"blocksworld-{n_blocks}-{seed}")
    init = tower_facts(random_towers(blocks, rng))
    return _problem_text(f"bw-{n_blocks}-{seed}", blocks, init, _random_goal(blocks, init, rng, seed=seed))


def _random_goal(blocks: Sequence[str], init: Sequence[str], rng: random.Random, *, seed: int) -> list[str]:
    """The ``on`` and ``ontable`` facts of random tower arrangements of ``blocks`` drawn from
    ``rng`` until one does not already hold in ``init``."""
    for _ in range(_GOAL_ATTEMPTS):
        goal = [f for f in tower_facts(random_towers(blocks, rng), hand_empty=False) if not f.startswith("(clear")]
        if goal and not set(goal) <= set(init):
            return goal
    # Unreachable in practice: the probability is below 2**-10000.
    raise ConfigError(f"found no goal differing from the start for {len(blocks)} blocks, seed {seed}")


def _problem_text(name: str, blocks: Sequence[str], init: Sequence[str], goal: Sequence[str]) -> str:
    """PDDL text of the Blocksworld problem ``name`` (objects, initial facts, goal facts)."""
    return "\n".join([
        f"(define (problem {name})",
        "  (:domain blocksworld)",
        "  (:objects " + " ".join(blocks) + ")",
        "  (:init " + " ".join(init) + ")",
        "  (:goal (and " + " ".join(goal) + ")))",
        "",
    ])


def write_problem(directory: str | Path, n_blocks: int, *, seed: int) -> tuple[Path, Path]:
    """Write ``domain.pddl`` and ``bw-<n>-<seed>.pddl`` into ``directory``; return both paths.

    A file already there is kept when it holds exactly the text to be written, and otherwise
    refused (:class:`~planner.io.FileWriteError` naming it): a user's own ``domain.pddl`` is
    never replaced. Raises :class:`ConfigError` as :func:`generate_problem` does, before
    writing anything.
    """
    text = generate_problem(n_blocks, seed=seed)
    out = Path(directory)
    domain, problem = out / "domain.pddl", out / f"bw-{n_blocks}-{seed}.pddl"
    for path, content in ((domain, DOMAIN_PDDL), (problem, text)):
        _check_replaceable(path, content)
    for path, content in ((domain, DOMAIN_PDDL), (problem, text)):
        if not path.exists():
            atomic_write_text(path, content)
    return domain, problem


def _check_replaceable(path: Path, text: str) -> None:
    """:class:`FileWriteError` unless ``path`` is missing or already holds exactly ``text``."""
    data = text.encode("utf-8")
    try:
        with path.open("rb") as fh:
            same = fh.read(len(data) + 1) == data
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: cannot read what is there to compare it "
                             f"({exc.strerror or type(exc).__name__})", path=str(path)) from None
    if not same:
        raise FileWriteError(f"cannot write {path}: it exists with other content; refusing to replace it "
                             "(move it away or choose another folder)", path=str(path))


START_SHAPES = (("towers", 0.6), ("one-tower", 0.25), ("table", 0.15))
"""How :func:`make_mixed` draws start states: the shuffled towers of :func:`random_towers`,
all blocks in one tower, or all blocks on the table (with these probabilities). Random towers
alone almost never stack every block into one tower (for 8 blocks, 1 start in 40,320), and a
world model that never saw such a start cannot answer on it."""


def mixed_problem(seed: int, *, min_blocks: int = 3, max_blocks: int = 8) -> tuple[int, str]:
    """``(blocks, PDDL text)`` of the Blocksworld problem of ``seed`` in a family of
    ``min_blocks..max_blocks`` blocks: the size cycles with the seed, the start shape is drawn
    from :data:`START_SHAPES`, the goal is a random tower arrangement (its ``on``/``ontable``
    facts) that does not already hold. Raises :class:`ConfigError` for sizes outside
    ``MIN_BLOCKS..MAX_BLOCKS`` or ``min_blocks > max_blocks``."""
    for name, value in (("min_blocks", min_blocks), ("max_blocks", max_blocks)):
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_BLOCKS <= value <= MAX_BLOCKS:
            raise ConfigError(f"{name} must be a whole number in {MIN_BLOCKS}..{MAX_BLOCKS}, got {value!r}")
    if min_blocks > max_blocks:
        raise ConfigError(f"min_blocks ({min_blocks}) must not exceed max_blocks ({max_blocks})")
    n = min_blocks + seed % (max_blocks - min_blocks + 1)
    rng = random.Random(f"blocksworld-mixed-{n}-{seed}")
    blocks = [f"b{i + 1}" for i in range(n)]
    shape = _draw_shape(rng.random())
    if shape == "one-tower":
        towers = [rng.sample(blocks, n)]
    elif shape == "table":
        towers = [[b] for b in blocks]
    else:
        towers = random_towers(blocks, rng)
    init = tower_facts(towers)
    return n, _problem_text(f"bw-mixed-{n}-{seed}", blocks, init, _random_goal(blocks, init, rng, seed=seed))


def _draw_shape(draw: float) -> str:
    """The start shape of :data:`START_SHAPES` that a uniform ``draw`` in [0, 1) falls on."""
    for shape, share in START_SHAPES:
        if draw < share:
            return shape
        draw -= share
    return START_SHAPES[-1][0]


def make_mixed(*, seed: int = 0, min_blocks: int = 3, max_blocks: int = 8, max_steps: int | None = None) -> Any:
    """The environment of :func:`mixed_problem` (``seed``'s problem), played through
    :class:`~planner.env.pddl.PDDLEnvironment` from a private temporary folder removed when the
    environment is garbage-collected. The training family of the shipped model:
    ``planner learn --env planner/env/blocksworld.py:make_mixed``."""
    from planner.env.pddl import environment_from_text

    _, text = mixed_problem(seed, min_blocks=min_blocks, max_blocks=max_blocks)
    return environment_from_text(DOMAIN_PDDL, text, name="blocksworld", max_steps=max_steps)
