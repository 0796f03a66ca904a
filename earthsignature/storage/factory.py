"""Build the object store the settings name."""

from __future__ import annotations

from urllib.parse import urlparse

from earthsignature.settings import Settings
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.local import LocalStore
from earthsignature.storage.s3 import S3Store


def open_store(settings: Settings, *, create: bool = True) -> ObjectStore:
    """``s3://bucket/prefix`` gives an :class:`S3Store`, anything else a :class:`LocalStore`.

    Writers create a missing local store; readers pass ``create=False`` and get
    :class:`~earthsignature.storage.errors.StoreNotFound` instead of an empty new folder.
    """
    parsed = urlparse(settings.store)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            from earthsignature.errors import ConfigurationError

            raise ConfigurationError(f"EARTHSIG_STORE {settings.store!r} names no bucket")
        return S3Store(
            parsed.netloc,
            parsed.path.strip("/"),
            endpoint_url=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=(
                settings.s3_access_key.get_secret_value() if settings.s3_access_key else None
            ),
            secret_key=(
                settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
            ),
        )
    if parsed.scheme == "file":
        return LocalStore(parsed.path, create=create)
    return LocalStore(settings.store, create=create)
