"""Shared fixtures: real servers (S3, Redis) on loopback, stores, the shared sample data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from earthsignature.queue import EmbeddedRedis
from earthsignature.storage import LocalStore, ObjectStore, S3Store
from earthsignature.testing.ports import free_port
from earthsignature.testing.seaweed import SeaweedS3

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TEST_BUCKET = "earthsig-test"
# Tests that run the pipeline in-process on generated scenes pin the fast rule model: what they
# check does not depend on the model, and the learned default (dynamicworld-clc) is ~100x slower
# per chip. Tests of the default itself (demo, tests/models/test_dynamicworld.py) clear or set
# EARTHSIG_MODEL_NAME explicitly.
os.environ.setdefault("EARTHSIG_MODEL_NAME", "clc-baseline")
# Likewise the composite stage after each commit: tests of composites turn it on themselves.
os.environ.setdefault("EARTHSIG_COMPOSITES", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the project; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS weed mini) for the whole session, on free loopback ports."""
    server = SeaweedS3()
    try:
        server.create_bucket(TEST_BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_store(s3_server: SeaweedS3) -> S3Store:
    """An S3Store under a fresh prefix of the session bucket, so tests never see each other."""
    return s3_server.store(TEST_BUCKET, f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server (ThreadedMotoServer) on a loopback port: a second S3 implementation
    beside SeaweedFS, for the storage contract."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
    ).create_bucket(Bucket=TEST_BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def moto_store(moto_endpoint: str) -> S3Store:
    """An S3Store under a fresh prefix of the moto server's bucket."""
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    return S3Store(
        TEST_BUCKET, prefix, endpoint_url=moto_endpoint, access_key="moto", secret_key="moto"
    )


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each test using it runs once on the local backend and once on the S3 server."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_conn(redis_server: EmbeddedRedis):  # type: ignore[no-untyped-def]
    """A connection to the session's embedded Redis, emptied before each test."""
    conn = redis_server.connection()
    conn.flushall()
    yield conn
    conn.close()
