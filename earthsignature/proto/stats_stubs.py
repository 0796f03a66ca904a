"""The generated ``earthsig.stats.v1`` messages and service under short names."""

from __future__ import annotations

from earthsignature.proto.earthsig.stats.v1 import stats_pb2, stats_pb2_grpc

__all__ = ["stats_pb2", "stats_pb2_grpc"]
