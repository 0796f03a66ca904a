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


V2_FIELD_CASES = {
    "point wkt": ({"wkt": "POINT (3 45)"}, "POLYGON or MULTIPOLYGON"),
    "unparsable wkt": ({"wkt": "POLYGON ((0 0, 1 1"}, "not valid WKT"),
    "zero results": ({"wkt": AREA.wkt, "n_results": 0}, "at least 1"),
    "start after end": (
        {
            "wkt": AREA.wkt,
            "start_date": ts("2021-02-01T00:00:00Z"),
            "end_date": ts("2021-01-01T00:00:00Z"),
        },
        "after end_date",
    ),
    "bad product id": ({"product_ids": ["a b"]}, "malformed product id"),
    "unknown category": ({"categories": [999]}, "categories"),
    "negative category": ({"categories": [-311]}, "categories"),
}


@pytest.mark.parametrize(("fields", "message"), V2_FIELD_CASES.values(), ids=V2_FIELD_CASES.keys())
def test_v2_list_segmentation(v2, fields, message) -> None:  # type: ignore[no-untyped-def]
    request = v2_pb2.ListSegmentationRequest(**fields)
    assert_invalid(lambda: list(v2.ListSegmentation(request)), message)


def test_v2_bad_model_metadata(v2) -> None:  # type: ignore[no-untyped-def]
    request = v2_pb2.ListProductIdsRequest()
    md = (("x-earthsig-version", "zero"),)
    assert_invalid(lambda: list(v2.ListProductIds(request, metadata=md)), "version")


V2_UPLOAD_CASES = {
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
    "no rasters": (
        feature(POLYGON, product_id="S2A_X_T31TEJ_1", datetime="2021-01-01"),
        "segmentation",
    ),
    "raster not text": (
        feature(POLYGON, product_id="S2A_X_T31TEJ_1", datetime="2021-01-01", segmentation=5),
        "segmentation",
    ),
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


@pytest.mark.parametrize(("data", "message"), V2_UPLOAD_CASES.values(), ids=V2_UPLOAD_CASES.keys())
def test_v2_create_product(v2, data, message) -> None:  # type: ignore[no-untyped-def]
    request = v2_pb2.CreateProductRequest(product=data)
    md = (("authorization", "Bearer test-token-0123456789"),)
    assert_invalid(lambda: v2.CreateProduct(request, metadata=md), message)


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        (V2_LIST, b"\x12\x03\xff\xff\xff"),  # start_date holding broken protobuf
        (V2_LIST, b"\x28\xff\xff"),  # categories varint cut short
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
