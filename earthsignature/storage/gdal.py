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

#: Attempts per HTTP request (boto3 and GDAL) before an error reaches the stage: transient
#: 503s and dropped connections are retried with backoff, then the job's own retries follow.
HTTP_MAX_ATTEMPTS = 10
#: GDAL's HTTP retries start with this delay in seconds, doubling each time.
GDAL_RETRY_DELAY = 0.5
#: What GDAL retries: 0 is a connection that ended without an answer (curl's "empty reply"),
#: which GDAL (3.10) otherwise fails on at once; 404s and other 4xx are not retried.
GDAL_RETRY_CODES = "0,429,500,502,503,504"
#: GDAL's HTTP retry options, for the store's /vsis3/ reads and fetch's source reads alike.
GDAL_HTTP_RETRY = {
    "GDAL_HTTP_MAX_RETRY": str(HTTP_MAX_ATTEMPTS - 1),
    "GDAL_HTTP_RETRY_DELAY": str(GDAL_RETRY_DELAY),
    "GDAL_HTTP_RETRY_CODES": GDAL_RETRY_CODES,
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
