"""The server process: health, TLS, message size limits, `earthsig serve` and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from earthsignature.grpc_api import ingest
from earthsignature.grpc_api.server import SERVICE_NAMES, ApiServer
from earthsignature.proto.stubs import v1_pb2, v1_pb2_grpc
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore
from earthsignature.testing.ports import free_port
from tests.api.conftest import MODEL, sample_products, self_signed, upload_of


@pytest.mark.parametrize("service", ["", *SERVICE_NAMES])
def test_health_is_serving(channel: grpc.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = stub.Check(health_pb2.HealthCheckRequest(service=service))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def small_store(tmp_path: Path) -> LocalStore:
    """A local catalog of one product."""
    store = LocalStore(tmp_path / "store")
    settings = Settings(store=str(store.root), min_mapping_unit_m2=0.0)
    ingest.ingest(Runtime(settings=settings, store=store), upload_of(sample_products()[2]))
    return store


def local_settings(store: LocalStore, **extra: object) -> Settings:
    return Settings(
        store=str(store.root),
        model_name=MODEL,
        api_host="127.0.0.1",
        api_port=0,
        api_workers=2,
        **extra,  # type: ignore[arg-type]
    )


def test_tls(small_store: LocalStore, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = ApiServer(local_settings(small_store, api_tls_cert=cert, api_tls_key=key), small_store)
    port = server.start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        options = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as chan:
            stub = v1_pb2_grpc.DatabaseProductServiceStub(chan)
            found = list(stub.ListProductIds(v1_pb2.ListProductIdsRequest(), timeout=10))
            assert [p.product_id for p in found] == [sample_products()[2].product_id]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as plain:
            with pytest.raises(grpc.RpcError) as info:
                list(
                    v1_pb2_grpc.DatabaseProductServiceStub(plain).ListProductIds(
                        v1_pb2.ListProductIdsRequest(), timeout=5
                    )
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=0)


def test_message_size_limit_is_enforced(small_store: LocalStore) -> None:
    server = ApiServer(local_settings(small_store, api_max_message_mb=4), small_store)
    port = server.start()
    try:
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
        ) as chan:
            stub = v1_pb2_grpc.DatabaseProductServiceStub(chan)
            huge = v1_pb2.ListSegmentationRequest(wkt="x" * (5 * 1024 * 1024))
            with pytest.raises(grpc.RpcError) as info:
                list(stub.ListSegmentation(huge, timeout=10))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        server.stop(grace=0)


def test_earthsig_serve_stops_gracefully_on_sigterm(small_store: LocalStore) -> None:
    port = free_port()
    env = {
        **os.environ,
        "EARTHSIG_STORE": str(small_store.root),
        "EARTHSIG_MODEL_NAME": MODEL,
        "EARTHSIG_API_HOST": "127.0.0.1",
        "EARTHSIG_API_PORT": str(port),
    }
    earthsig = Path(sys.executable).parent / "earthsig"
    process = subprocess.Popen(
        [str(earthsig), "serve", "--grace", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
            grpc.channel_ready_future(chan).result(timeout=60)
            stub = v1_pb2_grpc.DatabaseProductServiceStub(chan)
            found = list(stub.ListProductIds(v1_pb2.ListProductIdsRequest(), timeout=10))
            assert len(found) == 1
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "listening on 127.0.0.1" in err and "stopped" in err


def test_index_loaded_before_serving(small_store: LocalStore) -> None:
    server = ApiServer(local_settings(small_store), small_store)
    started = time.monotonic()
    server.start()
    try:
        assert len(server.state.index) == 1
    finally:
        server.stop(grace=0)
    assert time.monotonic() - started < 30
