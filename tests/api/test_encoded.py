"""Polygons pre-encoded at publish answer V2 exactly as the FlatGeobuf path does."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import geobuf
import numpy as np
import pyogrio.raw
import pytest
import shapely
from shapely.geometry import Polygon

from earthsignature.grpc_api.errors import CorruptProducts
from earthsignature.grpc_api.index import IndexedProduct, _parse_row
from earthsignature.grpc_api.v2 import DatabaseProductService
from earthsignature.grpc_api.vectors import read_table
from earthsignature.polygons import encoded
from earthsignature.polygons.area import Area
from earthsignature.polygons.encoded import read_encoded, write_encoded
from earthsignature.polygons.geobuf_encode import encode_bodies, feature_bodies
from earthsignature.polygons.table import geodesic_area_m2
from earthsignature.polygons.threads import GeosThreads
from earthsignature.storage import LocalStore
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.catalog import ASSET_KEY
from earthsignature.storage.errors import CorruptObject
from tests.api.conftest import aoi_box, utm_to_lonlat

#: Areas over the sample products: a box, a tilted triangle (edges cross polygons at angles),
#: one inside a single polygon, one beside every product.
AREAS = {
    "box": aoi_box(500_300.0, 4_980_200.0, 500_900.0, 4_980_700.0),
    "triangle": utm_to_lonlat(
        Polygon([(500_050.0, 4_979_900.0), (501_150.0, 4_980_100.0), (500_400.0, 4_980_950.0)])
    ),
    "within one": aoi_box(500_100.0, 4_980_850.0, 500_200.0, 4_980_950.0),
    "beside": aoi_box(700_000.0, 4_980_000.0, 700_500.0, 4_980_500.0),
}
#: A map view's lon/lat box (cut by GEOS's rectangle clipping, polygons/table.py).
AREAS["lon/lat box"] = shapely.box(*AREAS["box"].bounds)
CATEGORIES = [frozenset(), frozenset({311, 512}), frozenset({999})]


def decoded(bodies: list[bytes], names: tuple[str, ...]) -> list[dict[str, Any]]:
    data = encode_bodies(bodies, names, {"product_id": "P", "part": 1, "parts": 1})
    return list(dict(geobuf.decode(data))["features"])


@pytest.fixture(scope="module")
def small_blocks(
    api_store: ObjectStore, catalog: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> LocalStore:
    """Each product's FlatGeobuf pre-encoded again in blocks of 2 features (many blocks, several
    range reads) into a local store, under the product id."""
    folder = tmp_path_factory.mktemp("encoded")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoded, "BLOCK", 2)
        for product_id, (_product, entry) in catalog.items():
            fgb = folder / f"{product_id}.fgb"
            api_store.download(entry.assets["polygons"], fgb)
            assert write_encoded(fgb, folder / f"{product_id}.gbx")
    return LocalStore(str(folder))


@pytest.mark.parametrize("area", list(AREAS))
def test_pre_encoded_polygons_match_the_flatgeobuf_path(
    api_store: ObjectStore, catalog: dict[str, Any], small_blocks: LocalStore, area: str
) -> None:
    aoi = AREAS[area]
    served = 0
    for product_id, (_product, entry) in catalog.items():
        assert "encoded" in entry.assets  # every publish writes them
        for categories in CATEGORIES:
            table = read_table(api_store, entry.assets["polygons"], aoi, categories)
            plain = feature_bodies(table)
            for store, key in (
                (api_store, entry.assets["encoded"]),  # as published, on S3
                (small_blocks, f"{product_id}.gbx"),
            ):
                answer = read_encoded(store, key, aoi, categories)
                assert answer.names == table.names
                assert answer.bodies == plain  # same features, order and bytes
                assert decoded(answer.bodies, answer.names) == decoded(plain, table.names)
            served += len(plain)
    assert (served > 0) == (area != "beside")


@pytest.mark.parametrize("area", ["triangle", "lon/lat box"])
def test_clipped_polygons_get_their_clipped_area(
    api_store: ObjectStore, catalog: dict[str, Any], area: str
) -> None:
    aoi = AREAS[area]
    clipped = 0
    for _product, entry in catalog.values():
        table = read_table(api_store, entry.assets["polygons"], None)
        whole = dict(
            zip(table.columns[table.names.index("code")].tolist(), table.geometries, strict=True)
        )
        answer = read_encoded(api_store, entry.assets["encoded"], aoi)
        for feature in decoded(answer.bodies, answer.names):
            geometry = shapely.geometry.shape(feature["geometry"])
            assert shapely.covers(aoi.buffer(1e-6), geometry)
            area = feature["properties"]["area_m2"]
            assert area == pytest.approx(geodesic_area_m2(geometry), rel=1e-3)
            clipped += area < 0.99 * geodesic_area_m2(whole[feature["properties"]["code"]])
    assert clipped > 0


def test_a_broken_pre_encoded_object_is_refused_and_v2_falls_back(
    api_store: ObjectStore,
    catalog: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _product, entry = next(iter(catalog.values()))
    local = LocalStore(str(tmp_path))
    fgb = tmp_path / "p.fgb"
    api_store.download(entry.assets["polygons"], fgb)
    whole = (tmp_path / "p.gbx").write_bytes(api_store.get_bytes(entry.assets["encoded"]))
    local.put_bytes("cut.gbx", api_store.get_bytes(entry.assets["encoded"])[: whole - 10])
    local.put_bytes("other.gbx", b"not pre-encoded polygons")
    aoi = AREAS["box"]
    for key in ("cut.gbx", "other.gbx"):
        with pytest.raises(CorruptObject):
            read_encoded(local, key, aoi)
    item = {
        "id": entry.product_id,
        "geometry": entry.geometry,
        "properties": entry.properties,
        "assets": {"polygons": {ASSET_KEY: "p.fgb"}, "encoded": {ASSET_KEY: "cut.gbx"}},
    }
    product = IndexedProduct(_parse_row(item, entry.key, lambda v: v))  # type: ignore[arg-type]
    state = SimpleNamespace(store=local, encoded_headers=encoded.HeaderCache(), geos=GeosThreads())
    service = DatabaseProductService(state, None)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, "earthsignature.grpc_api.v2"):
        [(_, answer)] = service._answers([product], Area(aoi), frozenset(), CorruptProducts())
    assert answer is not None
    assert "pre-encoded polygons unusable" in caplog.text
    assert answer.bodies == feature_bodies(read_table(local, "p.fgb", aoi))
    assert answer.bodies


def test_polygons_inside_the_area_but_not_their_box_keep_their_bytes(tmp_path: Path) -> None:
    aoi = Polygon([(0.0, 0.0), (0.02, 0.0), (0.0, 0.02)])  # a triangle, lon/lat
    geometries = [
        Polygon([(0.001, 0.001), (0.012, 0.001), (0.001, 0.012)]),  # inside, its box is not
        Polygon([(0.002, 0.002), (0.004, 0.002), (0.004, 0.004), (0.002, 0.004)]),  # box inside
        Polygon([(0.008, 0.008), (0.02, 0.008), (0.02, 0.02), (0.008, 0.02)]),  # crosses
        Polygon([(0.03, 0.03), (0.04, 0.03), (0.04, 0.04)]),  # outside
    ]
    fgb = tmp_path / "p.fgb"
    pyogrio.raw.write(
        fgb,
        shapely.to_wkb(np.array(geometries, dtype=object)),
        [np.array([311, 211, 512, 111], dtype=np.int32), np.array([1.0, 2.0, 3.0, 4.0])],
        fields=["code", "area_m2"],
        geometry_type="Polygon",
        crs="EPSG:4326",
        driver="FlatGeobuf",
        layer_options={"SPATIAL_INDEX": "YES"},
    )
    assert write_encoded(fgb, tmp_path / "p.gbx")
    store = LocalStore(str(tmp_path))
    plain = feature_bodies(read_table(store, "p.fgb", aoi))
    answer = read_encoded(store, "p.gbx", aoi)
    assert answer.bodies == plain
    codes = [f["properties"]["code"] for f in decoded(answer.bodies, answer.names)]
    assert sorted(codes) == [211, 311, 512]
