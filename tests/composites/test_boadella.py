"""Real two-date check: Boadella reservoir, 2020-01-13 and 2020-01-28, through a real model.

Both dates are segmented by ``clc-baseline``, committed (on a UTM grid of the sample's size:
the sample is EPSG:4326 and only the pixel grid matters here) and folded into their
January composite. Water labelled on both dates must come out water in the composite at
least as often as on the better single date, and the composite's water must be labelled
water on at least one date more than half of the time.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
from affine import Affine

from earthsignature.composites import stage
from earthsignature.grpc_api import ingest
from earthsignature.models.evaluate import predict_codes
from earthsignature.models.repository import SHIPPED, ModelRepository
from earthsignature.models.runners import EmbeddedRunner
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, catalog, layout
from earthsignature.testing.rasters import geotiff_bytes

pytestmark = pytest.mark.shared_data
ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
DATES = {"2020-01-13": "2020-01-13", "2020-01-28": "2020-02-02"}  # image -> its labels
UTM = Affine(10, 0, 480000, 0, -10, 4690000)


def test_two_dates_of_boadella_compose(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "s2" / "boadella"
    model = EmbeddedRunner(ModelRepository(SHIPPED), "clc-baseline", 1, threads=2)
    rt = Runtime(
        Settings(store=str(tmp_path / "store"), min_mapping_unit_m2=0.0),
        LocalStore(tmp_path / "store"),
    )
    singles, labelled = [], []
    for image, labels in DATES.items():
        with rasterio.open(folder / f"Boadella_{image}.tif") as ds:
            stack = ds.read().astype(np.float32) * np.float32(1e-4)
            shape, transform = (ds.height, ds.width), ds.transform
        reflectance = np.stack([stack[ORDER.index(b)] for b in model.spec.bands])
        codes = predict_codes(lambda c: model.predict(c).classes, model.spec, reflectance)
        features = json.loads((folder / f"Boadella_{labels}_labels.geojson").read_text())
        labelled.append(
            rasterio.features.rasterize(
                [(f["geometry"], 1) for f in features["features"]], shape, transform=transform
            ).astype(bool)
        )
        singles.append(codes)
        day = dt.date.fromisoformat(image)
        pid = f"S2B_31TDG_{day:%Y%m%d}_0_L2A"
        ingest.ingest(
            rt,
            ingest.Upload(
                product_id=pid,
                acquired=dt.datetime.combine(day, dt.time(10, 40), tzinfo=dt.UTC),
                model="clc-baseline",
                version=1,
                tile="31TDG",
                segmentation=geotiff_bytes(codes, UTM, "EPSG:32631", nodata=0),
                cloud_mask=geotiff_bytes(np.zeros(shape, np.uint8), UTM, "EPSG:32631"),
            ),
        )
        entry = catalog.read_committed(rt.store, "clc-baseline", 1, day, pid)
        assert entry is not None
        stage.update_composites(rt, entry, vectors=False)
    prefix = layout.composite_prefix("clc-baseline", 1, "2020-01", "31TDG")
    with rasterio.open(rt.store.gdal_path(prefix + "composite.tif")) as ds:
        composite = ds.read(1)
    with rasterio.open(rt.store.gdal_path(prefix + "observations.tif")) as ds:
        observations = ds.read(1)
    seen_twice = (singles[0] != 0) & (singles[1] != 0)
    assert (observations[seen_twice] == 2).all()
    always_water = labelled[0] & labelled[1]
    recalls = [float((s[always_water] // 100 == 5).mean()) for s in singles]
    recall = float((composite[always_water] // 100 == 5).mean())
    precision = float((labelled[0] | labelled[1])[composite // 100 == 5].mean())
    assert recall >= max(recalls) and precision > 0.5, (recall, recalls, precision)
