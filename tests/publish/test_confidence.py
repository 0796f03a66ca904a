"""Publishing with a confidence raster: its own COG and STAC asset, and a mean confidence per
polygon equal to the mean of the raster under each (sieved) polygon, across strip borders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.features import rasterize, shapes
from rasterio.warp import transform_geom

from earthsignature.functions.cog import is_valid_cog
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.polygons import mmu_pixels
from earthsignature.functions.publish import publish_product
from earthsignature.runtime import Runtime
from earthsignature.storage import ObjectStore, layout
from tests.publish.conftest import CRS, TRANSFORM, scaled_codes, sieve_to_mmu, write_raster

MessageFactory = Callable[..., ProductMessage]


#: Polygon geometry does not depend on the backend (the storage contract suite covers both):
#: these tests run on the local store only; the COG asset test runs on both.
LOCAL_ONLY = pytest.mark.parametrize("store", ["local"], indirect=True)


def confidence_map(codes: np.ndarray, seed: int = 0) -> np.ndarray:
    """Noisy confidence (0..100) whose level depends on the class; 255 where no data."""
    rng = np.random.default_rng(seed)
    conf = (codes % 50 + rng.integers(0, 50, size=codes.shape)).astype(np.uint8)
    conf[codes == 0] = layout.CONFIDENCE_NODATA
    return conf


@pytest.fixture
def confidence(tmp_path: Path) -> Path:
    return write_raster(
        tmp_path / "confidence.tif",
        confidence_map(scaled_codes()),
        dtype="uint8",
        nodata=layout.CONFIDENCE_NODATA,
    )


def components(codes: np.ndarray, conf: np.ndarray) -> list[tuple[int, int, float]]:
    """(code, pixels, mean confidence) of each 4-connected region of a raster."""
    out = []
    for geom, value in shapes(codes, mask=codes > 0, connectivity=4):
        inside = rasterize([(geom, 1)], out_shape=codes.shape) > 0
        out.append((int(value), int(inside.sum()), float(conf[inside].mean())))
    return out


def test_confidence_cog_asset_and_polygon_means(
    store: ObjectStore,
    runtime: Runtime,
    segmentation: Path,
    confidence: Path,
    make_message: MessageFactory,
    tmp_path: Path,
) -> None:
    msg = make_message()
    entry = publish_product(runtime, msg, segmentation, strip_rows=128, confidence=confidence)
    key = layout.confidence_key(msg.model, msg.version, msg.date, msg.product_id)
    assert entry.assets["confidence"] == key
    item = json.loads(store.get_bytes(entry.key))
    asset = item["assets"]["confidence"]
    assert asset["roles"] == ["data"] and asset["href"].endswith(f"{msg.product_id}.tif")
    assert "softmax probability in percent" in asset["title"]

    expected_pixels = confidence_map(scaled_codes())
    with store.gdal_env():
        path = store.gdal_path(key)
        assert is_valid_cog(path)
        with rasterio.open(path) as ds:
            assert (ds.count, ds.dtypes[0], ds.nodata) == (1, "uint8", 255)
            assert ds.crs.to_string() == CRS and ds.transform.almost_equals(TRANSFORM)
            assert ds.overviews(1) == [2]
            assert ds.tags()["OVERVIEW_RESAMPLING"] == "AVERAGE"
            np.testing.assert_array_equal(ds.read(1), expected_pixels)

    fgb = tmp_path / "p.fgb"
    fgb.write_bytes(store.get_bytes(entry.assets["polygons"]))
    meta, _fids, _geometry, fields = pyogrio.raw.read(fgb)
    names = list(meta["fields"])
    got = sorted(
        zip(
            fields[names.index("code")].tolist(),
            fields[names.index("confidence")].tolist(),
            strict=True,
        )
    )
    # the reference: the whole raster sieved at once (the block map's regions are large,
    # so no strip can decide a merge differently), its regions' means from the raster
    codes = sieve_to_mmu(
        scaled_codes(), mmu_pixels(runtime.settings.min_mapping_unit_m2, TRANSFORM)
    )
    expected = sorted(
        (code, round(mean, 2)) for code, _n, mean in components(codes, expected_pixels)
    )
    assert len(got) == len(expected) >= 6
    for (code, mean), (ref_code, ref_mean) in zip(got, expected, strict=True):
        assert code == ref_code
        assert mean == pytest.approx(ref_mean, abs=0.011)
    # the 2 x 2 speck of 111 (3x scaled) was sieved into 311: its pixels count there
    assert 111 not in {code for code, _ in got}


@LOCAL_ONLY
def test_polygons_burnt_back_match_their_confidence(
    store: ObjectStore,
    runtime: Runtime,
    segmentation: Path,
    confidence: Path,
    make_message: MessageFactory,
    tmp_path: Path,
) -> None:
    """Each polygon, reprojected back and burnt onto the grid, covers pixels whose mean is the
    polygon's confidence (simplification moves edges a little: within one percent); the
    publish runs in child processes, as for full tiles."""
    msg = make_message()
    entry = publish_product(
        runtime, msg, segmentation, strip_rows=100, confidence=confidence, parallel=True
    )  # in child processes, as full tiles are
    fgb = tmp_path / "p.fgb"
    fgb.write_bytes(store.get_bytes(entry.assets["polygons"]))
    meta, _fids, geometry, fields = pyogrio.raw.read(fgb)
    means = fields[list(meta["fields"]).index("confidence")]
    conf = confidence_map(scaled_codes())
    # the polygons tile the grid: burn them all at once, each with its own number
    local = [
        (transform_geom("EPSG:4326", CRS, shapely.geometry.mapping(geom)), number)
        for number, geom in enumerate(shapely.from_wkb(geometry), start=1)
    ]
    burnt = rasterize(local, out_shape=conf.shape, transform=TRANSFORM, dtype="uint32")
    pixels = np.bincount(burnt.ravel(), minlength=len(local) + 1)
    sums = np.bincount(burnt.ravel(), weights=conf.ravel(), minlength=len(local) + 1)
    for number, mean in enumerate(means, start=1):
        assert pixels[number] > 0
        assert mean == pytest.approx(sums[number] / pixels[number], abs=1.0)


@LOCAL_ONLY
def test_without_confidence_polygons_carry_null(
    store: ObjectStore,
    runtime: Runtime,
    segmentation: Path,
    make_message: MessageFactory,
    tmp_path: Path,
) -> None:
    msg = make_message()
    entry = publish_product(runtime, msg, segmentation, strip_rows=128)
    assert "confidence" not in entry.assets
    assert not store.exists(layout.confidence_key(msg.model, msg.version, msg.date, msg.product_id))
    fgb = tmp_path / "p.fgb"
    fgb.write_bytes(store.get_bytes(entry.assets["polygons"]))
    info = pyogrio.read_info(fgb)
    assert "confidence" in list(info["fields"])
    _meta, _fids, _geometry, fields = pyogrio.raw.read(fgb, columns=["confidence"])
    assert np.isnan(fields[0]).all()


@LOCAL_ONLY
def test_a_confidence_raster_off_the_grid_is_refused(
    store: ObjectStore,
    runtime: Runtime,
    segmentation: Path,
    make_message: MessageFactory,
    tmp_path: Path,
) -> None:
    msg = make_message()
    small = write_raster(tmp_path / "c.tif", confidence_map(scaled_codes())[:-3], dtype="uint8")
    with pytest.raises(BadInput, match="confidence is not on the segmentation's grid"):
        publish_product(runtime, msg, segmentation, confidence=small)
    assert not store.exists(layout.catalog_key(msg.model, msg.version, msg.date, msg.product_id))


@LOCAL_ONLY
@pytest.mark.parametrize("with_confidence", [True, False])
def test_vector_tiles_carry_the_polygon_confidence(
    store: ObjectStore,
    runtime: Runtime,
    segmentation: Path,
    confidence: Path,
    make_message: MessageFactory,
    tmp_path: Path,
    with_confidence: bool,
) -> None:
    msg = make_message()
    conf = confidence if with_confidence else None
    entry = publish_product(runtime, msg, segmentation, strip_rows=128, confidence=conf)
    (tmp_path / "p.fgb").write_bytes(store.get_bytes(entry.assets["polygons"]))
    (tmp_path / "t.pmtiles").write_bytes(store.get_bytes(entry.assets["tiles"]))
    _m, _f, _g, (polygon_conf,) = pyogrio.raw.read(tmp_path / "p.fgb", columns=["confidence"])
    meta, _f, _g, columns = pyogrio.raw.read(tmp_path / "t.pmtiles")
    tile = dict(zip(meta["fields"], columns, strict=True))
    assert len(tile["code"]) > 0
    if with_confidence:
        # every tile piece of a polygon carries that polygon's mean
        tile_conf = tile["confidence"]
        assert set(np.round(tile_conf, 2).tolist()) <= set(polygon_conf.tolist())
        assert not np.isnan(tile_conf).any()
    else:
        assert np.isnan(polygon_conf).all()  # written null in the FlatGeobuf
        # vector tiles have no null: the attribute is left out (GDAL's writer: null values)
        assert "confidence" not in tile or np.isnan(tile["confidence"]).all()
