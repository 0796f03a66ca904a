"""Bearer-token check for writes (CreateProduct), compared in constant time."""

from __future__ import annotations

import hmac

import grpc
from pydantic import SecretStr

from earthsignature.grpc_api.errors import Unauthenticated


def metadata_value(context: grpc.ServicerContext, name: str) -> str | None:
    """The first value of a call metadata key (keys are lower-case on the wire)."""
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else value.decode()
    return None


def require_token(context: grpc.ServicerContext, token: SecretStr | None) -> None:
    """Raise Unauthenticated unless the call carries ``authorization: Bearer <token>``."""
    if token is None or not token.get_secret_value():
        raise Unauthenticated("writes are disabled: the server has no API token configured")
    header = metadata_value(context, "authorization") or ""
    scheme, _, value = header.strip().partition(" ")
    given = value.strip().encode()
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
        raise Unauthenticated("missing or wrong bearer token (metadata 'authorization')")
