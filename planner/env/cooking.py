"""TextWorld's cooking games (the "tw-cooking" challenge) generated offline, as a text-only environment.

``planner.make("cooking-v0", seed=S, split="train")`` builds the cooking game of seed ``S``:
TextWorld's generator (``textworld.challenges.tw_cooking``) makes it from the settings and a
*game seed* — ``S`` for ``train``, ``10_000 + S`` for ``val``, ``20_000 + S`` for ``test``, so
a held-out game is never a training game — and compiles it once into a cache folder
(:func:`make_cooking`); TextWorld's Inform 7 interpreter then plays it. Needs TextWorld, which
the ``household`` extra installs (``pip install -e '.[household]'``).

:class:`CookingEnvironment` follows the :class:`~planner.protocols.Environment` protocol:

- **state**: text only (:meth:`State.from_text <planner.types.State.from_text>`): the game's
  description of where the player stands and its inventory, cleaned by :func:`clean_text`,
  ``clean_text(description) + " " + clean_text(inventory)``. Once the game has ended, the
  game's end line follows: ``" *** The End ***"`` when it was won (:data:`WON_MARK`),
  ``" *** You lost! ***"`` when it was lost (:data:`LOST_MARK`). TextWorld does not update
  the description and inventory on a losing step (they are those of the state before it), and
  a won game's last room can read like a state of the game before it was won, so without the
  end line neither ending would be told apart from a state of a game still going on;
- **actions**: the game's own commands, ``Action("take knife from table")``. The candidates at
  the current state are the game's admissible commands there, sorted; at another state this
  environment (or one of its :meth:`~CookingEnvironment.branch` copies) has reached, those it
  recorded there; at any other state (an imagined one), every command seen admissible so far in
  this game. A command that is not admissible at the current state raises
  :class:`~planner.errors.UnknownActionError` (the game would only answer that it does not
  understand); every admissible one applies (``applicable=True``), even where it changes
  nothing (``examine cookbook``). After the game has ended no command is admissible;
- **step**: ``info["observation"]`` is the step's feedback, cleaned (:func:`clean_text`;
  at :meth:`~CookingEnvironment.reset`: the cleaned description); ``info`` also holds
  ``objective``, ``score``, ``max_score``, ``won``, ``lost``. Reward: the increase of the
  game's score (a walkthrough earns ``max_score`` in all, one point per quest step: taking an
  ingredient, cooking it, cutting it, preparing the meal, eating it). ``terminated`` when the
  game is won. A lost game (eating an ingredient before the meal is prepared, burning one)
  ends the episode as ``truncated`` with ``info["lost"]``, as a failure ends ``lab-v0`` and a
  hole ends a Gymnasium episode: in this project ``terminated`` means the goal was reached.
  ``truncated`` also after ``max_steps`` steps (default 50);
- **goal**: :class:`ObjectiveGoal`, the game's objective text ("You are hungry! Let's cook a
  delicious meal. …"), satisfied exactly by the states of a won game (their text ends with
  :data:`WON_MARK`); progress is all or nothing;
- :meth:`~CookingEnvironment.walkthrough` (TextWorld's policy commands from the current state),
  :meth:`~CookingEnvironment.branch` (an independent copy at the current state, made by
  TextWorld's ``env.copy()``, which copies the interpreter's memory and TextWorld's tracking of
  the game, nothing replayed: 0.1–0.4 s, more for bigger games, as TextWorld deep-copies its
  description of the game with every copy).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from planner.env.base import StepResult
from planner.errors import ConfigError, UnknownActionError
from planner.types import Action, State

__all__ = [
    "FOODS",
    "GAME_SEED_OFFSETS",
    "GO",
    "LOST_MARK",
    "MAX_SEED",
    "SPLITS",
    "WON_MARK",
    "CookingEnvironment",
    "ObjectiveGoal",
    "cache_folder",
    "clean_text",
    "game_key",
    "game_seed",
    "make_cooking",
]

EXTRA_HINT = "pip install -e '.[household]'"

SPLITS = ("train", "val", "test")
"""Game splits, by game seed (:data:`GAME_SEED_OFFSETS`)."""
GAME_SEED_OFFSETS = {"train": 0, "val": 10_000, "test": 20_000}
"""Game seed = offset of the split + seed."""
MAX_SEED = 9_999
"""Largest seed: the splits' game seeds never overlap."""
FOODS = ("train", "valid", "test")
"""TextWorld's food-name splits (which food names a game may use; TextWorld's own names)."""
GO = (1, 6, 9, 12)
"""Room counts TextWorld's cooking games can have."""
MAX_RECIPE = 5
"""Most ingredients a recipe can have (TextWorld's limit)."""
WON_MARK = "*** The End ***"
"""Ends the text of a state of a won game (the game's own words)."""
LOST_MARK = "*** You lost! ***"
"""Ends the text of a state of a lost game (the game's own words)."""
GAME_FILE = "game.z8"
"""The compiled game in a cached game's folder (TextWorld's ``game.json`` lies beside it)."""
MAX_LISTED = 8
"""Most admissible commands an error message lists."""

