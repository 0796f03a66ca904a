"""GEOS work of one request moved off its thread while the server process has nothing else to do.

shapely releases the GIL inside GEOS, so the intersections of one product's edge polygons with
the area can run on a second core while the request's thread reads and sorts the next product's
polygons (Python, holding the GIL). Two rules keep this safe and cheap:

- a geometry is never used by two threads at once: each task intersects with its own copy of
  the area (from its WKB; a prepared geometry shared between threads crashed GEOS in an earlier
  attempt), and the request's thread leaves a task's polygons alone until its result is taken;
- work leaves the request's thread only while that request is the process's only one
  (:meth:`GeosThreads.request` counts them) and the machine's 1-minute load average leaves a
  core free, into one pool per process bounded by its cores: under load the cores are busy
  already (with other requests, or other programs), and hand-offs would only add work (measured
  on a 2-core machine whose cores other programs kept busy: no gain, ~5 ms more CPU a request).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from earthsignature.polygons.table import Rectangle, intersect


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _intersection(
    geometries: np.ndarray, area_wkb: bytes, rectangle: Rectangle | None
) -> np.ndarray:
    """A task: the polygons against the task's own copy of the area."""
    return intersect(geometries, shapely.from_wkb(area_wkb), rectangle)


class GeosThreads:
    """A process's pool for GEOS work of lone requests (``workers`` 0: never hand off)."""

    def __init__(self, workers: int | None = None, lone_only: bool = True) -> None:
        self.workers = _cores() - 1 if workers is None else workers
        #: False: hand work off whatever else runs (tests: every request's hand-offs at once)
        self.lone_only = lone_only
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._active = 0
        #: Intersection calls handed to the pool / run in the caller's thread (for reports).
        self.handed_off = 0
        self.in_place = 0

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around a request's work: while more than one runs, none of them hands work off."""
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    def _executor(self) -> ThreadPoolExecutor | None:
        with self._lock:
            if self.workers < 1:
                return None
            if self.lone_only and (self._active != 1 or not self._core_free()):
                return None
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="earthsig-geos")
            return self._pool

    def _core_free(self) -> bool:
        """The load average leaves a core idle (this request's own thread counts as one)."""
        try:
            return os.getloadavg()[0] < self.workers + 0.5
        except OSError:  # not available: assume the cores are ours
            return True

    def intersection(
        self,
        geometries: np.ndarray,
        area: BaseGeometry,
        area_wkb: Callable[[], bytes],
        rectangle: Rectangle | None = None,
    ) -> Callable[[], np.ndarray]:
        """:func:`~earthsignature.polygons.table.intersect` of ``geometries`` and ``area``,
        later: call the returned function (from the calling thread) for the result. Runs in the
        pool when the process is otherwise idle (against a copy of ``area`` from
        ``area_wkb()``), else at once in this thread."""
        pool = self._executor() if len(geometries) else None
        if pool is None:
            self.in_place += 1
            result = intersect(geometries, area, rectangle)
            return lambda: result
        self.handed_off += 1
        return pool.submit(_intersection, geometries, area_wkb(), rectangle).result

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
