"""Object store in a local directory: the embedded default."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from earthsignature.storage.base import ObjectInfo, ObjectStore, check_key, check_prefix
from earthsignature.storage.errors import ObjectNotFound, StorageError, StoreNotFound

_TMP_PREFIX = ".tmp-"


class LocalStore(ObjectStore):
    """Objects are files under ``root``; writes go to a hidden temp file, then ``os.replace``."""

    #: A local disk gains nothing from threads but contention.
    parallel_reads = 1

    def __init__(self, root: Path | str, *, create: bool = True) -> None:
        """``create=False`` (readers) refuses a missing directory instead of making it."""
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"store {self.url} is a file, not a directory")
        if not self.root.exists():
            if not create:
                raise StoreNotFound(f"store {self.url} does not exist (check EARTHSIG_STORE)")
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create store {self.url}: {exc.strerror}") from None

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _publish(self, key: str, write) -> None:  # type: ignore[no-untyped-def]
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}-{target.name}"
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def _prefix_dir(self, prefix: str) -> Path:
        """The deepest directory every key starting with prefix lies under."""
        return self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root

    def put_file(self, key: str, path: Path) -> None:
        self._publish(key, lambda tmp: shutil.copyfile(path, tmp))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._publish(key, lambda tmp: tmp.write_bytes(data))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key, self.url) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("start and length must be >= 0")
        try:
            with self._path(key).open("rb") as fh:
                fh.seek(start)
                return fh.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key, self.url) from None

    def download(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key, self.url) from None

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key, self.url)
        return path.stat().st_size

    def list_keys(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        # Walk only the deepest directory the prefix names, not the whole store.
        base_dir = self._prefix_dir(prefix)
        if not base_dir.is_dir():
            return
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base_dir):
            dirnames[:] = [d for d in dirnames if not d.startswith(_TMP_PREFIX)]
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(ObjectInfo(key, full.stat().st_size))
        yield from sorted(found, key=lambda info: info.key)

    def list_dirs(self, prefix: str) -> list[str]:
        check_prefix(prefix)
        directory = self._prefix_dir(prefix)
        if not directory.is_dir():
            return []
        out = []
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.name.startswith(_TMP_PREFIX):
                key = entry.relative_to(self.root).as_posix() + "/"
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def delete(self, key: str) -> None:
        # Empty directories are left in place: removing them would race with writers.
        self._path(key).unlink(missing_ok=True)

    def gdal_path(self, key: str) -> str:
        return str(self._path(key))

    def gdal_config(self) -> dict[str, str]:
        return {}
