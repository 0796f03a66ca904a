"""Committed products whose land cover is known pixel by pixel: the generator's truth map.

Date 1 is the truth with a cloud block; date 2 is the truth with a block turned urban (111)
and its own cloud block, stored on a grid shifted by two pixels, so the change known by
construction must come out of the WarpedVRT alignment. A third product, same date 1 but on
another tile, checks that products of one date add up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer

from earthsignature.generator import generate_product
from earthsignature.grpc_api import ingest
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore
from earthsignature.testing.rasters import geotiff_bytes

MODEL, VERSION = "clc-stats", 1
DAY1, DAY2 = dt.date(2024, 6, 1), dt.date(2024, 8, 1)
SIZE = 192
SHIFT_PX = 2  # date 2's grid origin moves two pixels east and south
CHANGED = (slice(100, 150), slice(50, 120))  # rows, cols of date 1's grid turned urban
URBAN = 111


@dataclass(frozen=True)
class Scene:
    """What was committed, on date 1's grid."""

    crs: str
    transform: Affine
    truth1: np.ndarray
    cloud1: np.ndarray
    truth2: np.ndarray  # date 2 on date 1's grid (0 where date 2 has no data)
    cloud2: np.ndarray
    other_truth: np.ndarray  # the second tile's product of date 1
    other_transform: Affine
    store: LocalStore
    settings: Settings

    def lonlat(self, geom: shapely.Geometry, crs: str | None = None) -> shapely.Geometry:
        to = Transformer.from_crs(crs or self.crs, "EPSG:4326", always_xy=True)
        dense = shapely.segmentize(geom, 5.0)
        return shapely.transform(dense, lambda xy: np.column_stack(to.transform(*xy.T)))


def upload(
    pid: str, day: dt.date, tile: str, seg: np.ndarray, cloud: np.ndarray, t: Affine, crs: str
) -> ingest.Upload:
    return ingest.Upload(
        product_id=pid,
        acquired=dt.datetime.combine(day, dt.time(10, 30), tzinfo=dt.UTC),
        model=MODEL,
        version=VERSION,
        tile=tile,
        segmentation=geotiff_bytes(seg, t, crs, nodata=0),
        cloud_mask=geotiff_bytes(cloud, t, crs),
    )


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    root: Path = tmp_path_factory.mktemp("stats")
    gen = generate_product(root / "gen", size=SIZE, seed=7, date=DAY1.isoformat(), tile="31TCJ")
    with rasterio.open(gen.truth) as src:
        truth, transform, crs = src.read(1), src.transform, src.crs.to_string()
    cloud1 = np.zeros_like(truth, dtype=np.uint8)
    cloud1[:40, :40] = 1
    changed = truth.copy()
    changed[CHANGED] = URBAN
    # date 2 stored on a grid shifted by SHIFT_PX: its pixel (r, c) is date 1's (r+2, c+2)
    t2 = transform * Affine.translation(SHIFT_PX, SHIFT_PX)
    stored2 = np.zeros_like(truth)
    stored2[:-SHIFT_PX, :-SHIFT_PX] = changed[SHIFT_PX:, SHIFT_PX:]
    stored_cloud2 = np.zeros_like(cloud1)
    stored_cloud2[150:180, 150:180] = 1
    truth2 = np.zeros_like(truth)
    truth2[SHIFT_PX:, SHIFT_PX:] = stored2[:-SHIFT_PX, :-SHIFT_PX]
    cloud2 = np.zeros_like(cloud1)
    cloud2[SHIFT_PX:, SHIFT_PX:] = stored_cloud2[:-SHIFT_PX, :-SHIFT_PX]
    other = np.flipud(truth).copy()
    other_t = transform * Affine.translation(SIZE * 3, 0)  # 5.76 km east, no overlap

    store = LocalStore(root / "store")
    settings = Settings(
        store=str(root / "store"), model_name=MODEL, model_version=VERSION, min_mapping_unit_m2=0.0
    )
    rt = Runtime(settings=settings, store=store)
    for up in (
        upload("S2G_31TCJ_20240601_0_L2A", DAY1, "31TCJ", truth, cloud1, transform, crs),
        upload("S2G_31TCJ_20240801_0_L2A", DAY2, "31TCJ", stored2, stored_cloud2, t2, crs),
        upload(
            "S2G_31TDJ_20240601_0_L2A", DAY1, "31TDJ", other, np.zeros_like(cloud1), other_t, crs
        ),
    ):
        ingest.ingest(rt, up)
    return Scene(crs, transform, truth, cloud1, truth2, cloud2, other, other_t, store, settings)


@pytest.fixture(scope="session")
def whole_area(scene: Scene) -> shapely.Geometry:
    """An area holding all of date 1's first tile (and nothing of the other tile)."""
    minx, maxy = scene.transform * (0, 0)
    maxx, miny = scene.transform * (SIZE, SIZE)
    return scene.lonlat(shapely.box(minx - 500, miny - 500, maxx + 500, maxy + 500))


PX_M2 = 100.0


def expected_areas(codes: np.ndarray, cloud: np.ndarray) -> tuple[dict[int, float], float]:
    """Truth class areas over clear mapped pixels, and the cloudy mapped area (m²)."""
    mapped = codes > 0
    clear = codes[mapped & (cloud == 0)]
    values, counts = np.unique(clear, return_counts=True)
    areas = {int(v): float(n) * PX_M2 for v, n in zip(values, counts, strict=True)}
    return areas, float(np.count_nonzero(mapped & (cloud == 1))) * PX_M2
