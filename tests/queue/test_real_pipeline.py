"""The real stages on RQ: worker processes, the S3 server, a real Triton (PyTriton), a STAC API.

Three products (the real 29RKH tile and two generated scenes) are discovered, fetched,
masked, split, inferred on Triton by an infer-only worker and vectorized by CPU workers;
each is committed exactly once. Then workers are SIGKILLed in the middle of an infer and
of a vectorize job: the product still commits, with no duplicate or partial objects.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job
from rq.registry import FinishedJobRegistry
from rq.serializers import JSONSerializer

from earthsignature.queue import EmbeddedRedis, status
from earthsignature.queue.enqueue import discover_payload, enqueue_discover
from earthsignature.queue.rq_setup import make_queue
from earthsignature.storage import S3Store, catalog, layout
from tests.queue.conftest import Pipeline, make_pipeline
from tests.queue.pausing import PAUSE_PRODUCT_ENV

pytest.importorskip("pytriton")


pytestmark = [pytest.mark.slow, pytest.mark.triton]

DAY = dt.date(2020, 2, 19)
# Western Sahara to the Rhine: covers the three tiles (a world polygon does not reproject to UTM)
AOI = "POLYGON ((-14 25, 10 25, 10 50, -14 50, -14 25))"
RKH = "S2A_29RKH_20200219_0_L2A"


@pytest.fixture(scope="module")
def triton() -> Iterator[Any]:
    from earthsignature.models.repository import SHIPPED
    from earthsignature.testing.triton import TritonServer

    with TritonServer(SHIPPED, "clc-baseline", [1]) as server:
        yield server


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Items of two generated scenes of the day (small, 600 px)."""
    from earthsignature.generator import generate_product

    out = tmp_path_factory.mktemp("scenes")
    items = []
    for seed, tile in enumerate(("31TCJ", "32ULU")):
        product = generate_product(
            out, size=600, seed=seed, date=DAY.isoformat(), tile=tile, cloud_fraction=0.1
        )
        items.append(json.loads(product.item.read_text()))
    return items


def real_29rkh_item(shared_data: Path) -> dict[str, Any]:
    """The real STAC item of the 29RKH sample, its COG hrefs pointing at the local copies."""
    folder = shared_data / "s2" / "S2A_29RKH_20200219_L2A"
    item = json.loads((folder / f"{RKH}.json").read_text())
    for asset in item["assets"].values():
        name = asset["href"].rsplit("/", 1)[-1]
        if (folder / name).is_file() and name.endswith(".tif"):
            asset["href"] = str(folder / name)
    return item


@contextlib.contextmanager
def _pipeline(
    redis_conn: redis.Redis,
    redis_server: EmbeddedRedis,
    s3_store: S3Store,
    tmp_path: Path,
    stac_url: str,
    triton_url: str,
    handlers: dict[str, str] | None = None,
    **extra: str,
) -> Iterator[Pipeline]:
    yield from make_pipeline(
        redis_conn,
        redis_server,
        s3_store,
        tmp_path,
        EARTHSIG_STAGE_HANDLERS=json.dumps(handlers or {}),
        EARTHSIG_STAC_API_URL=stac_url,
        EARTHSIG_AOI_WKT=AOI,
        EARTHSIG_RETRY_BACKOFF_SCALE="0",
        TRITON_URL=triton_url,
        **extra,
    )


