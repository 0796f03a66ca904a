"""What a handler needs besides its message: settings, the store, per-process caches.

Built once per process from the settings (never at import time) and passed to every
handler, so handlers stay stateless functions of (message, runtime).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from earthsignature.settings import Settings, load_settings
from earthsignature.storage import ObjectStore, open_store

T = TypeVar("T")


@dataclass
class Runtime:
    """Settings, the object store, and lazily built per-process resources (models, clients)."""

    settings: Settings
    store: ObjectStore
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Runtime:
        settings = settings or load_settings()
        return cls(settings=settings, store=open_store(settings))

    def cached(self, key: str, factory: Callable[[], T]) -> T:
        """The resource under key, built by factory the first time (thread-safe)."""
        with self._lock:
            if key not in self._cache:
                self._cache[key] = factory()
            return self._cache[key]  # type: ignore[no-any-return]
