"""The generated ``earthsig.stats.v1`` messages and service under short names."""

from __future__ import annotations

from earthsig.stats.v1 import stats_pb2, stats_pb2_grpc

import earthsignature.proto  # noqa: F401  (puts the generated code's root on sys.path)

__all__ = ["stats_pb2", "stats_pb2_grpc"]
