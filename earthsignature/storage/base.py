"""The object-store interface every stage writes through.

Two implementations: :class:`~earthsignature.storage.local.LocalStore` (a directory, the
embedded default) and :class:`~earthsignature.storage.s3.S3Store` (any S3-compatible server).
Writers stage files locally and publish them with one call, so a reader never sees a
half-written object; raster and vector readers open :meth:`ObjectStore.gdal_path` inside
:meth:`ObjectStore.gdal_env` and read windows by range requests.
"""

from __future__ import annotations

import contextlib
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from earthsignature.storage.errors import InvalidKey, ObjectNotFound


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key and size in bytes."""

    key: str
    size: int


def check_key(key: str) -> str:
    """Refuse keys that are empty, absolute, or contain ``..``/``.``/empty segments."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(str(key), "empty key")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKey(key, "absolute paths, backslashes and NUL are not allowed")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKey(key, "empty, '.' or '..' segments are not allowed")
    return key


def check_prefix(prefix: str) -> str:
    """Like :func:`check_key` but the empty prefix and a trailing slash are allowed."""
    if prefix == "":
        return prefix
    check_key(prefix.rstrip("/") or "/")
    return prefix


class ObjectStore(ABC):
    """Put, get, ranged get, exists, list_keys, delete, and GDAL access to the same objects."""

    #: Human-readable location, e.g. ``s3://bucket/prefix`` or ``/data/earthsig``.
    url: str

    #: Reads worth running at once (e.g. catalog records): remote stores wait on the network.
    parallel_reads: int = 8

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Publish a local file under key, atomically (readers see all of it or nothing)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Publish bytes under key, atomically."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Whole object. Raises ObjectNotFound."""

    @abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the object)."""

    @abstractmethod
    def download(self, key: str, path: Path) -> None:
        """Copy an object to a local file."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes. Raises ObjectNotFound."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order."""

    @abstractmethod
    def list_dirs(self, prefix: str) -> list[str]:
        """Immediate sub-"directories" under prefix (ending in ``/``), for partition pruning."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; a missing key is not an error."""

    @abstractmethod
    def gdal_path(self, key: str) -> str:
        """A path rasterio/pyogrio can open (local path or ``/vsis3/...``)."""

    @abstractmethod
    def gdal_config(self) -> dict[str, str]:
        """GDAL configuration options needed to open :meth:`gdal_path` paths."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under key."""
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under prefix (which must be non-empty); returns the count."""
        if not prefix.strip("/"):
            raise InvalidKey(prefix, "refusing to delete the whole store")
        keys = [info.key for info in self.list_keys(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def gdal_env(self) -> contextlib.AbstractContextManager[None]:
        """Context in which :meth:`gdal_path` paths open in rasterio and pyogrio."""
        from earthsignature.storage.gdal import gdal_env

        return gdal_env(self.gdal_config())

    @contextlib.contextmanager
    def staged_file(self, key: str, suffix: str = "") -> Iterator[Path]:
        """Yield a local temporary path; on clean exit publish it under key, else discard it.

        The pattern every writer uses: build the output locally, publish in one step, so a
        crash never leaves a partial object.
        """
        check_key(key)
        # a private folder, removed whole: sidecars GDAL leaves (.aux.xml) go with the file
        with tempfile.TemporaryDirectory(prefix="earthsig-") as folder:
            path = Path(folder) / f"staged{suffix or Path(key).suffix}"
            yield path
            self.put_file(key, path)
