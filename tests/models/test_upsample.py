"""Split's numpy 2x upsampling of 20 m bands gives the bilinear WarpedVRT's values it replaced
(no-data and image edges included), and SCL's nearest repeat gives the nearest warp's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from earthsignature.functions.upsample import Upsampled2x, is_half_resolution

#: The 10 m grid: odd on both axes, so the last 20 m pixel hangs over the edge.
HEIGHT, WIDTH = 67, 83
FINE = from_origin(300000, 4900000, 10, 10)
WINDOWS = [
    Window(0, 0, WIDTH, HEIGHT),
    Window(3, 7, 41, 30),
    Window(WIDTH - 9, HEIGHT - 4, 9, 4),
    Window(1, 0, 1, HEIGHT),
    Window(0, 5, WIDTH, 1),
]


@pytest.fixture(scope="module")
def coarse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 m uint16 band with random values, scattered no-data, a no-data block and a no-data
    first column: every rule of the warp (valid-only weights, no-data where the covering
    pixel is) is exercised."""
    rng = np.random.default_rng(19)
    data = rng.integers(1, 10000, size=(-(-HEIGHT // 2), -(-WIDTH // 2)), dtype=np.uint16)
    data[rng.random(data.shape) < 0.08] = 0
    data[10:16, 20:30] = 0
    data[:, 0] = 0
    path = tmp_path_factory.mktemp("up") / "b11.tif"
    profile = {"driver": "GTiff", "dtype": "uint16", "count": 1, "nodata": 0, "crs": "EPSG:32631"}
    with rasterio.open(
        path, "w", width=data.shape[1], height=data.shape[0], transform=FINE * FINE.scale(2),
        **profile,
    ) as ds:  # fmt: skip
        ds.write(data, 1)
    return path


def warped(ds: rasterio.DatasetReader, resampling: Resampling) -> WarpedVRT:
    return WarpedVRT(
        ds, crs=ds.crs, transform=FINE, width=WIDTH, height=HEIGHT, resampling=resampling,
        src_nodata=0, nodata=0,
    )  # fmt: skip


def test_bilinear_matches_the_warp_up_to_rounding_ties(coarse: Path) -> None:
    with rasterio.open(coarse) as ds:
        assert is_half_resolution(ds, FINE, WIDTH, HEIGHT)
        up = Upsampled2x(ds, nearest=False, width=WIDTH, height=HEIGHT)
        vrt = warped(ds, Resampling.bilinear)
        for window in WINDOWS:
            ours = up.read(1, window=window)
            theirs = vrt.read(1, window=window).astype(np.float32)
            assert ours.shape == theirs.shape
            np.testing.assert_array_equal(ours == 0, theirs == 0)  # the same no-data
            # GDAL rounds exact .5 results either way (double-precision weights); we round
            # half up. A wrong weight or a one-pixel shift would differ by hundreds.
            assert np.abs(ours - theirs).max() <= 1
            assert (ours == theirs).mean() > 0.9
        vrt.close()


def test_nearest_repeats_exactly_as_the_warp(coarse: Path) -> None:
    with rasterio.open(coarse) as ds:
        up = Upsampled2x(ds, nearest=True, width=WIDTH, height=HEIGHT)
        vrt = warped(ds, Resampling.nearest)
        for window in WINDOWS:
            np.testing.assert_array_equal(up.read(1, window=window), vrt.read(1, window=window))
        vrt.close()


def test_only_an_aligned_half_resolution_grid_qualifies(coarse: Path) -> None:
    with rasterio.open(coarse) as ds:
        assert not is_half_resolution(ds, FINE * FINE.translation(1, 0), WIDTH, HEIGHT)
        assert not is_half_resolution(ds, FINE, WIDTH + 2, HEIGHT)
        assert not is_half_resolution(ds, FINE * FINE.scale(2), WIDTH // 2, HEIGHT // 2)