# -- cleaning the game's text -----------------------------------------------------------------
_STATUS_LINE = re.compile(r"^[ \t]*>?[ \t]*-=[^\n]*=-[ \t]*-?\d+/\d+[ \t]*$", re.MULTILINE)
_BANNER_LINE = re.compile(r"^[ \t_|\\$/<>]*[_|\\$/<>][ \t_|\\$/<>]*$", re.MULTILINE)
_SCORE_LINE = re.compile(r"You scored -?\d+ out of a possible -?\d+, in \d+ turns?\.")
_RESTART_LINE = re.compile(r"Would you like to RESTART\b[^\n?]*\?")


def clean_text(text: str | None) -> str:
    """The game's ``text`` without what is not a function of state and action, its whitespace
    collapsed. Removes exactly:

    - the status line Inform prints after every answer: an optional prompt ``>``, spaces, then
      ``-= Room =-`` followed directly by ``score/moves`` (``>   -= Kitchen =-1/2``), alone on
      its line (the room header of a description, ``-= Kitchen =-`` with no numbers after it,
      stays);
    - every line made only of the characters ``_ | \\ $ / < >`` and blanks, with at least one
      of the former: the ASCII-art banner that opens the first answer of a game, and a bare
      prompt ``>``;
    - the end-of-game summary ``You scored 5 out of a possible 5, in 7 turns.``;
    - the end-of-game question ``Would you like to RESTART, RESTORE a saved game, QUIT or UNDO
      the last command?`` (any question starting ``Would you like to RESTART``);

    then replaces every run of whitespace (newlines included) with one space and strips the
    ends. Everything else stays, the objective of the first answer, ``Your score has just gone
    up by one point.`` and the end lines ``*** The End ***``/``*** You lost! ***`` (they follow
    from the state and the action) included. ``None`` gives ``""``.
    """
    if text is None:
        return ""
    text = _STATUS_LINE.sub("", text)
    text = _BANNER_LINE.sub("", text)
    text = _SCORE_LINE.sub("", text)
    text = _RESTART_LINE.sub("", text)
    return " ".join(text.split())


# -- the goal ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ObjectiveGoal:
    """The game's objective, reached by the states of a won game (their text ends with
    :data:`WON_MARK`, see :mod:`planner.env.cooking`); progress is 0.0 or 1.0.

    Attributes:
        objective: the game's objective text; ``str()`` gives it (logs record it as the goal).
    """

    objective: str

    def satisfied(self, state: State) -> bool:
        return state.text is not None and state.text.endswith(WON_MARK)

    def progress(self, state: State) -> float:
        return 1.0 if self.satisfied(state) else 0.0

    def __str__(self) -> str:
        return self.objective


# -- the environment --------------------------------------------------------------------------
@dataclass
class _Seen:
    """What the game showed, shared by an environment and its branches: the admissible
    commands at each state text (first sighting) and every command seen admissible."""

    admissible: dict[str, tuple[Action, ...]] = field(default_factory=dict)
    commands: set[str] = field(default_factory=set)

    def record(self, state: State, admissible: tuple[Action, ...]) -> None:
        self.admissible.setdefault(state.canonical(), admissible)
        self.commands.update(a.name for a in admissible)


