"""Reliability under faults: the S3 fault proxy, Redis restarts, and a small fault run.

The proxy tests show boto3 and GDAL (rasterio and pyogrio, by range requests) succeed
through 30 % injected faults thanks to their retries; the fault run shows products still
commit exactly once while workers are SIGKILLed, Redis restarts and S3 fails 10 % of the
time, and that the verification it ends with does catch damaged stores.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import redis
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from rasterio.transform import from_origin
from rq import Retry
from rq.serializers import JSONSerializer

from earthsignature.queue import EmbeddedRedis
from earthsignature.queue.worker import PipelineWorker, ReliableQueue
from earthsignature.storage import S3Store, catalog
from earthsignature.testing.chaos import FaultPlan, fault_run, verify
from earthsignature.testing.faultproxy import FaultProxy
from earthsignature.testing.seaweed import SeaweedS3
from tests.conftest import TEST_BUCKET


@pytest.fixture
def proxy(s3_server: SeaweedS3, request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    """A proxy failing ``request.param`` (default 30 %) of requests to the test S3 server."""
    rate = getattr(request, "param", 0.3)
    with FaultProxy("127.0.0.1", s3_server.port, rate=rate, seed=7) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def faulty_store(s3_server: SeaweedS3, proxy: FaultProxy) -> S3Store:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    return s3_server.store(TEST_BUCKET, prefix, endpoint_url=proxy.endpoint_url)


def _bare_client(s3_server: SeaweedS3, endpoint: str) -> Any:
    """A boto3 client that never retries, to see single faults."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def test_store_round_trips_through_30_percent_faults(
    faulty_store: S3Store, proxy: FaultProxy
) -> None:
    blobs = {f"objs/{i}.bin": bytes([i]) * (4099 * i) for i in range(10)}
    for key, data in blobs.items():
        faulty_store.put_bytes(key, data)
    assert {k: faulty_store.get_bytes(k) for k in blobs} == blobs
    assert faulty_store.get_range("objs/5.bin", 10, 20) == bytes([5]) * 20
    assert sorted(info.key for info in faulty_store.list_keys("objs/")) == sorted(blobs)
    counts = proxy.counts
    assert counts.injected_503 > 0 and counts.injected_drops > 0
    assert counts.requests == counts.forwarded + counts.injected_503 + counts.dropped_before
    assert counts.requests > len(blobs) * 2  # the faults were retried


@pytest.mark.parametrize(
    ("kind", "stored"), [("drop-before", False), ("drop-after", True), ("503", False)]
)
def test_a_failed_put_is_all_or_nothing(s3_server: SeaweedS3, kind: str, stored: bool) -> None:
    key = f"t-{uuid.uuid4().hex[:12]}/one.bin"
    with FaultProxy("127.0.0.1", s3_server.port, rate=1.0, kinds={kind: 1}) as fault_proxy:
        client = _bare_client(s3_server, fault_proxy.endpoint_url)
        with pytest.raises((ClientError, BotoCoreError)) as raised:
            client.put_object(Bucket=TEST_BUCKET, Key=key, Body=b"x" * 200_000)
        if kind == "503":
            assert isinstance(raised.value, ClientError)
            assert raised.value.response["Error"]["Code"] == "SlowDown"
    direct = _bare_client(s3_server, s3_server.endpoint_url)
    listed = direct.list_objects_v2(Bucket=TEST_BUCKET, Prefix=key).get("Contents", [])
    # the server applied the request only when the connection dropped after forwarding it,
    # and then the whole object is there
    assert [(o["Key"], o["Size"]) for o in listed] == ([(key, 200_000)] if stored else [])


