"""Errors of the orchestration layer (queues, workers, runs)."""

from __future__ import annotations

from earthsignature.errors import EarthSignatureError


class QueueError(EarthSignatureError):
    """Root of the orchestration errors."""


class UnknownStage(QueueError, KeyError):
    """A stage name that is not in the stage registry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown stage"


class HandlerNotFound(QueueError, ImportError):
    """A stage handler's import path does not name a callable."""


class WorkerStartError(QueueError, RuntimeError):
    """A locally spawned worker process exited before the run finished."""
