"""A corrupt object in a real store: DATA_LOSS naming its key, the rest of the answer served.

Two products are published on the S3 server by the pipeline's publish step; then the newer
one's segmentation COG and polygons FlatGeobuf are really truncated in the store. A streaming
answer serves the intact product, skips the broken one and ends with DATA_LOSS naming the key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest

from earthsignature.grpc_api import ingest
from earthsignature.grpc_api.server import ApiServer
from earthsignature.proto.stubs import (
    r2_v1_pb2,
    r2_v1_pb2_grpc,
    v1_pb2,
    v1_pb2_grpc,
    v2_pb2,
    v2_pb2_grpc,
)
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import S3Store
from earthsignature.storage.catalog import CatalogEntry
from earthsignature.testing.seaweed import SeaweedS3
from tests.api.conftest import sample_products, upload_of
from tests.conftest import TEST_BUCKET

MODEL = "clc-corrupt"
INTACT, BROKEN = sample_products()[0], sample_products()[1]  # BROKEN is the newer one


def truncate(store: S3Store, key: str) -> None:
    data = store.get_bytes(key)
    store.put_bytes(key, data[: len(data) // 2])


@pytest.fixture(scope="module")
def broken_server(
    s3_server: SeaweedS3, api_settings: Settings
) -> Iterator[tuple[ApiServer, dict[str, CatalogEntry]]]:
    store = s3_server.store(TEST_BUCKET, f"corrupt-{uuid.uuid4().hex[:12]}")
    settings = api_settings.model_copy(update={"model_name": MODEL, "api_max_results": 5})
    rt = Runtime(settings=settings, store=store)
    entries = {p.product_id: ingest.ingest(rt, upload_of(p, model=MODEL)) for p in (INTACT, BROKEN)}
    broken = entries[BROKEN.product_id].assets
    truncate(store, broken["segmentation"])
    truncate(store, broken["polygons"])
    server = ApiServer(settings, store)
    server.start()
    try:
        yield server, entries
    finally:
        server.stop(grace=0.5)


def drain(answers: Iterator[object]) -> tuple[list[object], grpc.RpcError]:
    got: list[object] = []
    with pytest.raises(grpc.RpcError) as info:
        for answer in answers:
            got.append(answer)
    return got, info.value


IDS = [INTACT.product_id, BROKEN.product_id]


@pytest.mark.parametrize(
    ("stubs", "messages"), [(v1_pb2_grpc, v1_pb2), (r2_v1_pb2_grpc, r2_v1_pb2)], ids=["R1", "R2"]
)
def test_v1_serves_the_rest_then_data_loss(broken_server, stubs, messages) -> None:  # type: ignore[no-untyped-def]
    server, entries = broken_server
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = stubs.DatabaseProductServiceStub(channel)
        request = messages.ListSegmentationRequest(product_ids=IDS)
        got, error = drain(stub.ListSegmentation(request))
    assert [a.product_id for a in got] == [INTACT.product_id]
    assert error.code() == grpc.StatusCode.DATA_LOSS
    assert entries[BROKEN.product_id].assets["segmentation"] in error.details()
    assert BROKEN.product_id in error.details()


def test_v2_serves_the_rest_then_data_loss(broken_server) -> None:  # type: ignore[no-untyped-def]
    server, entries = broken_server
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = v2_pb2_grpc.DatabaseProductServiceStub(channel)
        got, error = drain(stub.ListSegmentation(v2_pb2.ListSegmentationRequest(product_ids=IDS)))
    assert len(got) == 1
    assert error.code() == grpc.StatusCode.DATA_LOSS
    assert entries[BROKEN.product_id].assets["polygons"] in error.details()


def test_intact_product_alone_is_ok(broken_server) -> None:  # type: ignore[no-untyped-def]
    server, _entries = broken_server
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = v1_pb2_grpc.DatabaseProductServiceStub(channel)
        request = v1_pb2.ListSegmentationRequest(product_ids=[INTACT.product_id])
        assert [a.product_id for a in stub.ListSegmentation(request)] == [INTACT.product_id]
