"""One error hierarchy for the whole library.

Every message names the bad value, so a user can fix the input without a debugger.
"""

from __future__ import annotations


class PlannerError(Exception):
    """Base class of every error raised on purpose by ``planner``."""


class ConfigError(PlannerError, ValueError):
    """A configuration value or file, or a keyword argument, is invalid (unknown key, wrong
    type, value out of its documented range)."""


class DomainError(PlannerError, ValueError):
    """A PDDL domain or problem file is missing, unreadable or not valid PDDL (or uses a feature
    the planner does not ground: numeric fluents, derived predicates, durative actions)."""


class UnknownActionError(PlannerError, ValueError):
    """An action is not one of the environment's candidate actions."""


class InapplicableActionError(PlannerError):
    """A strict environment was asked to apply an action whose precondition does not hold."""


class EnvironmentCheckError(PlannerError):
    """``check_env`` found an environment that breaks the protocol; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("environment check failed:\n- " + "\n- ".join(self.problems))


class EnvironmentStepError(PlannerError):
    """The real environment raised while the agent was stepping it."""


class WorldModelError(PlannerError):
    """A world model gave an output that could not be parsed or validated.

    ``raw`` holds the model's raw text (the last attempt), so it can be inspected.
    """

    def __init__(self, message: str, *, raw: str | None = None) -> None:
        self.raw = raw
        if raw is not None:
            message = f"{message} (raw output: {raw!r})"
        super().__init__(message)


class ServerError(WorldModelError):
    """A model server failed (no connection, a timeout, an error answer) or answered outside
    the protocol; never retried as an invalid answer, never read as "not applicable"."""


class ContextOverflowError(WorldModelError):
    """A prompt does not fit the model's context window."""


class SchemaError(PlannerError, ValueError):
    """Records that do not make one vocabulary (a predicate or action used with two arities,
    several domains, no applicable transition), or a goal outside a learned schema."""


class FormatError(PlannerError, ValueError):
    """Exported trajectories that cannot be read back: names the file, the line or record, and
    the problem (a message out of order, a reply that does not parse, facts inconsistent with
    the state, missing metadata)."""


class ModelLoadError(PlannerError):
    """A model file is missing, truncated, not a GGUF file, has metadata of the wrong type or
    out of bounds, or was made for another codec."""


class VocabularyError(ModelLoadError):
    """A problem cannot be written in the model's vocabulary: unknown predicates or actions,
    wrong arities, objects outside the problem, or more objects than the model knows.

    ``problems`` lists each finding; the message names them all on one line (a command-line
    front end may show only the first line of an error).
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + ": " + "; ".join(self.problems)
        super().__init__(message)


class ModelWriteError(PlannerError, ValueError):
    """A model cannot be written as asked: missing or misshapen tensors, metadata out of the
    bounds a reader accepts."""


class CodecError(PlannerError, ValueError):
    """Text is not in a codec's format: a malformed ground atom or fact word, an answer of the
    wrong structure, a word outside the vocabulary."""
