"""The shipped default model on real Sentinel-2 L2A samples (../shared/data).

Thresholds: 29RKH is Saharan desert (CLC 33x); the baseline puts all of it in 331/332 today, so
>= 90 % leaves room for the 4 % of thin cloud and the odd coastal or vegetated pixel while
failing on any rule change that turns desert into vegetation, urban or water. Boadella's water
polygons are hand drawn (edges and a partly dry, turbid January reservoir): >= 50 % recall and
>= 50 % precision of 5xx inside/outside them is well above chance (water is ~13 % of the area)
and below what the baseline reaches on both dates (reported in the closing note).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
from rasterio.enums import Resampling

from earthsignature.models.evaluate import predict_codes, scores
from earthsignature.models.repository import SHIPPED, ModelRepository
from earthsignature.models.runners import EmbeddedRunner

pytestmark = pytest.mark.shared_data
BOADELLA_ORDER = [
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B11",
    "B12",
]


@pytest.fixture(scope="module")
def default_model() -> EmbeddedRunner:
    return EmbeddedRunner(ModelRepository(SHIPPED), "clc-baseline", 1, threads=2)


def test_desert_tile_is_bare_or_sparsely_vegetated(
    shared_data: Path, default_model: EmbeddedRunner
) -> None:
    folder = shared_data / "s2" / "S2A_29RKH_20200219_L2A"
    layers = []
    for band in default_model.spec.bands:
        with rasterio.open(folder / f"{band}.tif") as ds:
            layers.append(
                ds.read(1, out_shape=(1098, 1098), resampling=Resampling.bilinear)
                * np.float32(1e-4)
            )
    codes = predict_codes(
        lambda c: default_model.predict(c).classes, default_model.spec, np.stack(layers)
    )
    valid = codes[codes != 0]
    assert valid.size > 0.9 * codes.size
    assert np.isin(valid // 10, [33]).mean() >= 0.9


@pytest.mark.parametrize(
    ("image", "labels"), [("2020-01-13", "2020-01-13"), ("2020-01-28", "2020-02-02")]
)
def test_boadella_water_polygons_come_out_water(
    shared_data: Path, default_model: EmbeddedRunner, image: str, labels: str
) -> None:
    folder = shared_data / "s2" / "boadella"
    with rasterio.open(folder / f"Boadella_{image}.tif") as ds:
        stack = ds.read().astype(np.float32) * np.float32(1e-4)
        shape, transform = (ds.height, ds.width), ds.transform
    reflectance = np.stack([stack[BOADELLA_ORDER.index(b)] for b in default_model.spec.bands])
    polygons = json.loads((folder / f"Boadella_{labels}_labels.geojson").read_text())["features"]
    water = rasterio.features.rasterize(
        [(f["geometry"], 1) for f in polygons], out_shape=shape, transform=transform
    )
    codes = predict_codes(
        lambda c: default_model.predict(c).classes, default_model.spec, reflectance
    )
    predicted_water = codes // 100 == 5
    recall = predicted_water[water == 1].mean()
    precision = (water[predicted_water] == 1).mean()
    assert recall >= 0.5 and precision >= 0.5, (recall, precision)
    assert scores(np.where(water == 1, 512, 0).astype(np.uint16), codes)["classes"][512][
        "recall"
    ] == pytest.approx(recall)
