"""The composite stage in the real queue: after vectorize commits, RQ runs it on the same
queue, under the tile-period lock, without changing the product's outcome."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import rasterio
import redis
from rq.serializers import JSONSerializer

from earthsignature.functions.messages import ProductMessage
from earthsignature.grpc_api import ingest
from earthsignature.queue import jobs, status
from earthsignature.queue.enqueue import enqueue_stage
from earthsignature.queue.stages import AFTER_COMMIT_STAGES, PRODUCT_STAGES, QUEUES
from earthsignature.queue.worker import PipelineWorker
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, catalog, layout
from earthsignature.testing.rasters import geotiff_bytes
from tests.composites.conftest import CRS, DAYS, TILE, TRANSFORM, labels


def vectorize(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Stands in for stitch + publish: commits the product's map through the ingest path."""
    day = dt.date.fromisoformat(msg.date)
    ingest.ingest(
        rt,
        ingest.Upload(
            product_id=msg.product_id,
            acquired=dt.datetime.combine(day, dt.time(10, 30), tzinfo=dt.UTC),
            model=msg.model,
            version=msg.version,
            tile=msg.tile,
            segmentation=geotiff_bytes(labels(day), TRANSFORM, CRS, nodata=0),
            cloud_mask=geotiff_bytes(np.zeros((64, 64), dtype=np.uint8), TRANSFORM, CRS),
        ),
        run=msg.run,  # not "api": the queue's own composite stage folds it
    )
    return []


def test_commit_enqueues_the_composite_stage(tmp_path: Path, redis_conn: redis.Redis) -> None:
    assert AFTER_COMMIT_STAGES == ("composite",)
    assert "composite" not in PRODUCT_STAGES and len(QUEUES) == len(set(QUEUES))
    settings = Settings(
        store=str(tmp_path / "store"),
        model_name="clc-q",
        min_mapping_unit_m2=0.0,
        composites=True,
        stage_handlers={"vectorize": f"{__name__}:vectorize"},
    )
    rt = Runtime(settings=settings, store=LocalStore(tmp_path / "store"))
    jobs.set_runtime(rt)
    try:
        for day in DAYS:
            msg = ProductMessage(
                product_id=f"S2G_{TILE}_{day:%Y%m%d}_0_L2A",
                date=day.isoformat(),
                tile=TILE,
                model="clc-q",
                version=1,
                run="r1",
            )
            assert enqueue_stage(redis_conn, settings, "vectorize", msg) is not None
        worker = PipelineWorker(["vectorize"], connection=redis_conn, serializer=JSONSerializer)
        worker.work(burst=True)
    finally:
        jobs.set_runtime(None)
    prefix = layout.composite_prefix("clc-q", 1, "2024-07", TILE)
    with rasterio.open(rt.store.gdal_path(prefix + "composite.tif")) as ds:
        composite = ds.read(1)
    assert (composite[:, :32] == 311).all() and (composite[:, 32:] == 211).all()
    products = status.products(redis_conn, "r1")
    assert {(p.state, p.stage) for p in products} == {("committed", "vectorize")}
    assert len(list(catalog.iter_entries(rt.store, "clc-q", 1))) == 2
