"""GDAL access to stored objects, for both rasterio's and pyogrio's GDAL.

The two libraries bundle separate GDAL builds, and GDAL's S3 options (endpoint, HTTPS, virtual
hosting) are only honoured as environment variables (or a rasterio ``AWSSession``), so the
context sets them in the process environment, where both builds read them. Nested and
concurrent uses with the same options share one setting (reference counted); conflicting
options at the same time are refused rather than silently mixed.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from earthsignature.errors import ConfigurationError

_lock = threading.Lock()
_active: dict[str, tuple[str, int, str | None]] = {}  # key -> (value, refcount, previous)

#: Options every GDAL read in the package benefits from, local or remote.
BASE_CONFIG = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE": "YES",
}


@contextlib.contextmanager
def gdal_env(config: dict[str, str]) -> Iterator[None]:
    """Set ``config`` (plus :data:`BASE_CONFIG`) as environment variables for the block."""
    options = {**BASE_CONFIG, **config}
    with _lock:
        for key, value in options.items():
            if key in _active and _active[key][0] != value:
                raise ConfigurationError(
                    f"GDAL option {key} is already set to another value by a concurrent store"
                )
        for key, value in options.items():
            if key in _active:
                val, count, prev = _active[key]
                _active[key] = (val, count + 1, prev)
            else:
                _active[key] = (value, 1, os.environ.get(key))
                os.environ[key] = value
    try:
        yield
    finally:
        with _lock:
            for key in options:
                val, count, prev = _active[key]
                if count > 1:
                    _active[key] = (val, count - 1, prev)
                    continue
                del _active[key]
                if prev is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = prev
