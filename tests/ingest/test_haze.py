"""The cloud stage's haze figure: on the real 29RKH product (it has thin cirrus and an AOT band),
on generated scenes made hazy on purpose, and in skip records and the catalog record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from earthsignature.functions import cloud, fetch
from earthsignature.functions.cloudmask import CLOUD_CLASSES, INVALID_CLASSES
from earthsignature.functions.errors import ProductSkipped
from earthsignature.functions.haze import HazeCounter
from earthsignature.generator import generate_product
from earthsignature.storage import ObjectStore
from earthsignature.testing.stac_server import local_item
from tests.ingest.conftest import REAL, SAHARA, message, runtime


def inverted_cdf(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q, method="inverted_cdf"))


def test_counter_percentiles_are_exact_across_windows() -> None:
    rng = np.random.default_rng(0)
    scl = rng.choice(np.array([0, 4, 5, 6, 8, 10], dtype=np.uint8), size=(60, 50))
    aot = rng.integers(0, 900, size=scl.shape).astype(np.uint16)
    blue = rng.integers(0, 3000, size=scl.shape).astype(np.uint16)
    counter = HazeCounter(aot_scale=0.001, blue_scale=1e-4, blue_offset=-0.1)
    for rows in (slice(0, 17), slice(17, 40), slice(40, 60)):  # three windows
        counter.add(scl[rows], None, aot[rows], blue[rows])
    figure = counter.figure()
    valid = ~np.isin(scl, INVALID_CLASSES)
    clear = valid & ~np.isin(scl, CLOUD_CLASSES) & (aot > 0)
    land = np.isin(scl, (4, 5)) & (blue > 0)
    assert figure.cirrus_percent == pytest.approx(100 * (scl == 10).sum() / valid.sum(), abs=1e-4)
    assert figure.aot_median == pytest.approx(inverted_cdf(aot[clear], 50) / 1000)
    assert figure.aot_p90 == pytest.approx(inverted_cdf(aot[clear], 90) / 1000)
    assert figure.blue_median == pytest.approx(inverted_cdf(blue[land], 50) / 1e4 - 0.1)


def test_counter_without_aot_or_land_reports_none() -> None:
    counter = HazeCounter()
    counter.add(np.full((4, 4), 6, dtype=np.uint8))  # water only, no AOT band
    figure = counter.figure()
    assert (figure.aot_median, figure.aot_p90, figure.blue_median) == (None, None, None)
    assert figure.cirrus_percent == 0.0


def test_real_29rkh_haze(local_store: ObjectStore, shared_data: Path) -> None:
    folder = shared_data / REAL
    item = local_item(json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text()), folder)
    rt = runtime(local_store, aoi_wkt=SAHARA)
    (msg,) = fetch.handle(message(item), rt)
    assert "AOT" in msg.bands
    (msg,) = cloud.handle(msg, rt)
    assert msg.haze is not None

    with (
        rasterio.open(folder / "SCL.tif") as s,
        rasterio.open(folder / "AOT.tif") as a,
        rasterio.open(folder / "B02.tif") as b,
    ):
        scl, aot, blue = s.read(1), a.read(1), b.read(1)
    factor = scl.shape[0] // aot.shape[0]  # this sample's AOT is 3x coarser than its SCL
    aot = np.repeat(np.repeat(aot, factor, 0), factor, 1)
    valid = ~np.isin(scl, INVALID_CLASSES)
    clear = valid & ~np.isin(scl, CLOUD_CLASSES) & (aot > 0)
    cirrus = 100 * np.count_nonzero(scl == 10) / np.count_nonzero(valid)
    assert cirrus > 0.1  # the sample has thin cirrus
    assert msg.haze.cirrus_percent == pytest.approx(cirrus, abs=1e-3)
    assert msg.haze.aot_median == pytest.approx(inverted_cdf(aot[clear], 50) / 1000)
    assert msg.haze.aot_p90 == pytest.approx(inverted_cdf(aot[clear], 90) / 1000)
    assert 0 < msg.haze.aot_median <= msg.haze.aot_p90 < 1.5
    # B02 is twice as fine as SCL: either pixel of a 2 x 2 block gives the same median
    land = np.isin(scl, (4, 5))
    b20 = blue[1::2, 1::2][: scl.shape[0], : scl.shape[1]]
    assert msg.haze.blue_median == pytest.approx(np.median(b20[land & (b20 > 0)]) / 1e4, abs=3e-3)
    assert 0.02 < (msg.haze.blue_median or 0) < 0.3  # Saharan soil and rock: bright, not hazy


def hazy_copy(item_path: Path, *, cirrus_rows: int, blue_add: int) -> dict:
    """The generated product with SCL thin cirrus over its top rows and B02 brightened."""
    item = json.loads(item_path.read_text())
    scl_path = Path(item["assets"]["scl"]["href"])
    with rasterio.open(scl_path, "r+") as ds:
        scl = ds.read(1)
        scl[:cirrus_rows][scl[:cirrus_rows] == 4] = 10
        ds.write(scl, 1)
    with rasterio.open(Path(item["assets"]["blue"]["href"]), "r+") as ds:
        blue = ds.read(1)
        ds.write(np.where(blue > 0, blue + blue_add, 0).astype(blue.dtype), 1)
    return item


def test_generated_scene_turned_hazy_shows_it(local_store: ObjectStore, tmp_path: Path) -> None:
    clear_product = generate_product(tmp_path / "a", size=120, seed=4, tile="29RKH")
    # the same scene under another product id (a day later), made hazy below
    hazy_product = generate_product(
        tmp_path / "b", size=120, seed=4, tile="29RKH", date="2024-06-02"
    )
    rt = runtime(local_store, aoi_wkt=SAHARA, cloud_threshold=100.0)
    (clear,) = cloud.handle(
        fetch.handle(message(json.loads(clear_product.item.read_text())), rt)[0], rt
    )
    item = hazy_copy(hazy_product.item, cirrus_rows=20, blue_add=800)
    (hazy,) = cloud.handle(fetch.handle(message(item), rt)[0], rt)
    assert clear.haze is not None and hazy.haze is not None
    assert clear.haze.aot_median is None  # the generator writes no AOT band
    assert clear.haze.cirrus_percent == 0.0
    assert hazy.haze.cirrus_percent > 5
    # +800 DN is +0.08 reflectance on every pixel; the median of clear land moves with it
    # (less the land now under cirrus, which no longer counts as clear land)
    assert (hazy.haze.blue_median or 0) - (clear.haze.blue_median or 0) == pytest.approx(
        0.08, abs=0.02
    )


def test_skip_records_carry_the_haze_figure(local_store: ObjectStore, tmp_path: Path) -> None:
    product = generate_product(tmp_path, size=120, seed=2, tile="29RKH", cloud_fraction=0.6)
    rt = runtime(local_store, cloud_threshold=10.0, aoi_wkt=SAHARA)
    (msg,) = fetch.handle(message(json.loads(product.item.read_text())), rt)
    with pytest.raises(ProductSkipped, match="over the threshold") as info:
        cloud.handle(msg, rt)
    haze = info.value.details["haze"]
    assert set(haze) == {"aot_median", "aot_p90", "cirrus_percent", "blue_median"}
    assert haze["blue_median"] is not None and haze["cirrus_percent"] == 0.0
    json.dumps(info.value.details)  # JSON-ready: it goes into the record as it is


@pytest.mark.parametrize("keep", [500, 0.5], ids=["header-cut", "half"])
def test_an_unreadable_aot_band_is_left_out(
    local_store: ObjectStore, shared_data: Path, tmp_path: Path, keep: float
) -> None:
    """AOT only feeds the haze figure: a broken one is dropped, the product goes on."""
    folder = shared_data / REAL
    item = local_item(json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text()), folder)
    broken = tmp_path / "AOT.tif"
    data = (folder / "AOT.tif").read_bytes()
    broken.write_bytes(data[: int(keep if keep > 1 else len(data) * keep)])  # truncated
    item["assets"]["aot"]["href"] = str(broken)
    rt = runtime(local_store, aoi_wkt=SAHARA)
    (msg,) = fetch.handle(message(item), rt)
    assert "AOT" not in msg.bands and "B02" in msg.bands
    (msg,) = cloud.handle(msg, rt)
    assert msg.haze is not None and msg.haze.aot_median is None
    assert msg.haze.cirrus_percent > 0.1