def test_gdal_reads_cog_windows_through_faults(
    faulty_store: S3Store, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = (np.arange(1024 * 1024, dtype=np.uint32) % 65_521).astype("uint16").reshape(1024, -1)
    path = tmp_path / "cog.tif"
    profile = {"driver": "COG", "width": 1024, "height": 1024, "count": 1, "dtype": "uint16"}
    with rasterio.open(
        path, "w", **profile, crs="EPSG:32631", transform=from_origin(0, 0, 10, 10), blocksize=256
    ) as ds:
        ds.write(data, 1)
    with proxy.paused():
        faulty_store.put_file("cog/x.tif", path)
    before = proxy.counts.requests
    for row in range(0, 800, 100):
        window = ((row, row + 200), (300, 700))
        with faulty_store.gdal_env(), rasterio.open(faulty_store.gdal_path("cog/x.tif")) as ds:
            assert (ds.read(1, window=window) == data[row : row + 200, 300:700]).all()
    assert proxy.counts.requests > before
    assert proxy.counts.ranged > 0  # GDAL read by range requests
    assert proxy.counts.injected > 0


_READ_FGB = """
import sys, pyogrio.raw
from earthsignature.storage import S3Store, catalog
store = S3Store(sys.argv[1], sys.argv[2], endpoint_url=sys.argv[3], access_key=sys.argv[4],
                secret_key=sys.argv[5])
for _ in range(6):
    with store.gdal_env():
        _meta, _fids, geometry, fields = pyogrio.raw.read(store.gdal_path("vec/p.fgb"))
    assert len(geometry) == 500 and sorted(fields[0]) == list(range(500)), len(geometry)
"""


def test_pyogrio_reads_flatgeobuf_through_faults(
    faulty_store: S3Store, proxy: FaultProxy, s3_server: SeaweedS3, tmp_path: Path
) -> None:
    import pyogrio.raw
    import shapely

    geoms = shapely.to_wkb([shapely.box(i, i, i + 1, i + 1) for i in range(500)])
    path = tmp_path / "p.fgb"
    pyogrio.raw.write(
        str(path), geoms, [np.arange(500)], ["code"], driver="FlatGeobuf",
        geometry_type="Polygon", crs="EPSG:4326",
    )  # fmt: skip
    with proxy.paused():
        faulty_store.put_file("vec/p.fgb", path)
    # pyogrio holds the GIL during GDAL I/O, so the reader cannot share a process with the
    # proxy's threads (as a worker does not)
    args = [faulty_store.bucket, faulty_store.prefix, proxy.endpoint_url]
    args += [s3_server.access_key, s3_server.secret_key]
    done = subprocess.run(
        [sys.executable, "-c", _READ_FGB, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert proxy.counts.ranged > 0 and proxy.counts.injected > 0


@pytest.mark.parametrize(("appendonly", "kept"), [(True, b"v"), (False, None)])
def test_redis_restart_keeps_data_only_with_persistence(
    tmp_path: Path, appendonly: bool, kept: bytes | None
) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendonly=appendonly, fsync="always") as server:
        conn = server.connection()
        conn.set("k", "v")
        port = server.port
        server.restart(kill=True)
        assert server.port == port and server.running and server.restarts == 1
        assert conn.get("k") == kept  # the client reconnects by itself
        conn.close()
    with pytest.raises(ConnectionRefusedError):  # stopped for good on leaving the context
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.mark.parametrize("retries", [1, 0])
def test_job_taken_by_a_worker_that_died_before_starting_it_is_not_lost(
    redis_conn: redis.Redis, retries: int
) -> None:
    queue = ReliableQueue("unit", connection=redis_conn, serializer=JSONSerializer)
    retry = Retry(max=retries) if retries else None
    job = queue.enqueue("tests.queue.jobs.add_and_report_pid", 2, 3, retry=retry)
    # a worker took the job off the queue, then died before registering it as started
    assert ReliableQueue.lmove(redis_conn, queue.key, None) is not None
    assert queue.count == 0 and redis_conn.llen(queue.intermediate_queue_key) == 1
    worker = PipelineWorker(
        [queue], connection=redis_conn, serializer=JSONSerializer, job_monitoring_interval=1,
        maintenance_interval=1, grace=0,
    )  # fmt: skip
    worker.clean_registries()  # first sighting
    assert queue.count == 0
    time.sleep(1.2)
    worker.clean_registries()  # still not started after heartbeat + grace: the worker is gone
    assert redis_conn.llen(queue.intermediate_queue_key) == 0
    job.refresh()
    if retries:
        assert queue.count == 1
        PipelineWorker([queue], connection=redis_conn, serializer=JSONSerializer).work(burst=True)
        job.refresh()
        assert job.is_finished and job.return_value()["sum"] == 5
    else:
        assert queue.count == 0 and job.is_failed


@pytest.fixture(scope="module")
def small_fault_run(
    s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    plan = FaultPlan(
        products=4, size=600, workers=3, kills=6, fault_rate=0.1, redis_restarts=1, timeout=150
    )
    return fault_run(plan, s3_server, TEST_BUCKET, tmp_path_factory.mktemp("faults"))


def test_fault_run_commits_every_product_exactly_once(small_fault_run: dict[str, Any]) -> None:
    figures = small_fault_run
    checks = figures["verification"]
    assert figures["finished_in_time"]
    assert checks["committed"] == 4 and checks["records_not_one"] == {}
    assert checks["states"] == {"committed": 4}
    assert not checks["orphans"] and not checks["missing_assets"] and not checks["unreadable"]
    assert checks["objects_checked"] >= 4 * 5
    assert figures["kills"] >= 6 and len(figures["kills_per_stage"]) >= 3
    assert figures["redis_restarts"] == 1
    assert figures["proxy"]["injected_503"] > 0 and figures["proxy"]["injected_drops"] > 0
    assert figures["job_retries"] >= 1
    assert figures["failed_attempts"].get("worker lost", 0) >= 1
    assert figures["jobs_failed_for_good"] == 0
    assert figures["ok"]


@pytest.mark.parametrize("damage", ["truncate", "stray", "delete", "second_record"])
def test_verification_catches_a_damaged_store(
    small_fault_run: dict[str, Any], s3_server: SeaweedS3, damage: str
) -> None:
    """Copy the run's store, damage the copy, and check verify() reports it."""
    figures = small_fault_run
    source = s3_server.store(TEST_BUCKET, figures["store"]["prefix"])
    copy = s3_server.store(TEST_BUCKET, f"t-{uuid.uuid4().hex[:12]}")
    for info in source.list_keys(""):
        if not info.key.startswith("work/"):
            copy.put_bytes(info.key, source.get_bytes(info.key))
    expected = sorted(e.product_id for e in catalog.iter_entries(source, "clc-baseline", 1))
    assert len(expected) == 4
    states = dict.fromkeys(expected, "committed")
    assert verify(copy, "clc-baseline", 1, expected, states).ok
    segmentation = next(k for k in (i.key for i in copy.list_keys("segmentations/")))
    record = next(k for k in (i.key for i in copy.list_keys("catalog/")))
    if damage == "truncate":
        whole = copy.get_bytes(segmentation)
        copy.put_bytes(segmentation, whole[: len(whole) // 2])
    elif damage == "stray":
        copy.put_bytes(segmentation.replace(".tif", "-partial.tif"), b"half")
    elif damage == "delete":
        copy.delete(segmentation)
    else:
        day = record.split("date=", 1)[1].split("/", 1)[0]
        copy.put_bytes(record.replace(day, "2024-06-30"), copy.get_bytes(record))
    result = verify(copy, "clc-baseline", 1, expected, states)
    assert not result.ok
    found = {
        "truncate": result.unreadable,
        "stray": result.orphans,
        "delete": result.missing_assets,
        "second_record": [n for n in result.records_per_product.values() if n == 2],
    }[damage]
    assert found, result.as_dict()
