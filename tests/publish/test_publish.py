"""publish_product: standard readers open every output; the record is the commit point."""

from __future__ import annotations

import datetime as dt
import json
import posixpath
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pystac
import pytest
import rasterio
from pmtiles.reader import MemorySource, Reader, all_tiles
from pmtiles.tile import TileType

from earthsignature import corine
from earthsignature.functions.cog import is_valid_cog
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.publish import publish_product
from earthsignature.functions.stac import AssetRef, ProductRef
from earthsignature.functions.tiles import LAYER, MAX_ZOOM, MIN_ZOOM
from earthsignature.queue.reprocess import plan_reprocess
from earthsignature.runtime import Runtime
from earthsignature.storage import ObjectStore, StorageError, catalog, layout, records
from tests.publish.conftest import DATE, PIXEL_M2, PRODUCT, scaled_codes, write_raster

MessageFactory = Callable[..., ProductMessage]
#: Classes left after sieving the block raster (the 111 speck is below the MMU).
POLYGON_CODES = {112, 211, 231, 311, 312, 512}
OUTPUTS = ("segmentation", "polygons", "tiles")


def tile_dict(archive: bytes) -> dict[tuple[int, int, int], bytes]:
    """Every tile of a PMTiles archive by (z, x, y)."""
    source = MemorySource(archive)
    return dict(all_tiles(source))


def output_keys(msg: ProductMessage) -> dict[str, str]:
    args = (msg.model, msg.version, msg.date, msg.product_id)
    return {
        "segmentation": layout.segmentation_key(*args),
        "polygons": layout.polygons_key(*args),
        "tiles": layout.tiles_key(*args),
        "catalog": layout.catalog_key(*args),
    }


def test_segmentation_cog_opens_in_gdal(
    store: ObjectStore, runtime: Runtime, segmentation: Path, make_message: MessageFactory
) -> None:
    msg = make_message()
    publish_product(runtime, msg, segmentation, strip_rows=128)
    path = store.gdal_path(output_keys(msg)["segmentation"])
    with store.gdal_env():
        assert is_valid_cog(path)
        with rasterio.open(path) as ds:
            assert ds.crs.to_epsg() == 32629
            assert (ds.count, ds.dtypes[0], ds.nodata) == (1, "uint16", 0)
            assert ds.block_shapes[0] == (512, 512)
            assert ds.overviews(1) == [2]
            assert ds.tags()["OVERVIEW_RESAMPLING"] == "MODE"
            structure = ds.tags(ns="IMAGE_STRUCTURE")
            assert structure["COMPRESSION"] == "DEFLATE"
            assert structure["PREDICTOR"] == "2"
            assert ds.colormap(1)[311] == (*corine.clc_class(311).rgb, 255)
            np.testing.assert_array_equal(ds.read(1), scaled_codes())


def test_polygons_open_in_pyogrio(
    store: ObjectStore, runtime: Runtime, segmentation: Path, make_message: MessageFactory
) -> None:
    msg = make_message()
    publish_product(runtime, msg, segmentation, strip_rows=128)
    path = store.gdal_path(output_keys(msg)["polygons"])
    with store.gdal_env():
        info = pyogrio.read_info(path)
        _meta, _fids, _geoms, fields = pyogrio.raw.read(path)
    assert info["driver"] == "FlatGeobuf"
    assert info["crs"] == "EPSG:4326"
    assert info["capabilities"]["fast_spatial_filter"]  # the packed R-tree index
    assert list(info["fields"]) == [
        "code", "label", "product_id", "date", "model", "version", "area_m2", "confidence",
    ]  # fmt: skip
    row = dict(zip(info["fields"], fields, strict=True))
    assert set(row["code"].tolist()) == POLYGON_CODES
    # one region per class, plus the 312 enclosed by the U (cut off from the rest of 312)
    assert info["features"] == len(POLYGON_CODES) + 1
    assert (row["code"] == 312).sum() == 2
    assert all(
        corine.clc_class(c).label == lab for c, lab in zip(row["code"], row["label"], strict=True)
    )
    for name, value in [("product_id", PRODUCT), ("date", DATE), ("model", "clc-test")]:
        assert set(row[name].tolist()) == {value}
    assert set(row["version"].tolist()) == {2}
    assert (row["area_m2"] >= 5000).all()


