"""GDAL reads windows of stored COGs by range requests, locally and from the S3 server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from rasterio.windows import Window

from earthsignature.functions.cog import is_valid_cog, to_cog
from earthsignature.storage import LocalStore, S3Store
from earthsignature.testing.proxy import CountingProxy
from earthsignature.testing.seaweed import SeaweedS3
from tests.conftest import TEST_BUCKET

SIZE = 2048


@pytest.fixture(scope="module")
def cog_2048(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 2048 x 2048 uint16 COG of noisy data (so compression cannot hide the size)."""
    rng = np.random.default_rng(42)
    data = rng.integers(0, 10000, size=(SIZE, SIZE), dtype=np.uint16)
    directory = tmp_path_factory.mktemp("cog")
    plain = directory / "plain.tif"
    with rasterio.open(
        plain, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="uint16",
        crs="EPSG:32631", transform=from_origin(399960, 4900020, 10, 10), tiled=True,
    ) as ds:  # fmt: skip
        ds.write(data, 1)
    cog = directory / "cog.tif"
    to_cog(plain, cog, blocksize=256)
    assert is_valid_cog(cog)
    return cog, data


def test_window_read_from_s3_transfers_far_less_than_the_file(
    s3_server: SeaweedS3, cog_2048: tuple[Path, np.ndarray]
) -> None:
    cog, data = cog_2048
    with CountingProxy("127.0.0.1", s3_server.port) as proxy:
        store = s3_server.store(TEST_BUCKET, "gdal-range", endpoint_url=proxy.endpoint_url)
        store.put_file("rasters/cog.tif", cog)
        file_size = store.size("rasters/cog.tif")
        proxy.reset()
        window = Window(1024, 768, 256, 256)
        with store.gdal_env(), rasterio.open(store.gdal_path("rasters/cog.tif")) as ds:
            assert ds.crs.to_epsg() == 32631
            block = ds.read(1, window=window)
        transferred = proxy.downstream_bytes
    np.testing.assert_array_equal(block, data[768 : 768 + 256, 1024 : 1024 + 256])
    assert transferred > 0, "the read went through the proxy"
    assert transferred < file_size / 10, f"{transferred} of {file_size} bytes transferred"


def test_local_store_gives_gdal_a_plain_path(
    local_store: LocalStore, cog_2048: tuple[Path, np.ndarray]
) -> None:
    cog, data = cog_2048
    local_store.put_file("rasters/cog.tif", cog)
    with local_store.gdal_env(), rasterio.open(local_store.gdal_path("rasters/cog.tif")) as ds:
        np.testing.assert_array_equal(ds.read(1, window=Window(0, 0, 64, 64)), data[:64, :64])


def test_pyogrio_reads_flatgeobuf_from_s3_by_bbox(s3_store: S3Store, tmp_path: Path) -> None:
    points = shapely.points(np.arange(100, dtype=float), np.zeros(100))
    fgb = tmp_path / "pts.fgb"
    pyogrio.raw.write(
        fgb, geometry=shapely.to_wkb(points), field_data=[np.arange(100)], fields=["n"],
        geometry_type="Point", crs="EPSG:4326", driver="FlatGeobuf",
    )  # fmt: skip
    s3_store.put_file("vectors/pts.fgb", fgb)
    with s3_store.gdal_env():
        meta, _fids, _geoms, fields = pyogrio.raw.read(
            s3_store.gdal_path("vectors/pts.fgb"), bbox=(9.5, -1, 20.5, 1)
        )
    assert meta["crs"] == "EPSG:4326"
    assert sorted(fields[0].tolist()) == list(range(10, 21))
