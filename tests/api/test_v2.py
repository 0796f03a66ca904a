"""V2 through the generated stubs: geobuf query Features in, geobuf polygons out."""

from __future__ import annotations

from typing import Any

import geobuf
import pytest
import shapely
from shapely.geometry import mapping, shape

from earthsignature.grpc_api.vectors import geodesic_area_m2
from earthsignature.proto.stubs import geobuf_pb2, v2_pb2
from tests.api.conftest import MODEL, aoi_box, sample_products

A, B, C = (p.product_id for p in sample_products())
AREA = aoi_box(500_300.0, 4_980_200.0, 500_900.0, 4_980_700.0)
NO_AREA: dict[str, Any] = {"type": "GeometryCollection", "geometries": []}


def query(geometry: Any = None, **properties: Any) -> geobuf_pb2.Data:
    feature = {
        "type": "Feature",
        "geometry": mapping(geometry) if geometry is not None else NO_AREA,
        "properties": properties,
    }
    return geobuf_pb2.Data.FromString(geobuf.encode(feature))


def decode(data: geobuf_pb2.Data) -> dict[str, Any]:
    return dict(geobuf.decode(data.SerializeToString()))


def collections(v2, **kwargs: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    request = v2_pb2.ListSegmentationRequest(query=query(**kwargs))
    return [decode(r.segmentation) for r in v2.ListSegmentation(request)]


def test_polygons_are_clipped_to_the_area(v2) -> None:  # type: ignore[no-untyped-def]
    found = collections(v2, geometry=AREA, n_results=2)
    assert [fc["product_id"] for fc in found] == [B, A]
    expected_codes = {B: {312, 231}, A: {311, 211, 512}}
    for fc in found:
        assert fc["type"] == "FeatureCollection" and fc["model"] == MODEL and fc["version"] == 1
        assert (fc["part"], fc["parts"]) == (1, 1)
        features = fc["features"]
        assert {f["properties"]["code"] for f in features} == expected_codes[fc["product_id"]]
        geometries = [shape(f["geometry"]) for f in features]
        assert all(g.geom_type in ("Polygon", "MultiPolygon") for g in geometries)
        assert all(AREA.buffer(1e-6).contains(g) for g in geometries)
        covered = shapely.union_all(geometries)
        # the product covers the whole area, so its clipped polygons tile it
        assert covered.symmetric_difference(AREA).area < 0.01 * AREA.area
        total = sum(f["properties"]["area_m2"] for f in features)
        assert total == pytest.approx(geodesic_area_m2(AREA), rel=0.01)
        for f in features:
            props = f["properties"]
            assert props["product_id"] == fc["product_id"]
            assert props["model"] == MODEL and props["version"] == 1
            assert props["label"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"categories": [512], "n_results": 5}, {A: {512}}),
        ({"categories": "231,311", "n_results": 5}, {B: {231}, A: {311}}),
        ({"categories": ["211"], "end_date": "2021-03-31", "n_results": 5}, {A: {211}}),
        ({"start_date": "2021-04-01T00:00:00Z", "n_results": 5}, {B: {312, 231}}),
        ({"product_ids": [A], "n_results": 5}, {A: {311, 211, 512}}),
        ({}, {B: {312, 231}}),  # server default: one product
    ],
)
def test_list_segmentation_filters(v2, filters, expected) -> None:  # type: ignore[no-untyped-def]
    found = collections(v2, geometry=AREA, **filters)
    codes = {fc["product_id"]: {f["properties"]["code"] for f in fc["features"]} for fc in found}
    assert codes == expected
    assert list(codes) == list(expected)  # newest first


def test_product_ids_without_area_return_whole_products(v2) -> None:  # type: ignore[no-untyped-def]
    found = collections(v2, product_ids=f"{C}", n_results=3)
    assert [fc["product_id"] for fc in found] == [C]
    assert {f["properties"]["code"] for f in found[0]["features"]} == {111, 523}


@pytest.mark.parametrize(
    ("geometry", "filters", "expected"),
    [
        (None, {}, [B, A, C]),
        (AREA, {}, [B, A]),
        (None, {"categories": "523"}, [C]),
        (None, {"start_date": "2021-01-01", "end_date": "2021-12-31"}, [B, A]),
        (None, {"version": 9}, []),
        (None, {"model": MODEL, "version": 1, "n_results": 1}, [B]),
    ],
)
def test_list_product_ids(v2, geometry, filters, expected) -> None:  # type: ignore[no-untyped-def]
    request = v2_pb2.ListProductIdsRequest(query=query(geometry, **filters))
    products = [decode(r.product) for r in v2.ListProductIds(request)]
    assert [p["properties"]["product_id"] for p in products] == expected
    for product in products:
        assert product["type"] == "Feature"
        assert shape(product["geometry"]).is_valid
        assert product["properties"]["created"]
        assert product["properties"]["categories"]
