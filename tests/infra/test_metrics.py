"""The /metrics endpoint of a running API and of the worker-side instruments, scraped over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from earthsignature import metrics
from earthsignature.grpc_api import ingest
from earthsignature.grpc_api.server import ApiServer
from earthsignature.proto.stubs import r2_v2_pb2, r2_v2_pb2_grpc, v1_pb2, v2_pb2, v2_pb2_grpc
from earthsignature.queue.rq_setup import make_queue
from earthsignature.queue.stages import QUEUES
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore
from tests.api.conftest import MODEL, VERSION, sample_products, upload_of
from tests.infra.conftest import scrape, value

V1 = v1_pb2.DESCRIPTOR.services_by_name["DatabaseProductService"].full_name


@pytest.fixture
def api(local_store: LocalStore) -> Iterator[ApiServer]:
    """An API server over a small published catalog, with metrics on a free port."""
    settings = Settings(
        model_name=MODEL,
        model_version=VERSION,
        api_host="127.0.0.1",
        api_port=0,
        metrics_port=0,
        metrics_host="127.0.0.1",
        min_mapping_unit_m2=0.0,
    )
    rt = Runtime(settings=settings, store=local_store)
    for product in sample_products():
        ingest.ingest(rt, upload_of(product))
    server = ApiServer(settings, local_store)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


@pytest.mark.parametrize(
    ("messages", "stubs"), [(v2_pb2, v2_pb2_grpc), (r2_v2_pb2, r2_v2_pb2_grpc)], ids=["R1", "R2"]
)
def test_api_exposes_latency_and_errors(api: ApiServer, messages, stubs) -> None:  # type: ignore[no-untyped-def]
    assert api.metrics is not None
    before = scrape(api.metrics.port)
    calls, bad = 3, 2
    with grpc.insecure_channel(f"127.0.0.1:{api.port}") as channel:
        stub = stubs.DatabaseProductServiceStub(channel)
        for _ in range(calls):
            (found,) = stub.ListProductIds(messages.ListProductIdsRequest())
            assert len(found.segmentation.feature_collection.features) == len(sample_products())
        for _ in range(bad):
            request = messages.ListProductIdsRequest(categories=[999])
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.ListProductIds(request))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = scrape(api.metrics.port)

    service = messages.DESCRIPTOR.services_by_name["DatabaseProductService"].full_name
    labels = {"service": service, "method": "ListProductIds"}
    count = "earthsig_api_request_duration_seconds_count"
    total = "earthsig_api_request_duration_seconds_sum"
    assert value(after, count, **labels) - value(before, count, **labels) == calls + bad
    spent = value(after, total, **labels) - value(before, total, **labels)
    assert 0 < spent < 60  # seconds, summed over the calls
    errors = "earthsig_api_errors_total"
    assert (
        value(after, errors, **labels, code="INVALID_ARGUMENT")
        - value(before, errors, **labels, code="INVALID_ARGUMENT")
        == bad
    )
    assert value(after, errors, **labels, code="OK") == 0  # successes are not errors
    # every call landed in some latency bucket, and +Inf holds them all
    inf = value(after, "earthsig_api_request_duration_seconds_bucket", **labels, le="+Inf")
    assert inf == value(after, count, **labels)


def test_api_without_metrics_port_opens_no_endpoint(local_store: LocalStore) -> None:
    server = ApiServer(Settings(api_host="127.0.0.1", api_port=0), local_store)
    server.start()
    try:
        assert server.metrics is None
    finally:
        server.stop(grace=0.5)


@pytest.fixture
def endpoint() -> Iterator[metrics.MetricsEndpoint]:
    served = metrics.serve_metrics(0, "127.0.0.1")
    assert served is not None
    try:
        yield served
    finally:
        served.close()


@pytest.mark.parametrize(
    ("outcome", "retry", "raises", "failure_kind"),
    [
        ("ok", False, False, None),
        ("skipped", False, False, None),
        ("failed", True, False, "bad_input"),
        ("error", True, True, "transient"),
    ],
)
def test_stage_runs_are_timed_and_counted(
    endpoint: metrics.MetricsEndpoint,
    outcome: str,
    retry: bool,
    raises: bool,
    failure_kind: str | None,
) -> None:
    stage = "cloud"
    before = scrape(endpoint.port)
    if raises:
        with pytest.raises(RuntimeError), metrics.stage_run(stage, retry=retry):
            raise RuntimeError("S3 timed out")
    else:
        with metrics.stage_run(stage, retry=retry) as run:
            run.outcome = outcome
    after = scrape(endpoint.port)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("earthsig_stage_duration_seconds_count", stage=stage, outcome=outcome) == 1
    assert delta("earthsig_stage_duration_seconds_sum", stage=stage, outcome=outcome) >= 0
    assert delta("earthsig_stage_retries_total", stage=stage) == int(retry)
    for kind in ("bad_input", "transient"):
        expected = 1 if kind == failure_kind else 0
        assert delta("earthsig_stage_failures_total", stage=stage, kind=kind) == expected


def test_queue_depths_come_from_redis(endpoint: metrics.MetricsEndpoint, redis_conn) -> None:  # type: ignore[no-untyped-def]
    waiting = {"fetch": 3, "infer": 1}
    for name, n in waiting.items():
        queue = make_queue(name, redis_conn)
        for i in range(n):
            queue.enqueue("earthsignature.queue.jobs.run_stage", name, {"i": i})
    metrics.watch_queues(lambda: metrics.rq_queue_depths(redis_conn, QUEUES))
    samples = scrape(endpoint.port)
    for name in QUEUES:
        assert value(samples, "earthsig_queue_depth", queue=name) == waiting.get(name, 0)
    make_queue("fetch", redis_conn).empty()
    assert value(scrape(endpoint.port), "earthsig_queue_depth", queue="fetch") == 0
