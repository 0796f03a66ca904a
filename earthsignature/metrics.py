"""Prometheus metrics of workers and the API, and the HTTP endpoint that exposes them.

Metric names (the operations guide and the dashboards rely on them):

- ``earthsig_stage_duration_seconds{stage,outcome}``: histogram of stage job run times;
  outcome is ``ok``, ``skipped``, ``failed`` (bad input, not retried) or ``error`` (transient,
  retried).
- ``earthsig_stage_failures_total{stage,kind}``: ``kind`` is ``bad_input`` or ``transient``.
- ``earthsig_stage_retries_total{stage}``: jobs that started as a retry.
- ``earthsig_queue_depth{queue}``: jobs waiting per queue, read from Redis at scrape time.
- ``earthsig_api_request_duration_seconds{service,method}``: gRPC call latency.
- ``earthsig_api_errors_total{service,method,code}``: calls that ended with a non-OK status.

Workers run jobs in their own process (RQ ``SimpleWorker``), so the default process-wide
registry is the one every part uses and the endpoint serves.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from rq import Queue

#: Stage jobs take seconds (cloud, split) to tens of minutes (vectorize of a full tile).
STAGE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
#: API calls: index lookups take milliseconds, raster responses seconds.
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

#: Redis key prefix of RQ's queue lists (``rq.Queue.redis_queue_namespace_prefix``).
RQ_QUEUE_PREFIX = Queue.redis_queue_namespace_prefix

STAGE_DURATION = Histogram(
    "earthsig_stage_duration_seconds",
    "Run time of one stage job, by stage and outcome (ok, skipped, failed, error).",
    ["stage", "outcome"],
    buckets=STAGE_BUCKETS,
)
STAGE_FAILURES = Counter(
    "earthsig_stage_failures",
    "Stage jobs that failed: kind bad_input (not retried) or transient (retried).",
    ["stage", "kind"],
)
STAGE_RETRIES = Counter("earthsig_stage_retries", "Stage jobs started as a retry.", ["stage"])
API_LATENCY = Histogram(
    "earthsig_api_request_duration_seconds",
    "gRPC call latency, by service and method (streams: until the last response).",
    ["service", "method"],
    buckets=API_BUCKETS,
)
API_ERRORS = Counter(
    "earthsig_api_errors",
    "gRPC calls that ended with a non-OK status, by status code name.",
    ["service", "method", "code"],
)


@dataclass
class StageRun:
    """What the stage runner reports about one job; ``outcome`` is set by the caller."""

    stage: str
    outcome: str = "ok"


@contextlib.contextmanager
def stage_run(stage: str, *, retry: bool = False) -> Iterator[StageRun]:
    """Time one stage job; an exception escaping the block counts as a transient failure."""
    if retry:
        STAGE_RETRIES.labels(stage).inc()
    run = StageRun(stage)
    started = time.perf_counter()
    try:
        yield run
    except Exception:
        run.outcome = "error"
        STAGE_FAILURES.labels(stage, "transient").inc()
        raise
    finally:
        if run.outcome == "failed":
            STAGE_FAILURES.labels(stage, "bad_input").inc()
        STAGE_DURATION.labels(stage, run.outcome).observe(time.perf_counter() - started)


class QueueDepthCollector(Collector):
    """``earthsig_queue_depth``: the length of each queue, asked of Redis on every scrape."""

    def __init__(self, depths: Callable[[], Mapping[str, int]]) -> None:
        self._depths = depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "earthsig_queue_depth", "Jobs waiting in each stage queue.", labels=["queue"]
        )
        try:
            depths = self._depths()
        except Exception:  # Redis away: report nothing rather than fail the whole scrape
            depths = {}
        for queue, depth in depths.items():
            family.add_metric([queue], float(depth))
        yield family


def rq_queue_depths(connection: Any, queues: Iterable[str]) -> dict[str, int]:
    """Jobs waiting in each RQ queue: the length of its Redis list ``rq:queue:<name>``
    (the same list KEDA's redis trigger scales on)."""
    names = list(queues)
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.llen(f"{RQ_QUEUE_PREFIX}{name}")
    return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))


_queue_collector: QueueDepthCollector | None = None


def watch_queues(
    depths: Callable[[], Mapping[str, int]], registry: CollectorRegistry = REGISTRY
) -> QueueDepthCollector:
    """Export queue depths from ``depths()`` (replacing an earlier source in this process)."""
    global _queue_collector
    if _queue_collector is not None and registry is REGISTRY:
        with contextlib.suppress(KeyError):
            registry.unregister(_queue_collector)
    collector = QueueDepthCollector(depths)
    registry.register(collector)
    if registry is REGISTRY:
        _queue_collector = collector
    return collector


@dataclass
class MetricsEndpoint:
    """A running ``/metrics`` HTTP endpoint (a daemon thread); ``close()`` stops it."""

    port: int
    _server: Any

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(port: int | None, host: str = "0.0.0.0") -> MetricsEndpoint | None:
    """Start the ``/metrics`` endpoint when ``port`` is set (0 binds a free port).

    Unset (the default) leaves metrics off, so several commands on one host don't collide.
    """
    if port is None:
        return None
    server, _thread = start_http_server(port, addr=host)
    return MetricsEndpoint(int(server.server_port), server)


def _split_method(full: str) -> tuple[str, str]:
    service, _, method = full.lstrip("/").rpartition("/")
    return service or "unknown", method or full


def _record_call(service: str, method: str, started: float, context: Any, failed: bool) -> None:
    API_LATENCY.labels(service, method).observe(time.perf_counter() - started)
    code = context.code() if hasattr(context, "code") else None
    if code is None and failed:
        code = grpc.StatusCode.UNKNOWN
    if code is not None and code != grpc.StatusCode.OK:
        API_ERRORS.labels(service, method, code.name).inc()


class ApiMetricsInterceptor(grpc.ServerInterceptor):
    """Records latency and non-OK status codes of every unary and server-streaming call."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _split_method(handler_call_details.method)
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                started = time.perf_counter()
                failed = True
                try:
                    response = inner(request, context)
                    failed = False
                    return response
                finally:
                    _record_call(service, method, started, context, failed)

            return handler._replace(unary_unary=unary)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started = time.perf_counter()
                failed = True
                try:
                    yield from inner_stream(request, context)
                    failed = False
                finally:
                    _record_call(service, method, started, context, failed)

            return handler._replace(unary_stream=stream)
        return handler