def _start(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    payload = discover_payload(
        start=DAY, end=DAY, run="r1", model="clc-baseline", version=1, aoi_wkt=AOI
    )
    assert enqueue_discover(pipeline.conn, settings, payload) is not None


def _all_terminal(pipeline: Pipeline, count: int):  # type: ignore[no-untyped-def]
    def check():  # type: ignore[no-untyped-def]
        found = status.products(pipeline.conn, "r1")
        if status.run_discovered(pipeline.conn, "r1") and len(found) == count:
            return {p.product_id: p for p in found} if all(p.terminal for p in found) else None
        return None

    return check


def _assert_committed_once(pipeline: Pipeline, ids: list[str]) -> None:
    store = pipeline.store
    entries = {e.product_id: e for e in catalog.iter_entries(store, "clc-baseline", 1)}
    assert sorted(entries) == sorted(ids)
    keys = [info.key for info in store.list_keys("")]
    assert len(keys) == len(set(keys))
    for pid, entry in entries.items():
        for name in ("segmentation", "polygons", "tiles", "cloud_mask", "encoded"):
            assert entry.assets[name] in keys
        # published outputs are exactly one per kind, complete and readable
        outputs = [k for k in keys if pid in k and not k.startswith(("work/", "raw/"))]
        # segmentation, polygons, tiles, mask, pre-encoded polygons, catalog
        assert len(outputs) == 6, outputs
        import pyogrio
        import rasterio

        with store.gdal_env():
            with rasterio.open(store.gdal_path(entry.assets["segmentation"])) as ds:
                assert ds.dtypes[0] == "uint16"
                assert ds.read(1, out_shape=(64, 64)).any()
            info = pyogrio.read_info(store.gdal_path(entry.assets["polygons"]))
            assert info["features"] > 0
        assert not [k for k in keys if k.startswith(layout.RECORDS)]


@pytest.mark.shared_data
def test_three_products_with_real_tile_commit_exactly_once(
    redis_conn: redis.Redis,
    redis_server: EmbeddedRedis,
    s3_store: S3Store,
    tmp_path: Path,
    triton: Any,
    scenes: list[dict[str, Any]],
    shared_data: Path,
) -> None:
    from earthsignature.testing.stac_server import StacServer

    items = [*scenes, real_29rkh_item(shared_data)]
    with (
        StacServer(items) as stac,
        _pipeline(
            redis_conn, redis_server, s3_store, tmp_path, stac.url, triton.grpc_url
        ) as pipeline,
    ):
        pipeline.start_workers(2, ["cpu"])
        pipeline.start_workers(1, ["infer"])  # the "GPU host": only infer, TRITON_URL set
        _start(pipeline)
        states = pipeline.wait(_all_terminal(pipeline, 3), timeout=240, what="3 products")
    ids = [item["id"] for item in items]
    assert {pid: (p.state, p.stage, p.reason) for pid, p in states.items()} == dict.fromkeys(
        ids, ("committed", "vectorize", None)
    )
    assert {pid: p.state for pid, p in states.items()} == dict.fromkeys(ids, "committed")
    failures = {pid: p.failures for pid, p in states.items()}
    assert all(p.retries == 0 and not p.failures for p in states.values()), failures
    assert all(p.shards and p.shards_done == p.shards for p in states.values())
    _assert_committed_once(pipeline, ids)
    finished = FinishedJobRegistry(queue=make_queue("vectorize", redis_conn))
    ran = Job.fetch_many(finished.get_job_ids(), connection=redis_conn, serializer=JSONSerializer)
    stages = [job.args[0] for job in ran if job is not None]  # composites share the queue
    assert stages.count("vectorize") == 3  # one vectorize job per product, none repeated
    assert FinishedJobRegistry(queue=make_queue("infer", redis_conn)).count == sum(
        p.shards or 0 for p in states.values()
    )


@pytest.mark.parametrize("stage", ["infer", "vectorize"])
def test_worker_killed_mid_job_product_still_commits(
    redis_conn: redis.Redis,
    redis_server: EmbeddedRedis,
    s3_store: S3Store,
    tmp_path: Path,
    triton: Any,
    scenes: list[dict[str, Any]],
    stage: str,
) -> None:
    from earthsignature.testing.stac_server import StacServer

    victim = scenes[0]["id"]
    handlers = {stage: f"tests.queue.pausing:{stage}"}
    with (
        StacServer(scenes) as stac,
        _pipeline(
            redis_conn,
            redis_server,
            s3_store,
            tmp_path,
            stac.url,
            triton.grpc_url,
            handlers=handlers,
            **{PAUSE_PRODUCT_ENV: victim},
        ) as pipeline,
    ):
        pipeline.start_workers(3)
        _start(pipeline)
        pid = int(
            pipeline.wait(
                lambda: redis_conn.get(f"test:blocked:{stage}:{victim}"),
                timeout=180,
                what=f"{stage} of {victim} paused mid-job",
            )
        )
        os.killpg(pid, signal.SIGKILL)  # worker and its children, mid-job
        states = pipeline.wait(_all_terminal(pipeline, 2), timeout=180, what="2 products")
    assert {p.state for p in states.values()} == {"committed"}
    lost = states[victim]
    assert lost.retries == 1 and lost.failures[0]["stage"] == stage
    assert "worker lost" in lost.failures[0]["reason"]
    _assert_committed_once(pipeline, [s["id"] for s in scenes])
