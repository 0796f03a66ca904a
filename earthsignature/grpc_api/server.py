"""The gRPC server: V1 and V2 services, reflection, health, TLS, limits, graceful stop.

Requests are decoded by :func:`_tolerant` instead of the generated stubs' ``FromString``, so a
request that is not even valid protobuf (e.g. broken geobuf bytes) is answered with
INVALID_ARGUMENT rather than grpc's INTERNAL "Exception deserializing request". The index is
loaded before the port opens and refreshed by a background thread every
``api_refresh_seconds``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from earthsignature.errors import ConfigurationError
from earthsignature.grpc_api import stats, v1, v2
from earthsignature.grpc_api.errors import MalformedRequest
from earthsignature.grpc_api.index import ProductIndex
from earthsignature.grpc_api.state import ApiState
from earthsignature.metrics import ApiMetricsInterceptor, MetricsEndpoint, serve_metrics
from earthsignature.proto.stubs import v1_pb2, v2_pb2
from earthsignature.settings import Settings
from earthsignature.storage.base import ObjectStore

log = logging.getLogger(__name__)

SERVICE = "DatabaseProductService"


def _tolerant(cls: Any) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return MalformedRequest(f"request is not a valid {cls.DESCRIPTOR.full_name}: {exc}")

    return deserialize


def _service_handler(module: ModuleType, servicer: Any) -> grpc.GenericRpcHandler:
    """Method handlers for a generated service, built from its descriptor."""
    service = module.DESCRIPTOR.services_by_name[SERVICE]
    handlers = {}
    for method in service.methods:
        request_cls = getattr(module, method.input_type.name)
        response_cls = getattr(module, method.output_type.name)
        factory = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = factory(
            getattr(servicer, method.name),
            request_deserializer=_tolerant(request_cls),
            response_serializer=response_cls.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


SERVICE_NAMES = (
    v1_pb2.DESCRIPTOR.services_by_name[SERVICE].full_name,
    v2_pb2.DESCRIPTOR.services_by_name[SERVICE].full_name,
)


class ApiServer:
    """One running API server; ``start()`` returns the bound port, ``stop()`` is graceful."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.state = ApiState(settings=settings, store=store, index=ProductIndex(store))
        mib = settings.api_max_message_mb * 1024 * 1024
        self.server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=settings.api_workers, thread_name_prefix="earthsig-api"
            ),
            options=[
                ("grpc.max_send_message_length", mib),
                ("grpc.max_receive_message_length", mib),
            ],
            interceptors=[ApiMetricsInterceptor()],
        )
        self.server.add_generic_rpc_handlers(
            (
                _service_handler(v1_pb2, v1.DatabaseProductService(self.state)),
                _service_handler(v2_pb2, v2.DatabaseProductService(self.state)),
            )
        )
        stats.stats_pb2_grpc.add_LandCoverStatsServicer_to_server(
            stats.LandCoverStats(self.state), self.server
        )
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, stats.SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
            self.server,
        )
        self._stopping = threading.Event()
        self._refresher: threading.Thread | None = None
        self.port = 0
        self.metrics: MetricsEndpoint | None = None

    def _bind(self) -> int:
        address = f"{self.settings.api_host}:{self.settings.api_port}"
        cert, key = self.settings.api_tls_cert, self.settings.api_tls_key
        if (cert is None) != (key is None):
            raise ConfigurationError(
                "TLS needs both EARTHSIG_API_TLS_CERT and EARTHSIG_API_TLS_KEY"
            )
        if cert is not None and key is not None:
            credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
            return self.server.add_secure_port(address, credentials)
        return self.server.add_insecure_port(address)

    def start(self) -> int:
        """Load the index, bind, start serving and refreshing; returns the port."""
        loaded = self.state.index.refresh()
        log.info("index loaded: %d products", loaded)
        self.port = self._bind()
        if not self.port:
            raise ConfigurationError(
                f"cannot listen on {self.settings.api_host}:{self.settings.api_port}"
            )
        self.server.start()
        self.metrics = serve_metrics(self.settings.metrics_port, self.settings.metrics_host)
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._refresher = threading.Thread(
            target=self._refresh_loop, name="earthsig-api-index", daemon=True
        )
        self._refresher.start()
        return self.port

    def _refresh_loop(self) -> None:
        while not self._stopping.wait(self.settings.api_refresh_seconds):
            try:
                self.state.index.refresh()
            except Exception:  # a store hiccup must not kill the refresher
                log.exception("index refresh failed; retrying later")

    def stop(self, grace: float | None = 10.0) -> None:
        """Stop accepting calls, let running ones finish within ``grace`` seconds."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
        if self.metrics is not None:
            self.metrics.close()

    def wait(self) -> None:
        self.server.wait_for_termination()
