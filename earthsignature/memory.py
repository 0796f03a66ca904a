"""Handing freed heap memory back to the system (long-lived workers and servers)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools


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
