"""The generated messages and services under short names (the package puts them on sys.path)."""

from __future__ import annotations

from geobufproto import geobuf_pb2
from snapearth.api.v1 import database_pb2 as v1_pb2
from snapearth.api.v1 import database_pb2_grpc as v1_pb2_grpc
from snapearth.api.v2 import database_pb2 as v2_pb2
from snapearth.api.v2 import database_pb2_grpc as v2_pb2_grpc

import earthsignature.proto  # noqa: F401  (puts the generated code's root on sys.path)

__all__ = ["geobuf_pb2", "v1_pb2", "v1_pb2_grpc", "v2_pb2", "v2_pb2_grpc"]
