"""Fail fast: check what a run needs before enqueueing, and tell failures that cannot heal.

A run that cannot work should say why in one line at once, not after a stage's retries
(30 s, 2 min, 10 min...). :func:`check_run` looks at the store (exists or can be made, and is
writable) and the STAC API (answers, has the collection) before anything is enqueued.
:func:`cannot_heal` tells, from an exception a stage raised, whether retrying is pointless
(an unknown host, permission denied, a 4xx from the STAC API, a store path that is a file);
the job runner then records the product failed at once instead of retrying.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

from shapely import wkt as shapely_wkt
from shapely.errors import GEOSException

from earthsignature.queue.errors import QueueError
from earthsignature.settings import Settings
from earthsignature.storage import layout
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.errors import StoreNotFound

#: Seconds the STAC API is given to answer the check (one try: the stage retries later).
STAC_TIMEOUT_S = 15.0
#: S3 error codes no retry can fix.
_S3_PERMANENT = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "InvalidBucketName",
}


class PreflightError(QueueError):
    """What a run needs is not there (the message says what, in one line)."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions behind it (cause, context, an HTTP client's ``reason``)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        todo += [
            e
            for e in (current.__cause__, current.__context__, reason, *current.args)
            if isinstance(e, BaseException)
        ]


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status an HTTP client's exception carries (urllib, pystac-client, requests)."""
    for attr in ("code", "status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def cannot_heal(exc: BaseException) -> str | None:
    """One line saying why retrying ``exc`` cannot help, or None when it might."""
    for err in _chain(exc):
        if isinstance(err, socket.gaierror):
            return f"cannot resolve a host name ({err.strerror or err}): offline or a wrong URL?"
        if isinstance(err, PermissionError):
            where = f": {err.filename}" if err.filename else ""
            return f"permission denied{where}"
        if isinstance(err, StoreNotFound | NotADirectoryError):
            return str(err)
        code = _status_code(err)
        if code is not None and 400 <= code < 500 and code not in (408, 425, 429):
            return f"HTTP {code} from {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        error = getattr(err, "response", None)
        if isinstance(error, dict):  # botocore ClientError
            s3_code = str(error.get("Error", {}).get("Code", ""))
            if s3_code in _S3_PERMANENT:
                return f"object store refused: {s3_code}"
    return None


def check_store(store: ObjectStore) -> None:
    """Raise PreflightError unless an object can be written to and removed from ``store``."""
    key = f"{layout.WORK}/preflight-{uuid.uuid4().hex}"
    try:
        store.put_bytes(key, b"earthsig preflight\n")
        store.delete(key)
    except Exception as exc:
        why = cannot_heal(exc) or f"{type(exc).__name__}: {exc}"
        raise PreflightError(f"store {store.url} is not writable: {why}") from None


def check_stac(settings: Settings) -> None:
    """Raise PreflightError unless the STAC API answers and has the configured collection.

    Only failures that cannot heal stop the run (an unknown host, a 4xx, a missing
    collection); a timeout or a 5xx is left to discover's own retries.
    """
    url = f"{settings.stac_api_url.rstrip('/')}/collections/{settings.stac_collection}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=STAC_TIMEOUT_S) as response:
            json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise PreflightError(
                f"STAC API {settings.stac_api_url} has no collection"
                f" {settings.stac_collection!r} (HTTP 404)"
            ) from None
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise PreflightError(
                f"STAC API {settings.stac_api_url} refused: HTTP {exc.code} {exc.reason}"
            ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = cannot_heal(exc)
        if why is not None or isinstance(exc, ValueError):
            raise PreflightError(
                f"STAC API {settings.stac_api_url} cannot be reached: {why or exc}"
            ) from None


def check_aoi(aoi_wkt: str) -> None:
    """Raise PreflightError for an area that is not a polygon in lon/lat WKT."""
    try:
        geom = shapely_wkt.loads(aoi_wkt)
    except (GEOSException, TypeError, ValueError) as exc:
        raise PreflightError(f"--aoi is not valid WKT: {exc}") from None
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise PreflightError("--aoi must be a non-empty Polygon or MultiPolygon (EPSG:4326)")


def check_run(settings: Settings, store: ObjectStore, aoi_wkt: str | None = None) -> None:
    """Everything a run needs before it enqueues: the area, the store, the STAC API.

    The STAC API is checked only when the built-in discover runs (a deployment may replace
    it through ``stage_handlers``).
    """
    check_aoi(aoi_wkt or settings.aoi_wkt)
    check_store(store)
    if "discover" not in settings.stage_handlers:
        check_stac(settings)
