"""Errors of the training pipeline (importable without PyTorch)."""

from __future__ import annotations

from planner.errors import PlannerError


class TrainingDataError(PlannerError, ValueError):
    """Training data do not fit the model being trained: no records, a transition the
    vocabulary cannot express, a sequence longer than the model's context."""


class CheckpointError(PlannerError):
    """A training checkpoint cannot be restored (unreadable, or made with other settings)."""


class LogReadingError(PlannerError):
    """A process reading a training log in parallel ended without an answer (killed, out of
    memory, or unable to start)."""