def test_tiles_open_in_pmtiles_reader(
    store: ObjectStore, runtime: Runtime, segmentation: Path, make_message: MessageFactory
) -> None:
    msg = make_message()
    entry = publish_product(runtime, msg, segmentation, strip_rows=128)
    key = output_keys(msg)["tiles"]
    reader = Reader(MemorySource(store.get_bytes(key)))
    header = reader.header()
    assert header["tile_type"] == TileType.MVT
    assert (header["min_zoom"], header["max_zoom"]) == (MIN_ZOOM, MAX_ZOOM)
    bounds = [header[k] / 1e7 for k in ("min_lon_e7", "min_lat_e7", "max_lon_e7", "max_lat_e7")]
    assert bounds == pytest.approx(list(entry.bbox), abs=1e-3)
    assert [layer["id"] for layer in reader.metadata()["vector_layers"]] == [LAYER]
    with store.gdal_env():
        _meta, _fids, _geoms, fields = pyogrio.raw.read(store.gdal_path(key), columns=["code"])
    assert set(fields[0].tolist()) == POLYGON_CODES


def test_catalog_record_lists_the_product(
    store: ObjectStore, runtime: Runtime, segmentation: Path, make_message: MessageFactory
) -> None:
    msg = make_message()
    publish_product(runtime, msg, segmentation, strip_rows=128)
    day = dt.date.fromisoformat(DATE)
    entries = list(catalog.iter_entries(store, "clc-test", 2, day, day))
    assert [e.product_id for e in entries] == [PRODUCT]
    entry = entries[0]
    codes = scaled_codes()
    expected = {int(c): float((codes == c).sum()) * PIXEL_M2 for c in np.unique(codes) if c}
    assert entry.class_areas == expected
    assert entry.categories == tuple(sorted(expected))
    assert entry.cloud_cover == 3.5
    assert entry.datetime == dt.datetime(2020, 2, 19, 11, 21, 21, tzinfo=dt.UTC)
    assert entry.created == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert entry.properties["s2:mgrs_tile"] == "29RKH"
    assert entry.properties["earthsig:product_type"] == "S2MSI2A"
    assert entry.geometry["type"] in {"Polygon", "MultiPolygon"}
    assert -11.2 < entry.bbox[0] < entry.bbox[2] < -10.9
    item = json.loads(store.get_bytes(entry.key))
    assert pystac.Item.from_dict(item).id == PRODUCT
    for name, key in entry.assets.items():
        assert store.exists(key), name
        href = item["assets"][name]["href"]
        assert posixpath.normpath(posixpath.join(posixpath.dirname(entry.key), href)) == key
    assert entry.assets["cloud_mask"] == msg.cloud_mask
    assert list(catalog.iter_entries(store, "clc-test", 2, day + dt.timedelta(days=1))) == []
    assert list(catalog.iter_entries(store, "clc-test", 3)) == []


