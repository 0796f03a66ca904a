"""Object storage: one interface, a local-directory and an S3 implementation, the layout."""

from earthsignature.storage.base import ObjectInfo, ObjectStore
from earthsignature.storage.errors import InvalidKey, ObjectNotFound, StorageError
from earthsignature.storage.factory import open_store
from earthsignature.storage.local import LocalStore
from earthsignature.storage.s3 import S3Store

__all__ = [
    "InvalidKey",
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "S3Store",
    "StorageError",
    "open_store",
]
