"""Products uploaded through the API's CreateProduct (the ingest path) are composited too."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import rasterio

from earthsignature.grpc_api import ingest
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, layout
from earthsignature.testing.rasters import geotiff_bytes
from tests.composites.conftest import CRS, TILE, TRANSFORM, labels

DAY = dt.date(2024, 7, 11)


def _upload(day: dt.date) -> ingest.Upload:
    return ingest.Upload(
        product_id=f"S2G_{TILE}_{day:%Y%m%d}_0_L2A",
        acquired=dt.datetime.combine(day, dt.time(10, 30), tzinfo=dt.UTC),
        model="clc-up",
        version=1,
        tile=TILE,
        segmentation=geotiff_bytes(labels(day), TRANSFORM, CRS, nodata=0),
        cloud_mask=geotiff_bytes(np.zeros((64, 64), dtype=np.uint8), TRANSFORM, CRS),
    )


def test_uploaded_product_is_folded_into_its_composites(tmp_path: Path) -> None:
    settings = Settings(store=str(tmp_path / "store"), min_mapping_unit_m2=0.0, composites=True)
    rt = Runtime(settings=settings, store=LocalStore(tmp_path / "store"))
    ingest.ingest(rt, _upload(DAY))
    for period in ("2024-07", "2024-JJA", "R12-2024-07"):
        prefix = layout.composite_prefix("clc-up", 1, period, TILE)
        with rasterio.open(rt.store.gdal_path(prefix + "observations.tif")) as ds:
            assert (ds.read(1) == 1).all()
    off = Runtime(settings=settings.model_copy(update={"composites": False}), store=rt.store)
    ingest.ingest(off, _upload(DAY + dt.timedelta(days=1)))  # composites off: not folded
    prefix = layout.composite_prefix("clc-up", 1, "2024-07", TILE)
    with rasterio.open(rt.store.gdal_path(prefix + "observations.tif")) as ds:
        assert (ds.read(1) == 1).all()
