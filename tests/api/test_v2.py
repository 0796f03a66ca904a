"""V2 through the generated stubs: V1's filters in (integer categories), geobuf polygons out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import geobuf
import numpy as np
import pytest
import shapely
from google.protobuf.timestamp_pb2 import Timestamp
from shapely.geometry import box, shape

from earthsignature.grpc_api.v2 import serialized_response
from earthsignature.polygons.geobuf_encode import encode_table, varint, varints
from earthsignature.polygons.table import PolygonTable, clip, equal_area_m2, geodesic_area_m2
from earthsignature.proto.stubs import geobuf_pb2, r2_v2_pb2, v2_pb2
from tests.api.conftest import MODEL, aoi_box, sample_products

A, B, C = (p.product_id for p in sample_products())
AREA = aoi_box(500_300.0, 4_980_200.0, 500_900.0, 4_980_700.0)


def stamp(text: str) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC))
    return out


def fields(geometry: Any = None, **filters: Any) -> dict[str, Any]:
    """Request fields: an area and filters with dates as ISO text."""
    out = {k: stamp(v) if k.endswith("_date") else v for k, v in filters.items()}
    if geometry is not None:
        out["wkt"] = geometry.wkt
    return out


def decode(data: geobuf_pb2.Data) -> dict[str, Any]:
    return dict(geobuf.decode(data.SerializeToString()))


def collections(v2, geometry: Any = None, **filters: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    request = v2_pb2.ListSegmentationRequest(**fields(geometry, **filters))
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
        ({"categories": [231, 311], "n_results": 5}, {B: {231}, A: {311}}),
        ({"categories": [211], "end_date": "2021-03-31", "n_results": 5}, {A: {211}}),
        ({"start_date": "2021-04-01", "n_results": 5}, {B: {312, 231}}),
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
    found = collections(v2, product_ids=[f"{C}"], n_results=3)
    assert [fc["product_id"] for fc in found] == [C]
    assert {f["properties"]["code"] for f in found[0]["features"]} == {111, 523}


def test_no_field_answers_the_newest_products_up_to_the_cap(v2) -> None:  # type: ignore[no-untyped-def]
    assert [fc["product_id"] for fc in collections(v2)] == [B]  # server default: 1
    assert [fc["product_id"] for fc in collections(v2, n_results=50)] == [B, A]  # cap: 2


@pytest.mark.parametrize(
    ("geometry", "filters", "metadata", "expected"),
    [
        (None, {}, (), [B, A, C]),
        (AREA, {}, (), [B, A]),
        (None, {"categories": [523]}, (), [C]),
        (None, {"start_date": "2021-01-01", "end_date": "2021-12-31"}, (), [B, A]),
        (None, {}, (("x-earthsig-version", "9"),), []),
        (None, {}, (("x-earthsig-model", MODEL), ("x-earthsig-version", "1")), [B, A, C]),
    ],
)
def test_list_product_ids(v2, geometry, filters, metadata, expected) -> None:  # type: ignore[no-untyped-def]
    request = v2_pb2.ListProductIdsRequest(**fields(geometry, **filters))
    answers = [decode(r.segmentation) for r in v2.ListProductIds(request, metadata=metadata)]
    assert all(a["type"] == "FeatureCollection" for a in answers)
    products = [f for a in answers for f in a["features"]]
    assert [p["properties"]["product_id"] for p in products] == expected
    for product in products:
        assert product["type"] == "Feature"
        assert shape(product["geometry"]).is_valid
        assert product["properties"]["created"]
        assert product["properties"]["categories"]


def test_list_product_ids_splits_into_collections(v2, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("earthsignature.grpc_api.v2.PRODUCTS_PER_MESSAGE", 2)
    answers = [decode(r.segmentation) for r in v2.ListProductIds(v2_pb2.ListProductIdsRequest())]
    ids = [[f["properties"]["product_id"] for f in a["features"]] for a in answers]
    assert ids == [[B, A], [C]]


def lonlat_square(lon: float, lat: float, km: float) -> shapely.Geometry:
    """A square of about ``km`` a side at (lon, lat), with 50 points an edge."""
    dlat = km / 111.0
    dlon = dlat / np.cos(np.radians(lat))
    return shapely.segmentize(box(lon, lat, lon + dlon, lat + dlat), dlat / 50)


@pytest.mark.parametrize("lon", [-10.5, 10.0, 44.8])
@pytest.mark.parametrize("lat", [36.0, 52.0, 71.0])
@pytest.mark.parametrize("km", [0.05, 10.0, 100.0])
def test_equal_area_matches_geodesic_area(lon: float, lat: float, km: float) -> None:
    square = lonlat_square(lon, lat, km)
    parcel = square.difference(shapely.buffer(square.centroid, km / 400))  # with a hole
    geometries = np.array([square, parcel, shapely.MultiPolygon([square])], dtype=object)
    fast = equal_area_m2(geometries)
    exact = np.array([geodesic_area_m2(g) for g in geometries])
    assert np.all(np.abs(fast / exact - 1) < 1e-3)


SQUARE = box(0.0, 0.0, 1.0, 1.0)
HOLED = box(2.0, 2.0, 3.0, 3.0).difference(box(2.2, 2.2, 2.4, 2.4))
TABLES = {
    "polygons": ([SQUARE, HOLED], {"code": np.array([311, 512], dtype=np.int32)}),
    "multipolygons": (
        [shapely.MultiPolygon([SQUARE, HOLED]), shapely.MultiPolygon([SQUARE])],
        {"label": np.array(["a", "b"], dtype=object)},
    ),
    "mixed": (
        [HOLED, shapely.MultiPolygon([SQUARE, HOLED]), shapely.MultiPolygon([HOLED])],
        {
            "code": np.array([1, -2, 3]),
            "area_m2": np.array([1.0, 2.5, -0.125]),
            "label": np.array(["x", None, "z"], dtype=object),
            "flag": np.array([True, False, True]),
        },
    ),
    "fine coordinates": (
        [shapely.segmentize(box(-10.123456789, 35.9, 44.85, 71.16), 0.37)],
        {"version": np.array([7], dtype=np.int32)},
    ),
    "empty": ([], {"code": np.array([], dtype=np.int32)}),
    "no columns": ([SQUARE], {}),
}


@pytest.mark.parametrize("name", list(TABLES))
@pytest.mark.parametrize("precision", [6, 7])
def test_fast_encoder_matches_the_geobuf_package(name: str, precision: int) -> None:
    geometries, columns = TABLES[name]
    table = PolygonTable(
        np.array(geometries, dtype=object), tuple(columns), tuple(columns.values())
    )
    custom = {"product_id": "P1", "version": 1, "cloud_cover": 12.5, "part": 1, "parts": 1}
    reference = geobuf.encode(
        {"type": "FeatureCollection", "features": list(table.features()), **custom}, precision
    )
    fast = encode_table(table, custom, precision)
    assert geobuf.decode(fast) == geobuf.decode(reference)
    assert fast == reference  # even the bytes: same field order, same value rules
    # answers leave as bytes: exactly the message the generated classes would serialize
    for module in (v2_pb2, r2_v2_pb2):
        message = module.SegmentationResponse(segmentation=geobuf_pb2.Data.FromString(fast))
        assert serialized_response(fast) == message.SerializeToString()


def test_clip_keeps_inner_polygons_and_cuts_crossing_ones() -> None:
    aoi = box(0.0, 0.0, 10.0, 10.0)
    inner = box(1.0, 1.0, 2.0, 2.0)
    crossing = box(9.0, 9.0, 11.0, 11.0)
    touching = box(10.0, 0.0, 11.0, 1.0)  # shares only an edge: no area inside
    outside = box(20.0, 20.0, 21.0, 21.0)
    around = box(-1.0, 4.0, 11.0, 6.0)  # crosses the area from side to side
    geometries = np.array([inner, crossing, touching, outside, around], dtype=object)
    clipped, rows = clip(geometries, aoi)
    assert rows.tolist() == [0, 1, 4]
    assert clipped[0] is inner  # untouched, not re-built
    assert clipped[1].equals(box(9.0, 9.0, 10.0, 10.0))
    assert clipped[2].equals(box(0.0, 4.0, 10.0, 6.0))


def test_large_answers_are_split_into_parts(v2, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    whole = collections(v2, geometry=AREA, product_ids=[A])
    polygons = len(whole[0]["features"])
    assert polygons >= 3
    monkeypatch.setattr("earthsignature.grpc_api.v2.FEATURES_PER_MESSAGE", 2)
    parts = collections(v2, geometry=AREA, product_ids=[A])
    assert [(fc["part"], fc["parts"]) for fc in parts] == [
        (i, len(parts)) for i in range(1, len(parts) + 1)
    ]
    assert len(parts) == -(-polygons // 2)
    assert [f for fc in parts for f in fc["features"]] == whole[0]["features"]


@pytest.mark.parametrize(
    "values", [[0], [1, 127, 128, 300], [2**14 - 1, 2**14, 2**35], [2**63, 2**64 - 1], []]
)
def test_bulk_varints_match_one_by_one(values: list[int]) -> None:
    data, sizes = varints(np.array(values, dtype=np.uint64))
    assert data.tobytes() == b"".join(varint(v) for v in values)
    assert sizes.tolist() == [len(varint(v)) for v in values]
