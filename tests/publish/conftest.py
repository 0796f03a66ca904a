"""Fixtures for the publish tests: CORINE rasters with known class areas on a UTM grid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.features import sieve
from rasterio.transform import from_origin
from scipy.ndimage import gaussian_filter

from earthsignature.corine import NODATA
from earthsignature.functions.cog import to_cog
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.polygons import sieve_thresholds
from earthsignature.runtime import Runtime
from earthsignature.settings import load_settings
from earthsignature.storage import ObjectStore, layout
from earthsignature.testing.products import product_ref

CRS = "EPSG:32629"
#: 10 m pixels, 240 x 200 px, inside UTM zone 29N (Morocco, like the sample tile 29RKH).
TRANSFORM = from_origin(300000.0, 3500000.0, 10.0, 10.0)
HEIGHT, WIDTH = 200, 240
PIXEL_M2 = 100.0
PRODUCT = "S2A_MSIL2A_20200219T112121_N0214_R037_T29RKH_20200219T133526"
DATE = "2020-02-19"


def block_codes() -> np.ndarray:
    """Blocks of four classes, a U-shaped water body crossing rows, no data and specks.

    - rows 0-99: 311 (cols 0-119) and 211 (cols 120-239); rows 100-199: 312 and 231.
    - a U of 512 (two 8 px wide arms, cols 30-37 and 80-87, rows 20-160, joined by rows
      153-160): both arms cross every strip border and meet only near the bottom.
    - a 2 x 2 speck of 111 inside 311 (below the 0.5 ha MMU even scaled 3x: sieved away)
      and a 10 x 10 patch of 112 inside 211 (1 ha: kept).
    - a no-data corner (rows 180-199, cols 200-239), e.g. a cloud.
    """
    codes = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)
    codes[:100, :120] = 311
    codes[:100, 120:] = 211
    codes[100:, :120] = 312
    codes[100:, 120:] = 231
    codes[20:161, 30:38] = 512
    codes[20:161, 80:88] = 512
    codes[153:161, 30:88] = 512
    codes[60:62, 60:62] = 111
    codes[40:50, 170:180] = 112
    codes[180:, 200:] = 0
    return codes


def write_raster(path: Path, codes: np.ndarray, *, dtype: str = "uint16", **extra: object) -> Path:
    profile = {
        "driver": "GTiff",
        "width": codes.shape[1],
        "height": codes.shape[0],
        "count": 1,
        "dtype": dtype,
        "crs": CRS,
        "transform": TRANSFORM,
        "tiled": True,
        "blockxsize": 64,
        "blockysize": 64,
        "nodata": 0,
        **extra,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(codes.astype(dtype), 1)
    return path


#: The published rasters are the block raster scaled up 3x (720 x 600 px), large enough
#: for the COG to have an overview level.
SCALE = 3


def scaled_codes() -> np.ndarray:
    return np.kron(block_codes(), np.ones((SCALE, SCALE), dtype=np.uint16))


@pytest.fixture
def segmentation(tmp_path: Path) -> Path:
    """The block raster as the stitch stage leaves it: a tiled uint16 GeoTIFF, no data 0."""
    return write_raster(tmp_path / "stitched.tif", scaled_codes())


@pytest.fixture
def runtime(store: ObjectStore) -> Runtime:
    return Runtime(settings=load_settings(store="unused"), store=store)


@pytest.fixture
def make_message(store: ObjectStore, tmp_path: Path) -> Callable[..., ProductMessage]:
    """A vectorize message whose cloud mask (a real 1-bit COG) is already stored."""
    mask_key = layout.mask_key(DATE, "29RKH", PRODUCT)
    raw = tmp_path / "cloud-raw.tif"
    write_raster(raw, (scaled_codes() == 0).astype(np.uint8), dtype="uint8", nodata=None)
    cog = tmp_path / "cloud.tif"
    to_cog(raw, cog, nbits=1)
    store.put_file(mask_key, cog)

    def make(**overrides: object) -> ProductMessage:
        fields: dict[str, object] = {
            "product_id": PRODUCT,
            "date": DATE,
            "tile": "29RKH",
            "model": "clc-test",
            "version": 2,
            "run": "run1",
            "item": product_ref(
                PRODUCT,
                "2020-02-19T11:21:21Z",
                "29RKH",
                cloud_cover=4.2,
                published="2020-02-19T16:00:00Z",
            ),
            "cloud_mask": mask_key,
            "cloud_fraction": 3.5,
            "grid": {
                "crs": CRS,
                "transform": list(TRANSFORM)[:6],
                "width": WIDTH * SCALE,
                "height": HEIGHT * SCALE,
            },
            "created": "2026-01-01T00:00:00Z",
        }
        fields.update(overrides)
        return ProductMessage(**fields)

    return make


def speckle_codes(seed: int) -> np.ndarray:
    """A per-pixel classifier's look: smooth patches, and a mixed area of random pixels."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.normal(size=(200, 160)), 6)
    levels = np.digitize(field, np.quantile(field, [0.33, 0.66]))
    levels[40:160, 60:140] = rng.integers(0, 3, (120, 80))
    return np.array([112, 211, 332], dtype=np.uint16)[levels]


def random_codes(seed: int) -> np.ndarray:
    """A smooth random field cut into four classes: irregular patches of every size."""
    field = gaussian_filter(np.random.default_rng(seed).normal(size=(180, 150)), 4)
    levels = np.digitize(field, np.quantile(field, [0.25, 0.5, 0.75]))
    codes = np.array([211, 311, 324, 512], dtype=np.uint16)[levels]
    codes[:30, :40] = 0  # a cloud
    return codes


def sieve_to_mmu(data: np.ndarray, mmu_px: int) -> np.ndarray:
    """The whole array sieved as the strips are (same passes, 4-connected, no-data never
    filled), but with rasterio's GDAL in memory: the reference the strip pipeline is held to."""
    for size in sieve_thresholds(mmu_px):
        data = sieve(data, size=size, mask=data != NODATA, connectivity=4)
    return data
