"""The gRPC server: V1 and V2 of both API revisions, reflection, health, TLS, limits, stop.

Four SnapEarth services are registered (:data:`REVISIONS`): R1 (``snapearth.api.v1.database``,
``snapearth.api.v2.database``) and R2 (``snapearth.api.v1``, ``snapearth.api.v2``). Each
version has one servicer class; a revision only gives it its generated messages and (V1) its
raster encoding. The rpcs served are those of the revision's descriptor, so R2's V1 has no
SearchSegmentation. Reflection lists every service and health reports each.

Requests are decoded by :func:`_tolerant` instead of the generated stubs' ``FromString``, so a
request that is not even valid protobuf (e.g. broken geobuf bytes) is answered with
INVALID_ARGUMENT rather than grpc's INTERNAL "Exception deserializing request". The index is
loaded before the port opens and refreshed by a background thread every
``api_refresh_seconds``.

One Python process answers on about one core (the GIL). :class:`ServerGroup` runs
``api_processes`` servers on one port: each is its own process with its own index, bound with
``SO_REUSEPORT`` so the kernel spreads connections between them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
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
from earthsignature.proto.stubs import r2_v1_pb2, r2_v2_pb2, v1_pb2, v2_pb2
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


def _serialize(response: Any) -> bytes:
    """A response message's bytes; bytes are already serialized (V2 ListSegmentation's)."""
    return response if isinstance(response, bytes) else response.SerializeToString()  # type: ignore[no-any-return]


def _service_handler(module: ModuleType, servicer: Any) -> grpc.GenericRpcHandler:
    """Method handlers for a generated service, built from its descriptor."""
    service = module.DESCRIPTOR.services_by_name[SERVICE]
    handlers = {}
    for method in service.methods:
        request_cls = getattr(module, method.input_type.name)
        factory = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = factory(
            getattr(servicer, method.name),
            request_deserializer=_tolerant(request_cls),
            response_serializer=_serialize,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _servicers(state: ApiState) -> tuple[tuple[ModuleType, Any], ...]:
    """(generated module, servicer) of every served SnapEarth service."""
    return (
        (v1_pb2, v1.DatabaseProductService(state, v1_pb2, v1.BASE64_TEXT)),
        (v2_pb2, v2.DatabaseProductService(state, v2_pb2)),
        (r2_v1_pb2, v1.DatabaseProductService(state, r2_v1_pb2, v1.RAW_BYTES)),
        (r2_v2_pb2, v2.DatabaseProductService(state, r2_v2_pb2)),
    )


#: Generated modules of the served services: R1 V1, R1 V2, R2 V1, R2 V2.
REVISIONS = (v1_pb2, v2_pb2, r2_v1_pb2, r2_v2_pb2)
SERVICE_NAMES = tuple(m.DESCRIPTOR.services_by_name[SERVICE].full_name for m in REVISIONS)


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
                # shared with the other processes of a ServerGroup; else one server per port
                ("grpc.so_reuseport", int(settings.api_processes > 1)),
            ],
            interceptors=[ApiMetricsInterceptor()],
        )
        self.server.add_generic_rpc_handlers(
            tuple(_service_handler(module, servicer) for module, servicer in _servicers(self.state))
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
        for name in ("", *SERVICE_NAMES, stats.SERVICE_NAME):
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
        self.state.geos.close()

    def wait(self) -> None:
        self.server.wait_for_termination()


def _serve_child(settings: Settings, ready: Any, stop: Any, grace: float) -> None:
    """One process of a :class:`ServerGroup`: serve until ``stop``, SIGTERM or its parent dies."""
    from earthsignature.storage import open_store

    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: terminated.set())
    server = ApiServer(settings, open_store(settings))
    try:
        port = server.start()
    except Exception as exc:
        ready.put((None, f"{type(exc).__name__}: {exc}"))
        raise
    ready.put((port, len(server.state.index)))
    parent = os.getppid()
    while not terminated.is_set() and not stop.wait(0.5):
        if os.getppid() != parent:  # the group's process died (SIGKILL): do not serve orphaned
            break
    server.stop(grace)


def _reserve_port(host: str) -> socket.socket:
    """A socket holding a free port open (SO_REUSEPORT) until every process has bound it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, 0))
    return holder


class ServerGroup:
    """``settings.api_processes`` API servers answering on one port, each its own process.

    Only the first process serves ``/metrics`` (the others would collide on its port).
    """

    def __init__(self, settings: Settings, grace: float = 10.0, start_timeout: float = 600.0):
        self.settings = settings
        self.grace = grace
        self.start_timeout = start_timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.port = settings.api_port
        self.products = 0

    def _settings(self, index: int) -> Settings:
        update: dict[str, Any] = {"api_port": self.port}
        if index > 0:
            update["metrics_port"] = None
        return self.settings.model_copy(update=update)

    def _spawn(self, index: int, ready: Any) -> multiprocessing.process.BaseProcess:
        process = self._ctx.Process(
            target=_serve_child,
            args=(self._settings(index), ready, self._stop, self.grace),
            name=f"earthsig-api-{index}",
            daemon=True,
        )
        process.start()
        return process

    def start(self) -> int:
        """Start every process (each loads its own index); returns the shared port."""
        shared = self.settings.api_processes > 1
        holder = _reserve_port(self.settings.api_host) if shared and not self.port else None
        try:
            if holder is not None:
                self.port = holder.getsockname()[1]
            ready = self._ctx.Queue()
            self.processes = [self._spawn(i, ready) for i in range(self.settings.api_processes)]
            for _ in self.processes:
                port, detail = ready.get(timeout=self.start_timeout)
                if port is None or (shared and port != self.port):
                    raise ConfigurationError(f"an API server process failed to start: {detail}")
                self.port, self.products = port, detail
        except BaseException:
            self.stop(grace=0)
            raise
        finally:
            if holder is not None:
                holder.close()
        return self.port

    def revive(self) -> int:
        """Restart processes that died (a crash must not shrink the group); returns how many.

        Returns once the restarted processes serve.
        """
        ready = self._ctx.Queue()
        revived = 0
        for i, process in enumerate(self.processes):
            if not process.is_alive() and not self._stop.is_set():
                log.error("API server process %d exited (%s); restarting", i, process.exitcode)
                self.processes[i] = self._spawn(i, ready)
                revived += 1
        for _ in range(revived):
            port, detail = ready.get(timeout=self.start_timeout)
            if port != self.port:
                log.error("API server process failed to restart: %s", detail)
        return revived

    def stop(self, grace: float | None = None) -> None:
        """Ask every process to stop gracefully; kill those still running after the grace."""
        grace = self.grace if grace is None else grace
        self._stop.set()
        for process in self.processes:
            process.join(timeout=grace + 10)
            if process.is_alive():
                process.kill()
                process.join()
