"""Errors of the object store."""

from earthsignature.errors import EarthSignatureError


class StorageError(EarthSignatureError, OSError):
    """The object store failed (network, permissions, server error)."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object under the key asked for."""

    def __init__(self, key: str, where: str = "") -> None:
        super().__init__(f"no object {key!r}" + (f" in {where}" if where else ""))
        self.key = key


class InvalidKey(StorageError, ValueError):
    """A key, or a part used to build one, could escape its prefix or is malformed."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid key part {value!r}: {reason}")
        self.value = value
        self.reason = reason