class CookingEnvironment:
    """A compiled TextWorld cooking game (see the module's description).

    Args:
        path: the game's ``.z8`` file, with TextWorld's ``.json`` of the same name beside it
            (what :func:`make_cooking` caches).
        max_steps: truncate the episode after this many steps (``None``: never).
        settings: the settings it was generated with (kept as :attr:`settings`, for reports).

    Raises :class:`ConfigError` naming the ``household`` extra when TextWorld is missing, and
    for a missing game file.
    """

    def __init__(self, path: str | Path, *, max_steps: int | None = 50,
                 settings: Mapping[str, Any] | None = None) -> None:
        textworld = _require_textworld()
        self.path = Path(path)
        if not self.path.is_file() or not self.path.with_suffix(".json").is_file():
            raise ConfigError(f"no cooking game at {self.path} (a .z8 file with TextWorld's .json beside it)")
        _check_max_steps(max_steps)
        self.max_steps = max_steps
        self.settings: Mapping[str, Any] = MappingProxyType(dict(settings or {}))
        infos = textworld.EnvInfos(description=True, inventory=True, admissible_commands=True, won=True, lost=True,
                                   policy_commands=True, score=True, max_score=True, objective=True)
        with _quiet():
            self._tw: Any = textworld.start(str(self.path), request_infos=infos)
        self._seen = _Seen()
        self._state = State.from_text("")
        self._admissible: tuple[Action, ...] = ()
        self._walk: tuple[str, ...] = ()
        self._score = 0
        self._won = self._lost = False
        self._steps = 0
        self.observation = ""
        self.max_score = 0
        self._objective = ""
        self.reset()
        self._goal = ObjectiveGoal(self._objective)

    # -- the Environment protocol ---------------------------------------------------------
    @property
    def goal(self) -> ObjectiveGoal:
        """The game's objective (:class:`ObjectiveGoal`)."""
        return self._goal

    @property
    def objective(self) -> str:
        """The game's objective text."""
        return self._objective

    def reset(self, *, seed: int | None = None) -> tuple[State, dict[str, Any]]:
        """Start the game again (a compiled game is deterministic: ``seed`` is accepted and
        ignored). ``info["observation"]`` is the cleaned description."""
        game_state = self._tw.reset()
        self._steps = 0
        self._objective = str(game_state.objective or "")
        self.max_score = int(game_state.max_score or 0)
        self._absorb(game_state)
        self.observation = clean_text(game_state.description)
        return self._state, self._info()

    def step(self, action: Action) -> StepResult:
        """Play the command ``action``; :class:`UnknownActionError` when it is not admissible
        at the current state (none is, once the game has ended)."""
        if action not in self._admissible:
            raise UnknownActionError(self._not_admissible(action))
        before = self._score
        game_state, _score, _done = self._tw.step(action.name)
        self._steps += 1
        self._absorb(game_state)
        self.observation = clean_text(game_state.feedback)
        truncated = not self._won and (self._lost or (self.max_steps is not None and self._steps >= self.max_steps))
        return StepResult(state=self._state, reward=float(self._score - before), terminated=self._won,
                          truncated=truncated, info=MappingProxyType({**self._info(), "command": action.name}),
                          applicable=True)

    def candidate_actions(self, state: State) -> Sequence[Action]:
        """The admissible commands at ``state`` (see the module's description), sorted."""
        if state == self._state:
            return self._admissible
        found = self._seen.admissible.get(state.canonical())
        if found is not None:
            return found
        return tuple(Action(c) for c in sorted(self._seen.commands))

    # -- beyond the protocol --------------------------------------------------------------
    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    @property
    def won(self) -> bool:
        return self._won

    @property
    def lost(self) -> bool:
        return self._lost

    @property
    def score(self) -> int:
        """The game's score at the current state."""
        return self._score

    def walkthrough(self) -> list[Action]:
        """TextWorld's walkthrough from the current state (its policy commands): the commands
        that win the game from here; empty once the game has ended."""
        return [Action(c) for c in self._walk]

    def branch(self) -> CookingEnvironment:
        """An independent copy of this environment at its current state: stepping either
        leaves the other as it is. Made by TextWorld's ``env.copy()`` (the interpreter's memory
        is copied; nothing is replayed). It shares the game file and what the game showed at
        each state (for :meth:`candidate_actions`), and counts its steps on from this one's."""
        twin = object.__new__(CookingEnvironment)
        twin.__dict__.update(self.__dict__)
        with _quiet():
            twin._tw = self._tw.copy()
        return twin

    def close(self) -> None:
        """Stop the interpreter (the environment cannot be used afterwards)."""
        self._tw.close()

    def __enter__(self) -> CookingEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CookingEnvironment({str(self.path)!r}, max_steps={self.max_steps})"

    # -- helpers --------------------------------------------------------------------------
    def _absorb(self, game_state: Any) -> None:
        """Take the current state, score, ending, admissible and policy commands from
        TextWorld's answer."""
        self._won, self._lost = bool(game_state.won), bool(game_state.lost)
        self._score = int(game_state.score or 0)
        text = f"{clean_text(game_state.description)} {clean_text(game_state.inventory)}".strip()
        if self._won or self._lost:
            text = f"{text} {WON_MARK if self._won else LOST_MARK}"
            self._admissible, self._walk = (), ()
        else:
            self._admissible = tuple(Action(c) for c in sorted(set(game_state.admissible_commands or ())))
            self._walk = tuple(game_state.policy_commands or ())
        self._state = State.from_text(text)
        self._seen.record(self._state, self._admissible)

    def _info(self) -> dict[str, Any]:
        return {"observation": self.observation, "objective": self._objective, "score": self._score,
                "max_score": self.max_score, "won": self._won, "lost": self._lost}

    def _not_admissible(self, action: Action) -> str:
        if self._won or self._lost:
            return (f"command {action.name!r}: the cooking game is over ({'won' if self._won else 'lost'}), no "
                    "command is admissible; reset() to play again")
        shown = ", ".join(repr(a.name) for a in self._admissible[:MAX_LISTED])
        more = f", … ({len(self._admissible)} in all)" if len(self._admissible) > MAX_LISTED else ""
        return f"command {action.name!r:.200} is not admissible in the cooking game here; admissible: {shown}{more}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without Jericho's warning that a TextWorld game "is not fully supported. Score, move,
    change detection will be disabled" (given whenever it loads one: TextWorld keeps the score
    itself)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is not fully supported")
        yield


