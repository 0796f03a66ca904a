"""GEOS work of one request spread over the idle cores of a server process.

shapely releases the GIL inside GEOS, so the edge polygons of an answer can be intersected with
the area on several cores at once. Two rules keep this safe and cheap:

- a geometry is never used by two threads at once: each worker task gets its own copy of the
  area (from its WKB; a prepared geometry shared between threads crashed GEOS in an earlier
  attempt), and each polygon belongs to one chunk;
- a request only fans out while it is the process's only request (:meth:`GeosThreads.request`
  counts them), into one pool shared by the process and bounded by its cores: under load the
  cores are busy with other requests already, and splitting would only add hand-offs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

#: Fewest polygons worth splitting (below this a hand-off costs more than it saves).
MIN_SPLIT = 64


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _intersection(geometries: np.ndarray, area_wkb: bytes) -> np.ndarray:
    """A worker's chunk, against its own copy of the area."""
    return shapely.intersection(geometries, shapely.from_wkb(area_wkb))


class GeosThreads:
    """A process's pool for GEOS work of idle-time requests (``workers`` 0: never split)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = _cores() - 1 if workers is None else workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._active = 0
        #: Intersections run split over threads / in the caller's thread alone (for reports).
        self.split = 0
        self.alone = 0

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around one request: while more than one runs, none of them splits its work."""
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    def _executor(self) -> ThreadPoolExecutor | None:
        with self._lock:
            if self.workers < 1 or self._active > 1:
                return None
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="earthsig-geos")
            return self._pool

    def intersection(self, geometries: np.ndarray, area: BaseGeometry) -> np.ndarray:
        """``shapely.intersection(geometries, area)``, split over the idle cores when worth it.

        ``area`` itself (perhaps prepared) is only used by the calling thread.
        """
        pool = self._executor() if len(geometries) >= MIN_SPLIT else None
        if pool is None:
            self.alone += 1
            return shapely.intersection(geometries, area)
        self.split += 1
        chunks = np.array_split(geometries, self.workers + 1)
        wkb = shapely.to_wkb(area)
        futures = [pool.submit(_intersection, chunk, wkb) for chunk in chunks[1:]]
        first = shapely.intersection(chunks[0], area)
        return np.concatenate([first, *(future.result() for future in futures)])

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
