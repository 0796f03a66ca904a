"""Errors of the object store."""

from earthsignature.errors import EarthSignatureError


class StorageError(EarthSignatureError, OSError):
    """The object store failed (network, permissions, server error)."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object under the key asked for."""

    def __init__(self, key: str, where: str = "") -> None:
        super().__init__(f"no object {key!r}" + (f" in {where}" if where else ""))
        self.key = key


class StoreNotFound(StorageError, FileNotFoundError):
    """The store a reader was pointed at does not exist (readers never create one)."""


class CorruptObject(StorageError, ValueError):
    """An object exists but cannot be read as what it should be (a truncated COG...)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"object {key!r} cannot be read: {reason}")
        self.key = key
        self.reason = reason


class InvalidKey(StorageError, ValueError):
    """A key, or a part used to build one, could escape its prefix or is malformed."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid key part {value!r}: {reason}")
        self.value = value
        self.reason = reason
