"""Small frozen types shared by environments, world models, search and the agent.

A :class:`State` is either a set of ground facts (symbolic domains such as PDDL) written in
PDDL's Lisp notation, e.g. ``"(on a b)"``, or a free text observation (text domains). Its
:meth:`State.canonical` text is the same for equal states and is what logs and prompts use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from planner.errors import ConfigError
from planner.protocols import Goal as Goal


@dataclass(frozen=True, slots=True)
class State:
    """An environment state.

    Attributes:
        facts: ground facts that hold, e.g. ``frozenset({"(on a b)", "(clear a)"})``.
        text: a free-text observation, for text domains; ``None`` for symbolic states.
    """

    facts: frozenset[str] = frozenset()
    text: str | None = None

    @classmethod
    def from_facts(cls, facts: Iterable[str]) -> State:
        """A symbolic state holding exactly ``facts``."""
        return cls(facts=frozenset(facts))

    @classmethod
    def from_text(cls, text: str) -> State:
        """A text state (observation)."""
        return cls(text=text)

    @property
    def is_symbolic(self) -> bool:
        return self.text is None

    def canonical(self) -> str:
        """A text form equal for equal states: sorted facts joined by spaces, or the text."""
        if self.text is not None:
            return self.text
        return " ".join(sorted(self.facts))

    def __str__(self) -> str:
        return self.canonical()


@dataclass(frozen=True, slots=True, order=True)
class Action:
    """An action, written as the environment writes it: ``"(unstack a d)"`` or a command.

    For PDDL actions, :attr:`operator` and :attr:`args` split the Lisp form.
    """

    name: str

    @property
    def operator(self) -> str:
        return self._parts()[0]

    @property
    def args(self) -> tuple[str, ...]:
        return tuple(self._parts()[1:])

    def _parts(self) -> list[str]:
        return self.name.strip().strip("()").split()

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a world model predicts for one (state, action).

    Attributes:
        applicable: whether the action's precondition holds in the state.
        next_state: the state after the action (equal to the state when not applicable).
        reward: reward for this step (the environment's scale; 1.0 on reaching the goal).
        done: whether ``next_state`` reaches the goal (ends the episode).
        confidence: probability in [0, 1] the model gave its own output (1.0 for exact models).
        raw: the model's raw output text, when it has one.
        p_apply: the probability in [0, 1] the model gave the verdict "applies", whatever it
            answered (a language model's first answer token), when it has one; ``None`` when
            it does not say (exact models, experience).
    """

    applicable: bool
    next_state: State
    reward: float = 0.0
    done: bool = False
    confidence: float = 1.0
    raw: str | None = None
    p_apply: float | None = None

    def same_outcome(self, other: Prediction) -> bool:
        """True when both agree on applicability, next state and done (ignores confidence)."""
        return (
            self.applicable == other.applicable
            and self.next_state == other.next_state
            and self.done == other.done
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """One real, recorded step of an environment."""

    state: State
    action: Action
    applicable: bool
    next_state: State
    reward: float
    done: bool


@dataclass(frozen=True, slots=True)
class Plan:
    """An imagined action sequence and the states the world model predicted along it.

    ``states`` has one more element than ``actions``: ``states[0]`` is the start state and
    ``states[i + 1]`` the predicted result of ``actions[i]``.
    """

    actions: tuple[Action, ...]
    states: tuple[State, ...]
    value: float
    reaches_goal: bool

    def __post_init__(self) -> None:
        if len(self.states) != len(self.actions) + 1:
            raise ConfigError(
                f"a plan of {len(self.actions)} actions needs {len(self.actions) + 1} states, "
                f"got {len(self.states)}"
            )

    def __len__(self) -> int:
        return len(self.actions)


@dataclass(frozen=True, slots=True)
class FactGoal:
    """A conjunction of ground facts that must all hold."""

    facts: frozenset[str] = field(default_factory=frozenset)

    def satisfied(self, state: State) -> bool:
        return self.facts <= state.facts

    def progress(self, state: State) -> float:
        if not self.facts:
            return 1.0
        return len(self.facts & state.facts) / len(self.facts)

    def __str__(self) -> str:
        return " ".join(sorted(self.facts))


# -- Lisp forms of facts and actions of any environment ------------------------------------------
def parse_atom(text: str) -> tuple[str, tuple[str, ...]]:
    """``("on", ("a", "b"))`` for the Lisp form ``"(on a b)"`` (a fact or an action).

    Raises :class:`ConfigError` naming ``text`` when it is not ``(name arg…)``.
    """
    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise ConfigError(f"not a Lisp-form fact or action: {text!r} (expected '(name arg ...)')")
    parts = inner[1:-1].split()
    if not parts or any("(" in p or ")" in p for p in parts):
        raise ConfigError(f"not a Lisp-form fact or action: {text!r} (expected '(name arg ...)')")
    return parts[0], tuple(parts[1:])


def objects_of(facts: Iterable[str], actions: Iterable[Action] = ()) -> list[str]:
    """The objects named as arguments of ``facts`` and ``actions``, sorted."""
    found: set[str] = set()
    for text in [*facts, *(a.name for a in actions)]:
        found.update(parse_atom(text)[1])
    return sorted(found)


def arities_of(texts: Iterable[str], *, conflict: Callable[[str, int, int, str], Exception]) -> dict[str, int]:
    """name → arity of the Lisp forms ``texts``; raises ``conflict(name, first_arity,
    other_arity, text)`` for a name used with two arities."""
    found: dict[str, int] = {}
    for text in texts:
        name, args = parse_atom(text)
        if found.setdefault(name, len(args)) != len(args):
            raise conflict(name, found[name], len(args), text)
    return found
