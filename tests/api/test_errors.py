"""Bad input is INVALID_ARGUMENT with a message that says what is wrong, on every method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geobuf
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from earthsignature.proto.stubs import geobuf_pb2, v1_pb2, v2_pb2
from tests.api.conftest import aoi_box

AREA = aoi_box(500_300.0, 4_980_200.0, 500_900.0, 4_980_700.0)
V2_LIST = "/snapearth.api.v2.database.DatabaseProductService/ListSegmentation"
V1_LIST = "/snapearth.api.v1.database.DatabaseProductService/ListSegmentation"


def ts(text: str) -> Timestamp:
    out = Timestamp()
    out.FromJsonString(text)
    return out


def feature(geometry: dict[str, Any] | None = None, **properties: Any) -> geobuf_pb2.Data:
    obj = {
        "type": "Feature",
        "geometry": geometry or {"type": "GeometryCollection", "geometries": []},
        "properties": properties,
    }
    data = geobuf_pb2.Data.FromString(geobuf.encode(obj))
    # the geobuf package is proto3 and drops type 0 (POINT); proto2 clients always send it
    data.feature.geometry.type = data.feature.geometry.type
    return data


POLYGON = {"type": "Polygon", "coordinates": [[[3, 44.9], [3.1, 44.9], [3.1, 45], [3, 44.9]]]}

V1_SEGMENTATION_CASES = {
    "unparsable wkt": ({"wkt": "POLYGON ((0 0, 1 1"}, "not valid WKT"),
    "point wkt": ({"wkt": "POINT (3 45)"}, "POLYGON or MULTIPOLYGON"),
    "line wkt": ({"wkt": "LINESTRING (3 45, 4 46)"}, "POLYGON or MULTIPOLYGON"),
    "self-intersecting": ({"wkt": "POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))"}, "not a valid polygon"),
    "projected coordinates": (
        {"wkt": "POLYGON ((500000 4980000, 501000 4980000, 501000 4981000, 500000 4980000))"},
        "EPSG:4326",
    ),
    "start after end": (
        {
            "wkt": AREA.wkt,
            "start_date": ts("2022-01-01T00:00:00Z"),
            "end_date": ts("2021-01-01T00:00:00Z"),
        },
        "after end_date",
    ),
    "zero results": ({"wkt": AREA.wkt, "n_results": 0}, "at least 1"),
    "negative results": ({"wkt": AREA.wkt, "n_results": -3}, "at least 1"),
    "slash in product id": ({"product_ids": ["S2A/../x"]}, "malformed product id"),
    "bad id among good": ({"product_ids": ["S2A_OK,bad id"]}, "malformed product id"),
    "unknown category": ({"wkt": AREA.wkt, "categories": ["999"]}, "categories"),
    "no area, no ids": ({"n_results": 3}, "area"),
}


@pytest.mark.parametrize(
    ("fields", "message"), V1_SEGMENTATION_CASES.values(), ids=V1_SEGMENTATION_CASES.keys()
)
def test_v1_list_segmentation(v1, fields, message) -> None:  # type: ignore[no-untyped-def]
    assert_invalid(
        lambda: list(v1.ListSegmentation(v1_pb2.ListSegmentationRequest(**fields))), message
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"wkt": "MULTIPOINT (1 2, 3 4)"}, "POLYGON or MULTIPOLYGON"),
        (
            {"start_date": ts("2022-01-02T00:00:00Z"), "end_date": ts("2022-01-01T00:00:00Z")},
            "after",
        ),
        ({"categories": ["forest"]}, "categories"),
    ],
)
def test_v1_list_product_ids(v1, fields, message) -> None:  # type: ignore[no-untyped-def]
    assert_invalid(lambda: list(v1.ListProductIds(v1_pb2.ListProductIdsRequest(**fields))), message)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"query": "category = = 311"}, "CQL2"),
        ({"query": "colour = 'green'"}, "unknown properties"),
        ({"query": ""}, "empty"),
        ({"query": "0"}, "not a condition"),
        ({"query": "'x'"}, "not a condition"),
        ({"query": "category = 311", "n_results": 0}, "at least 1"),
    ],
)
def test_v1_search(v1, fields, message) -> None:  # type: ignore[no-untyped-def]
    request = v1_pb2.SearchSegmentationRequest(**fields)
    assert_invalid(lambda: list(v1.SearchSegmentation(request)), message)


V2_QUERY_CASES = {
    "collection, not feature": (
        geobuf_pb2.Data.FromString(
            geobuf.encode(
                {
                    "type": "FeatureCollection",
                    "features": [{"type": "Feature", "geometry": POLYGON, "properties": {}}],
                }
            )
        ),
        "must be a geobuf Feature",
    ),
    "point area": (feature({"type": "Point", "coordinates": [3, 45]}), "POLYGON or MULTIPOLYGON"),
    "unknown property": (feature(POLYGON, colour="green"), "unknown query properties"),
    "n_results not a number": (feature(POLYGON, n_results="five"), "n_results"),
    "zero results": (feature(POLYGON, n_results=0), "at least 1"),
    "start after end": (
        feature(POLYGON, start_date="2021-02-01", end_date="2021-01-01"),
        "after end_date",
    ),
    "bad date": (feature(POLYGON, start_date="yesterday"), "ISO 8601"),
    "bad product id": (feature(product_ids=["a b"]), "malformed product id"),
    "bad version": (feature(POLYGON, version=0), "version"),
    "no area, no ids": (feature(), "area"),
    "empty Data": (geobuf_pb2.Data(), "holds no feature"),
    "coords shorter than lengths": (
        geobuf_pb2.Data(
            dimensions=2,
            precision=6,
            feature=geobuf_pb2.Data.Feature(
                geometry=geobuf_pb2.Data.Geometry(type=4, lengths=[10], coords=[1, 2])
            ),
        ),
        "malformed",
    ),
}


@pytest.mark.parametrize(("data", "message"), V2_QUERY_CASES.values(), ids=V2_QUERY_CASES.keys())
def test_v2_list_segmentation(v2, data, message) -> None:  # type: ignore[no-untyped-def]
    request = v2_pb2.ListSegmentationRequest(query=data)
    assert_invalid(lambda: list(v2.ListSegmentation(request)), message)


def test_v2_missing_query(v2) -> None:  # type: ignore[no-untyped-def]
    assert_invalid(
        lambda: list(v2.ListProductIds(v2_pb2.ListProductIdsRequest())), "query is missing"
    )


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        (V2_LIST, b"\x0a\x03\xff\xff\xff"),  # query field holding broken protobuf
        (V2_LIST, b"\x0a\x05\x2a\x03\x0a\x01"),  # truncated nested geometry
        (V1_LIST, b"\x0a\xff\xff"),  # wkt with an impossible length
    ],
)
def test_undecodable_bytes(channel, method, payload) -> None:  # type: ignore[no-untyped-def]
    call = channel.unary_stream(method)  # raw bytes in and out
    assert_invalid(lambda: list(call(payload)), "not a valid")


def assert_invalid(call: Callable[[], object], message: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert message in info.value.details()