def test_failure_before_the_record_leaves_nothing_visible(
    store: ObjectStore,
    runtime: Runtime,
    segmentation: Path,
    make_message: MessageFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The catalog write fails after every output is stored: readers see nothing; a retry
    commits the product exactly once."""
    msg = make_message()
    real_put = store.put_bytes

    def failing_put(key: str, data: bytes) -> None:
        if key.startswith(layout.CATALOG + "/"):
            raise StorageError("injected failure writing the record")
        real_put(key, data)

    monkeypatch.setattr(store, "put_bytes", failing_put)
    with pytest.raises(StorageError, match="injected"):
        publish_product(runtime, msg, segmentation, strip_rows=128)
    keys = output_keys(msg)
    assert all(store.exists(keys[name]) for name in OUTPUTS)  # outputs were stored...
    assert list(catalog.iter_entries(store)) == []  # ...but nothing is visible
    assert not catalog.is_committed(store, msg.model, msg.version, msg.date, PRODUCT)

    monkeypatch.setattr(store, "put_bytes", real_put)
    publish_product(runtime, msg, segmentation, strip_rows=128)
    assert [e.product_id for e in catalog.iter_entries(store)] == [PRODUCT]
    assert [i.key for i in store.list_keys(layout.CATALOG + "/")] == [keys["catalog"]]


@pytest.mark.parametrize("created_in_message", [True, False])
def test_republishing_writes_the_same_bytes(
    store: ObjectStore,
    runtime: Runtime,
    segmentation: Path,
    make_message: MessageFactory,
    created_in_message: bool,
) -> None:
    msg = make_message()
    if not created_in_message:
        msg = msg.model_copy(update={"created": None})
    publish_product(runtime, msg, segmentation, strip_rows=128)
    first = {info.key: store.get_bytes(info.key) for info in store.list_keys()}
    publish_product(runtime, msg, segmentation, strip_rows=128)
    second = {info.key: store.get_bytes(info.key) for info in store.list_keys()}
    assert set(first) == set(second)
    assert {k for k in first if k.startswith(layout.CATALOG)} == {output_keys(msg)["catalog"]}
    for key in first:
        assert first[key] == second[key], key


def test_child_process_publish_writes_the_same_bytes(
    store: ObjectStore, runtime: Runtime, segmentation: Path, make_message: MessageFactory
) -> None:
    """COG and PMTiles built in a child process (full tiles) equal the in-process ones."""
    msg = make_message()
    publish_product(runtime, msg, segmentation, strip_rows=128, parallel=False)
    here = {info.key: store.get_bytes(info.key) for info in store.list_keys()}
    timings: dict[str, float] = {}
    publish_product(runtime, msg, segmentation, strip_rows=128, parallel=True, timings=timings)
    child = {info.key: store.get_bytes(info.key) for info in store.list_keys()}
    tiles_key = output_keys(msg)["tiles"]
    assert set(here) == set(child)
    assert {k: v for k, v in here.items() if k != tiles_key} == {
        k: v for k, v in child.items() if k != tiles_key
    }
    # the tiles: written by zoom range in two processes and merged, the same tiles
    assert tile_dict(child[tiles_key]) == tile_dict(here[tiles_key])
    header = Reader(MemorySource(child[tiles_key])).header()
    assert (header["min_zoom"], header["max_zoom"]) == (MIN_ZOOM, MAX_ZOOM)
    assert {"areas", "fgb", "cog", "pmtiles", "store", "catalog"} <= set(timings)


def test_publish_clears_a_stale_failure_record(
    store: ObjectStore, runtime: Runtime, segmentation: Path, make_message: MessageFactory
) -> None:
    msg = make_message()
    stale = records.OutcomeRecord(PRODUCT, DATE, "clc-test", 2, "failed", "vectorize", "boom")
    records.write_record(store, stale)
    publish_product(runtime, msg, segmentation)
    assert records.read_record(store, "clc-test", 2, DATE, PRODUCT) is None


def _float_raster(path: Path) -> Path:
    return write_raster(path, scaled_codes(), dtype="float32")


def _unknown_code(path: Path) -> Path:
    codes = scaled_codes()
    codes[:10, :10] = 999
    return write_raster(path, codes)


def _all_nodata(path: Path) -> Path:
    return write_raster(path, np.zeros_like(scaled_codes()))


def _off_grid(path: Path) -> Path:
    return write_raster(path, scaled_codes()[:-3])


def _not_a_raster(path: Path) -> Path:
    path.write_bytes(b"not a tiff")
    return path


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (_float_raster, "uint16"),
        (_unknown_code, "not CORINE codes: \\[999\\]"),
        (_all_nodata, "no valid pixel"),
        (_off_grid, "not on the product grid"),
        (_not_a_raster, "cannot be read"),
    ],
    ids=["float", "unknown-code", "all-nodata", "off-grid", "not-a-raster"],
)
def test_bad_segmentation_is_refused_and_stores_nothing(
    store: ObjectStore,
    runtime: Runtime,
    tmp_path: Path,
    make_message: MessageFactory,
    build: Callable[[Path], Path],
    match: str,
) -> None:
    msg = make_message()
    with pytest.raises(BadInput, match=match):
        publish_product(runtime, msg, build(tmp_path / "bad.tif"))
    assert [i.key for i in store.list_keys()] == [msg.cloud_mask]


def test_message_without_cloud_mask_is_refused(
    runtime: Runtime, segmentation: Path, make_message: MessageFactory
) -> None:
    with pytest.raises(BadInput, match="cloud mask"):
        publish_product(runtime, make_message(cloud_mask=None), segmentation)


def test_reprocess_reuses_the_published_source_item(
    store: ObjectStore, runtime: Runtime, segmentation: Path, make_message: MessageFactory
) -> None:
    """The real publish records the product reference, so reprocessing needs no STAC search
    (here the STAC API is unreachable: a search would fail)."""
    ref = ProductRef(
        id=PRODUCT,
        datetime="2020-02-19T11:21:21Z",
        tile="29RKH",
        footprint={"type": "Point", "coordinates": [-11.0, 31.6]},
        cloud_cover=4.2,
        processing_baseline="02.14",
        platform="sentinel-2a",
        product_type="S2MSI2A",
        published="2020-02-19T16:00:00Z",
        assets={"B04": AssetRef("https://example.invalid/B04.tif", 1e-4, 0.0)},
    )
    publish_product(runtime, make_message(item=ref), segmentation, strip_rows=128)
    offline = Runtime(
        settings=runtime.settings.model_copy(update={"stac_api_url": "http://127.0.0.1:9"}),
        store=store,
    )
    day = dt.date.fromisoformat(DATE)
    plan = plan_reprocess(offline, model="clc-test", version=3, start=day, end=day, run="again")
    assert plan.not_found == [] and plan.already_done == []
    (msg,) = plan.messages
    assert (msg.product_id, msg.tile, msg.version, msg.run) == (PRODUCT, "29RKH", 3, "again")
    assert msg.item == ref
