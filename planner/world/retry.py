"""Bounded retries around the parse-and-validate of a model's answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt

from planner.errors import ServerError, WorldModelError
from planner.world.base import ModelStats

T = TypeVar("T")


def retry_invalid(attempt: Callable[[int], T], *, retries: int, stats: ModelStats) -> T:
    """``attempt(1)``; while it raises :class:`WorldModelError`, ``attempt(2)`` … ``attempt(retries + 1)``.

    ``attempt(n)`` asks the model (or, for ``n == 1``, may reuse an answer already decoded),
    then parses and validates the answer, raising :class:`WorldModelError` with the raw text
    when it is invalid. Each attempt after the first counts in ``stats.retries``. After the
    last attempt its error propagates, raw text included. A valid first answer returns
    without building any retry machinery (the hot path of a search). A
    :class:`~planner.errors.ServerError` (the server failed, not the answer) is not retried.
    """
    try:
        return attempt(1)
    except ServerError:
        raise
    except WorldModelError:
        if retries <= 0:
            raise

    def invalid(exc: BaseException) -> bool:
        return isinstance(exc, WorldModelError) and not isinstance(exc, ServerError)

    for trial in Retrying(stop=stop_after_attempt(retries), retry=retry_if_exception(invalid), reraise=True):
        with trial:
            stats.retries += 1
            return attempt(trial.retry_state.attempt_number + 1)
    raise AssertionError("unreachable")  # pragma: no cover
