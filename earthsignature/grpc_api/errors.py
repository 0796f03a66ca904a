"""Errors of the API and the one table that turns exceptions into gRPC status codes.

Servicer methods raise; :func:`status_for` (applied at the edge by :func:`handle_errors`)
picks the code. Bad input is INVALID_ARGUMENT with a message that says what is wrong, never
UNKNOWN or INTERNAL. A stored object that exists but cannot be read (a truncated COG, a
corrupt FlatGeobuf) is DATA_LOSS naming its key: a streaming answer skips that product, serves
the others, and ends with DATA_LOSS listing what it skipped (:class:`CorruptProducts`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from earthsignature.errors import ConfigurationError, EarthSignatureError
from earthsignature.functions.errors import BadInput
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.errors import (
    CorruptObject,
    InvalidKey,
    ObjectNotFound,
    StorageError,
)

log = logging.getLogger(__name__)


class ApiError(EarthSignatureError):
    """Root of the API's own errors."""


class BadRequest(ApiError, ValueError):
    """The request is malformed (WKT, dates, n_results, product id, geobuf, query)."""


class LimitExceeded(BadRequest):
    """The request asks for more than a server cap allows (area, vertices, list length)."""


class Unauthenticated(ApiError, PermissionError):
    """A call without the bearer token its method needs."""


class NotFound(ApiError, LookupError):
    """A named product or model version does not exist."""


class DataLoss(ApiError):
    """Stored data the catalog names cannot be read."""


class CorruptProducts:
    """Products a streaming answer skipped because one of their stored objects is corrupt.

    ``with corrupt.skipping(product_id): ...`` records a :class:`CorruptObject` instead of
    ending the stream; :meth:`raise_if_any`, after the last message, ends it with DATA_LOSS.
    """

    def __init__(self) -> None:
        self.errors: dict[str, CorruptObject] = {}

    @contextlib.contextmanager
    def skipping(self, product_id: str) -> Iterator[None]:
        try:
            yield
        except CorruptObject as exc:
            log.error("skipping product %s: %s", product_id, exc)
            self.errors[product_id] = exc

    def skipped(self, product_id: str) -> bool:
        return product_id in self.errors

    def raise_if_any(self) -> None:
        if self.errors:
            listed = "; ".join(f"{pid}: {exc}" for pid, exc in self.errors.items())
            raise DataLoss(f"{len(self.errors)} product(s) skipped, the rest was served: {listed}")


def unreadable(store: ObjectStore, key: str, exc: Exception) -> Exception:
    """Why a stored object failed to open or read: missing, corrupt, or the store failing."""
    try:
        present = store.exists(key)
    except StorageError as store_error:
        return store_error
    if not present:
        return ObjectNotFound(key, "the store (the catalog names it)")
    return CorruptObject(key, str(exc))


class MalformedRequest:
    """Stands in for a request whose bytes did not decode (see ``server._tolerant``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


#: The one table: first matching class wins (subclasses before their bases).
STATUS_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (BadInput, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidKey, grpc.StatusCode.INVALID_ARGUMENT),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (ObjectNotFound, grpc.StatusCode.NOT_FOUND),
    (ConfigurationError, grpc.StatusCode.FAILED_PRECONDITION),
    (DataLoss, grpc.StatusCode.DATA_LOSS),
    (CorruptObject, grpc.StatusCode.DATA_LOSS),
    (StorageError, grpc.StatusCode.UNAVAILABLE),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code of an exception; INTERNAL for anything unexpected."""
    for cls, code in STATUS_TABLE:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


F = TypeVar("F", bound=Callable[..., Any])


#: Longest status message sent: messages quote the request, and a status travels in a
#: trailer that clients refuse past 16 KiB ("Stream removed"), losing the message.
MAX_DETAILS = 2000


def details_of(exc: BaseException) -> str:
    """The status message of an exception, cut to :data:`MAX_DETAILS` characters."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= MAX_DETAILS else text[: MAX_DETAILS - 16] + " ... (truncated)"


def _abort(context: grpc.ServicerContext, exc: Exception) -> None:
    code = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.exception("unexpected error in API call")
        context.abort(code, f"internal error: {type(exc).__name__}")
    context.abort(code, details_of(exc))


def _check_access(servicer: Any, method: str, context: grpc.ServicerContext) -> None:
    """Ask the servicer's state (when it has one) whether this call may run at all."""
    state = getattr(servicer, "state", None)
    check = getattr(state, "check_access", None)
    if check is not None:
        check(method, context)


def handle_errors(method: F) -> F:
    """Wrap a unary or server-streaming servicer method: access check, errors as statuses."""

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            _check_access(self, method.__name__, context)
            _check_decoded(request)
            return method(self, request, context)
        except Exception as exc:
            if _is_abort(exc):
                raise
            _abort(context, exc)

    @functools.wraps(method)
    def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            _check_access(self, method.__name__, context)
            _check_decoded(request)
            yield from method(self, request, context)
        except Exception as exc:
            if _is_abort(exc):
                raise
            _abort(context, exc)

    return streaming if inspect.isgeneratorfunction(method) else unary  # type: ignore[return-value]


def _check_decoded(request: Any) -> None:
    if isinstance(request, MalformedRequest):
        raise BadRequest(request.reason)


def _is_abort(exc: BaseException) -> bool:
    # context.abort raises a bare Exception subclass private to grpc; let it through.
    return type(exc).__module__.startswith("grpc")
