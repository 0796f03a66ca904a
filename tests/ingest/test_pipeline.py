"""discover -> fetch -> cloud through a local STAC API, on the real 29RKH tile and bad input."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from earthsignature.functions import cloud, fetch
from earthsignature.functions.cloudmask import CLOUD_CLASSES, INVALID_CLASSES
from earthsignature.functions.discover import discover
from earthsignature.functions.errors import BadInput, ProductSkipped
from earthsignature.functions.stac import from_stac_item
from earthsignature.generator import generate_product
from earthsignature.storage import ObjectStore, layout
from earthsignature.storage.records import read_record
from earthsignature.testing.stac_server import StacServer, local_item
from tests.ingest.conftest import REAL, SAHARA, message, runtime

DAY = (dt.datetime(2020, 2, 19, tzinfo=dt.UTC), dt.datetime(2020, 2, 20, tzinfo=dt.UTC))


def test_real_tile_end_to_end(store: ObjectStore, shared_data: Path) -> None:
    folder = shared_data / REAL
    item = local_item(json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text()), folder)
    with StacServer([item]) as server:
        rt = runtime(store, server.url, aoi_wkt=SAHARA)
        found = discover(rt, start=DAY[0], end=DAY[1], run="r1")
        by_date = discover(rt, start=dt.date(2020, 2, 19), end=dt.date(2020, 2, 19), run="r1")
        elsewhere = discover(
            rt,
            start=DAY[0],
            end=DAY[1],
            run="r1",
            aoi_wkt="POLYGON ((10 45, 11 45, 11 46, 10 46, 10 45))",
        )
    assert [m.product_id for m in found.products] == ["S2A_29RKH_20200219_0_L2A"]
    assert elsewhere.products == []
    assert [m.product_id for m in by_date.products] == ["S2A_29RKH_20200219_0_L2A"]
    (msg,) = fetch.handle(found.products[0], rt)
    assert sorted(msg.bands) == sorted([*fetch.DEFAULT_BANDS, *fetch.AUXILIARY_BANDS])
    for band, key in msg.bands.items():
        with (
            store.gdal_env(),
            rasterio.open(store.gdal_path(key)) as ds,
            rasterio.open(folder / f"{band}.tif") as src,
        ):
            np.testing.assert_array_equal(ds.read(1), src.read(1))
    sizes = {info.key: info.size for info in store.list_keys("raw/")}
    fetch.handle(msg, rt)  # idempotent: nothing copied again
    assert {info.key: info.size for info in store.list_keys("raw/")} == sizes
    (msg,) = cloud.handle(msg, rt)
    with rasterio.open(folder / "SCL.tif") as ds:
        scl = ds.read(1)
    with store.gdal_env(), rasterio.open(store.gdal_path(msg.cloud_mask or "")) as ds:
        mask = ds.read(1)
        assert ds.shape == (scl.shape[0] * 2, scl.shape[1] * 2)
    expected = np.repeat(np.repeat(np.isin(scl, CLOUD_CLASSES), 2, 0), 2, 1)
    np.testing.assert_array_equal(mask.astype(bool), expected)
    valid = np.repeat(np.repeat(~np.isin(scl, INVALID_CLASSES), 2, 0), 2, 1)
    assert msg.cloud_fraction == pytest.approx(100 * mask[valid].sum() / valid.sum())
    assert 1 < msg.cloud_fraction < 10


def test_discover_skips_cloudy_and_committed(local_store: ObjectStore, shared_data: Path) -> None:
    folder = shared_data / REAL
    item = json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text())
    with StacServer([item]) as server:
        rt = runtime(local_store, server.url, aoi_wkt=SAHARA)
        result = discover(rt, start=DAY[0], end=DAY[1], run="r1", max_cloud=1.0)
        assert result.products == [] and len(result.skipped) == 1
        record = read_record(local_store, "clc-baseline", 1, "2020-02-19", item["id"])
        assert record is not None and record.status == "skipped" and record.stage == "discover"
        local_store.put_bytes(
            layout.catalog_key("clc-baseline", 1, "2020-02-19", item["id"]), b"{}"
        )
        again = discover(rt, start=DAY[0], end=DAY[1], run="r1")
        assert again.products == [] and again.committed == [item["id"]]


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    return generate_product(
        tmp_path / "gen", size=120, seed=1, tile="29RKH", cloud_fraction=0.05
    ).item


def _no_raw(store: ObjectStore) -> bool:
    return list(store.list_keys("raw/")) == [] and list(store.list_keys("masks/")) == []


def test_missing_band_fails_and_leaves_nothing(local_store: ObjectStore, generated: Path) -> None:
    item = json.loads(generated.read_text())
    del item["assets"]["swir16"]
    with pytest.raises(BadInput, match="B11"):
        fetch.handle(message(item), runtime(local_store))
    assert _no_raw(local_store)


def test_truncated_band_fails_and_leaves_nothing(store: ObjectStore, generated: Path) -> None:
    item = json.loads(generated.read_text())
    b12 = Path(item["assets"]["swir22"]["href"])
    data = b12.read_bytes()
    b12.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput, match="B12"):
        fetch.handle(message(item), runtime(store))
    assert _no_raw(store)


def test_mismatched_grid_fails(local_store: ObjectStore, generated: Path, tmp_path: Path) -> None:
    item = json.loads(generated.read_text())
    other = generate_product(tmp_path / "other", size=60, seed=1, tile="29RKH").bands["B05"]
    item["assets"]["rededge1"]["href"] = str(other)
    with pytest.raises(BadInput, match="B05 is not on the grid"):
        fetch.handle(message(item), runtime(local_store))
    assert _no_raw(local_store)


def test_all_nodata_fails(local_store: ObjectStore, generated: Path) -> None:
    item = json.loads(generated.read_text())
    scl = Path(item["assets"]["scl"]["href"])
    with rasterio.open(scl, "r+") as ds:
        ds.write(np.zeros(ds.shape, dtype=np.uint8), 1)
    rt = runtime(local_store, aoi_wkt=SAHARA)
    (msg,) = fetch.handle(message(item), rt)
    with pytest.raises(BadInput, match="no valid pixel"):
        cloud.handle(msg, rt)
    assert list(local_store.list_keys("masks/")) == []


@pytest.mark.parametrize("fraction", [1.0, 0.6])
def test_cloudy_products_are_skipped(
    local_store: ObjectStore, tmp_path: Path, fraction: float
) -> None:
    p = generate_product(tmp_path, size=120, seed=2, tile="29RKH", cloud_fraction=fraction)
    rt = runtime(local_store, cloud_threshold=40.0, aoi_wkt=SAHARA)
    (msg,) = fetch.handle(message(json.loads(p.item.read_text())), rt)
    with pytest.raises(ProductSkipped, match="over the threshold") as info:
        cloud.handle(msg, rt)
    assert info.value.details["cloud_fraction"] == pytest.approx(100 * fraction, abs=6)


def test_product_outside_area_is_skipped(local_store: ObjectStore, generated: Path) -> None:
    rt = runtime(local_store)  # default AOI: Europe; 29RKH is in Western Sahara
    (msg,) = fetch.handle(message(json.loads(generated.read_text())), rt)
    with pytest.raises(ProductSkipped, match="outside the area"):
        cloud.handle(msg, rt)
    assert list(local_store.list_keys("masks/")) == []


def test_next_product_still_processed(local_store: ObjectStore, tmp_path: Path) -> None:
    good = generate_product(tmp_path / "a", size=60, seed=3, tile="29RKH", cloud_fraction=0.0)
    bad = json.loads(good.item.read_text())
    bad["id"] = "S2G_29RKH_20240602_0_L2A"
    shutil.copy(good.bands["B02"], tmp_path / "B02.tif")
    bad["assets"]["blue"]["href"] = str(tmp_path / "missing.tif")
    rt = runtime(local_store, aoi_wkt=SAHARA)
    with pytest.raises(BadInput):
        fetch.handle(message(bad), rt)
    (msg,) = fetch.handle(message(json.loads(good.item.read_text())), rt)
    (msg,) = cloud.handle(msg, rt)
    assert msg.cloud_fraction == 0.0


def test_run_area_in_the_message_wins_over_the_setting(
    local_store: ObjectStore, generated: Path
) -> None:
    """A product inside the run's --aoi but outside EARTHSIG_AOI_WKT (Europe) goes on."""
    rt = runtime(local_store)  # default AOI: Europe; 29RKH is in Western Sahara
    (msg,) = fetch.handle(message(json.loads(generated.read_text())), rt)
    msg.aoi_wkt = SAHARA
    (out,) = cloud.handle(msg, rt)
    assert out.cloud_mask is not None
    assert out.aoi_wkt == SAHARA


def test_discover_reads_an_item_folder(local_store: ObjectStore, generated: Path) -> None:
    """A file:// item source: the STAC item files of a folder, filtered by window and area."""
    item = json.loads(generated.read_text())
    day = dt.date.fromisoformat(item["properties"]["datetime"][:10])
    rt = runtime(local_store, generated.parent.parent.as_uri(), aoi_wkt=SAHARA)
    found = discover(rt, start=day, end=day, run="r1")
    assert [m.product_id for m in found.products] == [item["id"]]
    assert found.products[0].item == from_stac_item(item)
    later = day + dt.timedelta(days=1)
    assert discover(rt, start=later, end=later, run="r1").products == []
    elsewhere = "POLYGON ((10 45, 11 45, 11 46, 10 46, 10 45))"
    assert discover(rt, start=day, end=day, run="r1", aoi_wkt=elsewhere).products == []
