"""Real stage handlers with a pause in the middle, so a test can SIGKILL the worker there.

``infer`` pauses just before it stores shard 0's predictions, ``vectorize`` just before it
commits the catalog record (after writing the COG, polygons and tiles). Only the first
attempt pauses: it announces its pid in Redis (``test:blocked:<stage>:<product>``) and
sleeps; the retry on another worker runs straight through the real handler.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rq import get_current_job

from earthsignature.functions.messages import ProductMessage
from earthsignature.runtime import Runtime
from earthsignature.storage.base import ObjectStore

PAUSE_PRODUCT_ENV = "EARTHSIG_TEST_PAUSE_PRODUCT"


class _PausingStore:
    """Delegates to a store; the first write under ``prefix`` pauses (first attempt only)."""

    def __init__(self, store: ObjectStore, prefix: str, stage: str, msg: ProductMessage) -> None:
        self._store, self._prefix, self._stage, self._msg = store, prefix, stage, msg

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _maybe_pause(self, key: str) -> None:
        if not key.startswith(self._prefix):
            return
        job = get_current_job()
        assert job is not None
        conn = job.connection
        if int(conn.incr(f"test:pauses:{self._stage}:{self._msg.product_id}")) == 1:
            conn.set(f"test:blocked:{self._stage}:{self._msg.product_id}", os.getpid())
            time.sleep(300)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._maybe_pause(key)
        self._store.put_bytes(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self._maybe_pause(key)
        self._store.put_file(key, path)


def _paused(rt: Runtime, msg: ProductMessage, stage: str, prefix: str) -> Runtime:
    if msg.product_id != os.environ.get(PAUSE_PRODUCT_ENV) or (stage == "infer" and msg.shard):
        return rt
    store = _PausingStore(rt.store, prefix, stage, msg)
    return Runtime(settings=rt.settings, store=store, _cache=rt._cache)  # type: ignore[arg-type]


def infer(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    from earthsignature.functions import infer as real

    return real.handle(msg, _paused(rt, msg, "infer", f"{msg.work_prefix}pred/"))


def vectorize(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    from earthsignature.functions import vectorize as real

    return real.handle(msg, _paused(rt, msg, "vectorize", "catalog/"))