# -- generating and caching games -------------------------------------------------------------
def game_seed(seed: int, split: str) -> int:
    """The game seed of ``seed`` in ``split``: ``seed`` (train), ``10_000 + seed`` (val),
    ``20_000 + seed`` (test). :class:`ConfigError` for an unknown split or a seed outside
    0..9999."""
    if split not in SPLITS:
        raise ConfigError(f"unknown cooking split {split!r}; known: {', '.join(SPLITS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"cooking seed must be a whole number in 0..{MAX_SEED} (val and test games are "
                          f"10_000 + seed and 20_000 + seed), got {seed!r}")
    return GAME_SEED_OFFSETS[split] + seed


def game_key(settings: Mapping[str, Any], seed: int, version: str) -> str:
    """The cache name of the game of ``settings`` (:func:`make_cooking`'s), game seed ``seed``
    and TextWorld ``version``: every setting is in it, so a change of any makes a new game."""
    flags = "-".join(f"{k}{int(bool(settings[k]))}" for k in ("open", "cook", "cut"))
    return (f"tw{version}-foods_{settings['foods']}-recipe{settings['recipe']}-take{settings['take']}"
            f"-go{settings['go']}-{flags}-seed{seed}")


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    """Where cooking games are cached: ``cache_dir``, else ``$PLANNER_CACHE/cooking``, else
    ``~/.cache/planner/cooking``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get("PLANNER_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "planner") / "cooking"


def make_cooking(*, seed: int = 0, split: str = "train", recipe: int = 1, take: int = 1, go: int = 1,
                 open: bool = True, cook: bool = True, cut: bool = True, foods: str = "train",
                 max_steps: int | None = 50, cache_dir: str | Path | None = None) -> CookingEnvironment:
    """The cooking game of ``seed`` in ``split`` (see the module's description).

    Args:
        seed: 0..9999; with ``split`` it picks the game seed (:func:`game_seed`).
        split: ``train``, ``val`` or ``test``.
        recipe: ingredients in the recipe (1..5).
        take: ingredients the player must find (0..``recipe``; the others start in the
            inventory).
        go: rooms (1, 6, 9 or 12).
        open: containers and doors start closed; cook: ingredients must be cooked; cut:
            ingredients must be cut (TextWorld's skills of the same names; ``drop`` is off and
            the recipe is not shuffled).
        foods: TextWorld's food-name split: ``train`` (default, for every split: held-out games
            differ in layout, recipe, placement and sampled descriptions, with known food
            names), ``valid`` or ``test`` (foods no ``train`` game names, besides known ones).
        max_steps: truncate episodes after this many steps (``None``: never).
        cache_dir: where compiled games are kept (:func:`cache_folder`); a game is generated
            (a few seconds) once, written to a temporary folder and renamed into place, so no
            process ever sees half a game.

    Raises :class:`ConfigError` naming a bad value, or the ``household`` extra when TextWorld
    is missing.
    """
    settings = _settings(recipe=recipe, take=take, go=go, open=open, cook=cook, cut=cut, foods=foods)
    number = game_seed(seed, split)
    _check_max_steps(max_steps)
    textworld = _require_textworld()
    folder = cache_folder(cache_dir)
    path = _cached_game(folder, settings, number, str(textworld.__version__))
    return CookingEnvironment(path, max_steps=max_steps,
                              settings={**settings, "seed": seed, "split": split, "game_seed": number})


def _settings(*, recipe: Any, take: Any, go: Any, open: Any, cook: Any, cut: Any, foods: Any) -> dict[str, Any]:
    """The game settings, checked: :class:`ConfigError` naming the bad value."""
    for name, value in (("recipe", recipe), ("take", take), ("go", go)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"cooking {name} must be a whole number, got {value!r}")
    for name, value in (("open", open), ("cook", cook), ("cut", cut)):
        if not isinstance(value, bool):
            raise ConfigError(f"cooking {name} must be true or false, got {value!r}")
    if not 1 <= recipe <= MAX_RECIPE:
        raise ConfigError(f"cooking recipe must be 1..{MAX_RECIPE} ingredients, got {recipe}")
    if not 0 <= take <= recipe:
        raise ConfigError(f"cooking take must be 0..recipe ({recipe}), got {take}")
    if go not in GO:
        raise ConfigError(f"cooking go (rooms) must be one of {', '.join(map(str, GO))}, got {go}")
    if foods not in FOODS:
        raise ConfigError(f"unknown cooking foods split {foods!r}; known: {', '.join(FOODS)} (TextWorld's "
                          "food-name splits)")
    return {"recipe": recipe, "take": take, "go": go, "open": open, "cook": cook, "cut": cut, "foods": foods}


def _check_max_steps(max_steps: Any) -> None:
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ConfigError(f"cooking max_steps must be a whole number >= 1 or None, got {max_steps!r}")


def _cached_game(folder: Path, settings: Mapping[str, Any], number: int, version: str) -> Path:
    """The game file of ``settings`` and game seed ``number`` in ``folder``, generated first
    when it is not there: into a fresh temporary folder beside it, renamed into place when
    complete (a rename is atomic, so readers see the whole game or none; when another process
    renamed its copy first, that one is kept)."""
    final = folder / game_key(settings, number, version)
    if _complete(final):
        return final / GAME_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=folder))
    except OSError as exc:
        raise ConfigError(f"cannot write the cooking game cache {folder}: {exc.strerror or exc}") from None
    try:
        _generate(settings, number, tmp / GAME_FILE)
        for name in os.listdir(tmp):
            _fsync(tmp / name)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _complete(final):  # not another process's complete copy: a foreign folder
                raise ConfigError(f"the cooking game cache entry {final} is incomplete; delete it") from None
        else:
            _fsync(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / GAME_FILE


def _complete(game_folder: Path) -> bool:
    return (game_folder / GAME_FILE).is_file() and (game_folder / GAME_FILE).with_suffix(".json").is_file()


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _generate(settings: Mapping[str, Any], number: int, path: Path) -> Path:
    """Generate and compile the game of ``settings`` and game seed ``number`` to ``path``
    (``.z8``; TextWorld writes its ``.json`` beside it)."""
    textworld = _require_textworld()
    from textworld.challenges.tw_cooking.cooking import make
    from textworld.generator import compile_game

    options = textworld.GameOptions()
    options.seeds = number
    options.path = str(path)
    options.force_recompile = True
    tw_settings = {"recipe": settings["recipe"], "take": settings["take"], "go": settings["go"],
                   "open": settings["open"], "cook": settings["cook"], "cut": settings["cut"], "drop": False,
                   "recipe_seed": 0, "split": settings["foods"]}
    game = make(tw_settings, options)
    compiled = Path(compile_game(game, options))
    compiled.with_suffix(".ni").unlink(missing_ok=True)  # the Inform 7 source: not needed to play
    return compiled


def _require_textworld() -> Any:
    """The ``textworld`` module; a one-line :class:`ConfigError` naming the extra when absent."""
    try:
        import textworld
        import textworld.generator
    except ImportError:
        raise ConfigError(f"the cooking environment needs TextWorld: {EXTRA_HINT}") from None
    return textworld
