"""Bearer tokens: always for writes (CreateProduct), for reads when a read token is set.

Tokens are compared in constant time (``hmac.compare_digest`` of their SHA-256 digests, so not
even the length leaks) and never appear in a message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac

import grpc
from pydantic import SecretStr

from earthsignature.grpc_api.errors import Unauthenticated

#: Methods that change the catalog; every other method of the API services is a read.
WRITE_METHODS = frozenset({"CreateProduct"})


def metadata_value(context: grpc.ServicerContext, name: str) -> str | None:
    """The first value of a call metadata key (keys are lower-case on the wire)."""
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


def _bearer(context: grpc.ServicerContext) -> bytes | None:
    header = metadata_value(context, "authorization") or ""
    scheme, _, value = header.strip().partition(" ")
    return value.strip().encode() if scheme.lower() == "bearer" else None


def _matches(given: bytes, token: SecretStr) -> bool:
    expected = token.get_secret_value().encode()
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


def require_token(context: grpc.ServicerContext, token: SecretStr | None) -> None:
    """Raise Unauthenticated unless the call carries ``authorization: Bearer <token>``."""
    if token is None or not token.get_secret_value():
        raise Unauthenticated("writes are disabled: the server has no API token configured")
    given = _bearer(context)
    if given is None or not _matches(given, token):
        raise Unauthenticated("missing or wrong bearer token (metadata 'authorization')")


def require_read_token(
    context: grpc.ServicerContext, read_token: SecretStr | None, write_token: SecretStr | None
) -> None:
    """Reads are open unless a read token is set; then it (or the write token) is needed."""
    if read_token is None or not read_token.get_secret_value():
        return
    given = _bearer(context)
    tokens = [t for t in (read_token, write_token) if t is not None and t.get_secret_value()]
    # every token is compared, so the time taken does not say which one matched
    if given is None or not [t for t in tokens if _matches(given, t)]:
        raise Unauthenticated(
            "this server needs a bearer token for reads (metadata 'authorization')"
        )
