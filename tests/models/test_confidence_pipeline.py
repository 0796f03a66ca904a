"""A product through the real stages (cloud, split, infer, vectorize) with the two-output model:
a confidence COG, a STAC asset, polygons whose mean confidence matches the rasters; a model
without confidence publishes neither and null polygon confidences."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.warp import transform_geom
from shapely.geometry import mapping

from earthsignature.functions import cloud, infer, split, vectorize
from earthsignature.functions.cog import is_valid_cog
from earthsignature.functions.messages import ProductMessage
from earthsignature.models.repository import ModelRepository
from earthsignature.runtime import Runtime
from earthsignature.storage import ObjectStore, catalog, layout
from earthsignature.testing.triton import TritonServer
from tests.models.conftest import CONFIDENCE_MODEL, TEST_MODEL


def run_product(rt: Runtime, msg: ProductMessage) -> catalog.CatalogEntry:
    """cloud -> split -> infer (every shard) -> vectorize, in this process."""
    masked = cloud.handle(msg, rt)[0]
    shard_msgs = split.handle(masked, rt)
    for shard_msg in shard_msgs:
        infer.handle(shard_msg, rt)
    assert vectorize.handle(shard_msgs[0], rt) == []
    entry = catalog.read_committed(rt.store, msg.model, msg.version, msg.date, msg.product_id)
    assert entry is not None
    return entry


def polygon_means(polygons: Any, conf: rasterio.DatasetReader) -> np.ndarray:
    """Mean confidence under each EPSG:4326 polygon, all burnt back onto the raster's grid at
    once (each pixel centre lies in one polygon: they tile the mapped area)."""
    local = [transform_geom("EPSG:4326", conf.crs, mapping(g)) for g in polygons]
    index = rasterize(
        zip(local, range(len(local)), strict=True),
        out_shape=conf.shape,
        transform=conf.transform,
        fill=-1,
        dtype="int32",
    )
    inside = index >= 0
    sums = np.bincount(index[inside], weights=conf.read(1)[inside], minlength=len(local))
    return sums / np.bincount(index[inside], minlength=len(local))


def test_confidence_cog_asset_and_polygon_means(
    store: ObjectStore,
    model_repo: ModelRepository,
    make_runtime: Callable[..., Runtime],
    synthetic_product: Callable[..., ProductMessage],
    tmp_path: Path,
) -> None:
    # no simplification: every (sieved) polygon is exactly its pixels
    rt = make_runtime(store, model_repo, simplify_tolerance_m=0)
    msg = synthetic_product(
        store, h=180, w=140, model=CONFIDENCE_MODEL, version=1, scl_invalid=(10, 20, 30, 45)
    )
    entry = run_product(rt, msg)

    key = layout.confidence_key(CONFIDENCE_MODEL, 1, msg.date, msg.product_id)
    assert key.startswith(f"confidence/model={CONFIDENCE_MODEL}/version=1/date=")
    assert entry.assets["confidence"] == key
    asset = catalog_asset(store, entry, "confidence")
    assert asset["roles"] == ["data"] and "percent" in asset["title"]
    conf_path, seg_path = tmp_path / "conf.tif", tmp_path / "seg.tif"
    conf_path.write_bytes(store.get_bytes(key))
    seg_path.write_bytes(store.get_bytes(entry.assets["segmentation"]))
    assert is_valid_cog(conf_path)
    with rasterio.open(conf_path) as conf, rasterio.open(seg_path) as seg:
        assert conf.dtypes[0] == "uint8" and conf.nodata == 255
        assert (conf.crs, conf.transform, conf.shape) == (seg.crs, seg.transform, seg.shape)
        assert conf.overviews(1) or max(conf.shape) <= 512
        values, codes = conf.read(1), seg.read(1)
        np.testing.assert_array_equal(values == 255, codes == 0)  # no-data exactly where none
        assert values[codes > 0].max() <= 100 and len(np.unique(values[codes > 0])) > 10
        fgb = store.get_bytes(entry.assets["polygons"])
        (tmp_path / "p.fgb").write_bytes(fgb)
        meta, _fids, geometry, fields = pyogrio.raw.read(tmp_path / "p.fgb")
        names = list(meta["fields"])
        mean = fields[names.index("confidence")]
        assert not np.isnan(mean).any() and len(mean) >= 10
        expected = polygon_means(shapely.from_wkb(geometry), conf)
    np.testing.assert_allclose(mean, expected, atol=0.006)  # stored rounded to 0.01
    # the cloud stage's haze figure is in the record (clear synthetic SCL: no cirrus)
    haze = entry.properties[catalog.PROP_HAZE]
    assert haze["cirrus_percent"] == 0.0 and haze["aot_median"] is None
    assert 0.05 < haze["blue_median"] < 0.5


@pytest.mark.triton
def test_triton_infer_feeds_the_same_confidence_cog(
    local_store: ObjectStore,
    model_repo: ModelRepository,
    make_runtime: Callable[..., Runtime],
    synthetic_product: Callable[..., ProductMessage],
    triton_confidence_server: TritonServer,
) -> None:
    """Infer on a real Triton, then the same product embedded: identical confidence COGs."""
    msg = synthetic_product(local_store, h=120, w=100, model=CONFIDENCE_MODEL, version=1)
    served_rt = make_runtime(local_store, model_repo, triton_url=triton_confidence_server.grpc_url)
    served = local_store.get_bytes(run_product(served_rt, msg).assets["confidence"])
    msg = synthetic_product(local_store, h=120, w=100, model=CONFIDENCE_MODEL, version=1)
    embedded_rt = make_runtime(local_store, model_repo)
    embedded = local_store.get_bytes(run_product(embedded_rt, msg).assets["confidence"])
    assert served == embedded and len(served) > 0


def test_a_model_without_confidence_publishes_none(
    local_store: ObjectStore,
    model_repo: ModelRepository,
    make_runtime: Callable[..., Runtime],
    synthetic_product: Callable[..., ProductMessage],
    tmp_path: Path,
) -> None:
    rt = make_runtime(local_store, model_repo)
    msg = synthetic_product(local_store, h=120, w=100, model=TEST_MODEL, version=2)
    entry = run_product(rt, msg)
    assert "confidence" not in entry.assets
    assert not list(local_store.list_keys(f"{layout.CONFIDENCE}/"))
    (tmp_path / "p.fgb").write_bytes(local_store.get_bytes(entry.assets["polygons"]))
    meta, _fids, _geometry, fields = pyogrio.raw.read(tmp_path / "p.fgb")
    mean = fields[list(meta["fields"]).index("confidence")]
    assert len(mean) > 0 and np.isnan(mean).all()  # null in the file, NaN through pyogrio


def catalog_asset(store: ObjectStore, entry: catalog.CatalogEntry, name: str) -> dict[str, Any]:
    return dict(json.loads(store.get_bytes(entry.key))["assets"][name])
