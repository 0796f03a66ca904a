"""The generated SnapEarth messages and services of both revisions, under short names.

``v1_pb2``/``v2_pb2`` (and ``*_grpc``) are R1, packages ``snapearth.api.v1.database`` and
``snapearth.api.v2.database`` (V1 rasters as base64 text); ``r2_v1_pb2``/``r2_v2_pb2`` are R2,
packages ``snapearth.api.v1`` and ``snapearth.api.v2`` (V1 rasters as GeoTIFF bytes).
"""

from __future__ import annotations

from earthsignature.proto.geobufproto import geobuf_pb2
from earthsignature.proto.snapearth.api.v1 import database_pb2 as r2_v1_pb2
from earthsignature.proto.snapearth.api.v1 import database_pb2_grpc as r2_v1_pb2_grpc
from earthsignature.proto.snapearth.api.v1.database import database_pb2 as v1_pb2
from earthsignature.proto.snapearth.api.v1.database import database_pb2_grpc as v1_pb2_grpc
from earthsignature.proto.snapearth.api.v2 import database_pb2 as r2_v2_pb2
from earthsignature.proto.snapearth.api.v2 import database_pb2_grpc as r2_v2_pb2_grpc
from earthsignature.proto.snapearth.api.v2.database import database_pb2 as v2_pb2
from earthsignature.proto.snapearth.api.v2.database import database_pb2_grpc as v2_pb2_grpc

__all__ = [
    "geobuf_pb2",
    "r2_v1_pb2",
    "r2_v1_pb2_grpc",
    "r2_v2_pb2",
    "r2_v2_pb2_grpc",
    "v1_pb2",
    "v1_pb2_grpc",
    "v2_pb2",
    "v2_pb2_grpc",
]
