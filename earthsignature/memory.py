"""Handing freed heap memory back to the system (long-lived workers and servers)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os

#: GDAL's raster block cache per worker process, in MB, unless the operator sets
#: ``GDAL_CACHEMAX``. GDAL's own default is 5 % of physical memory (1.2 GB on a 24 GB machine)
#: in every process; the stages read and write in windows, so a bigger cache buys nothing.
#: (The full-tile peaks over 1.5 GB in the composite stage and the publish children are not
#: this cache: they stay with it bounded; BENCHMARKS.md, "Full tile end to end on a quiet
#: machine".)
WORKER_GDAL_CACHE_MB = 256


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def release_free_memory() -> None:
    """Return freed heap pages to the system (glibc ``malloc_trim``; a no-op elsewhere).

    glibc keeps freed pages mapped (per-thread arenas, fragmented heaps), so a long-lived
    worker's resident size stays near the peak of its largest job and the next job stacks on
    top (a full tile: 1.6 GiB instead of about 1 GiB).
    """
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(OSError, AttributeError):
            libc.malloc_trim(0)


def bound_gdal_cache(megabytes: int = WORKER_GDAL_CACHE_MB) -> None:
    """Cap GDAL's block cache for this process and its children (an operator's own
    ``GDAL_CACHEMAX`` wins). Call before the first raster is read: GDAL sizes its cache once."""
    os.environ.setdefault("GDAL_CACHEMAX", str(megabytes))
