"""How a stage says a product cannot go on; the orchestrator turns these into records.

- :class:`ProductSkipped`: a normal outcome (too cloudy, outside the area): recorded as
  skipped, never retried.
- :class:`BadInput`: the product's data is unusable (corrupt raster, missing band, wrong grid):
  recorded as failed, never retried.
- Anything else (storage, network, server errors) is transient: the job is retried with
  backoff, and recorded as failed only when retries are exhausted.
"""

from __future__ import annotations

from typing import Any

from earthsignature.errors import EarthSignatureError


class StageError(EarthSignatureError):
    """A product stops at a stage for a known reason."""

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class ProductSkipped(StageError):
    """The product is deliberately not processed further (e.g. over the cloud threshold)."""


class BadInput(StageError, ValueError):
    """The product's data cannot be processed; retrying would not help."""
