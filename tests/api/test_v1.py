"""V1 through the generated stubs: every method and filter, decoded rasters checked by pixel."""

from __future__ import annotations

import datetime as dt

import grpc
import numpy as np
import pytest
import shapely
from google.protobuf.timestamp_pb2 import Timestamp
from shapely.geometry import box

from earthsignature.proto.stubs import v1_pb2
from tests.api.conftest import (
    CRS,
    SampleProduct,
    aoi_box,
    decode_tiff,
    sample_products,
    source_values,
)

A, B, C = (p.product_id for p in sample_products())
PRODUCTS = {p.product_id: p for p in sample_products()}
#: UTM bounds of an area across the four quadrants of products A and B.
AREA_UTM = (500_300.0, 4_980_200.0, 500_900.0, 4_980_700.0)
AREA = aoi_box(*AREA_UTM)


def stamp(year: int, month: int, day: int) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt.datetime(year, month, day, tzinfo=dt.UTC))
    return out


def ids(responses: object) -> list[str]:
    return [r.product_id for r in responses]  # type: ignore[attr-defined]


def check_clip(response: v1_pb2.SegmentationResponse, product: SampleProduct) -> None:
    """Codes, georeferencing and clipped extent of a response's two rasters."""
    seg = decode_tiff(response.segmentation)
    assert seg.crs == CRS
    assert seg.array.dtype == np.uint16
    assert (seg.transform.a, seg.transform.e) == (10.0, -10.0)
    minx, miny, maxx, maxy = AREA_UTM
    left, bottom, right, top = seg.bounds
    # the window is the area's bounds rounded outwards to whole pixels, nothing more
    assert minx - 10 < left <= minx and maxx <= right < maxx + 10
    assert miny - 10 < bottom <= miny and maxy <= top < maxy + 10
    expected = source_values(product, seg, product.codes)
    inside = seg.array != 0
    assert np.array_equal(seg.array[inside], expected[inside])
    rows, cols = np.indices(seg.array.shape)
    xs, ys = seg.transform * (cols + 0.5, rows + 0.5)
    core = shapely.contains_xy(box(minx + 15, miny + 15, maxx - 15, maxy - 15), xs, ys)
    assert inside[core].all()
    assert set(np.unique(seg.array[inside])) == set(np.unique(expected[core]))

    cloud = decode_tiff(response.cloud_mask)
    assert cloud.nbits == "1"
    assert cloud.crs == CRS and cloud.bounds == seg.bounds
    assert np.array_equal(cloud.array[core], source_values(product, cloud, product.cloud)[core])


def test_list_segmentation_clips_newest_first(v1) -> None:  # type: ignore[no-untyped-def]
    responses = list(v1.ListSegmentation(v1_pb2.ListSegmentationRequest(wkt=AREA.wkt, n_results=2)))
    assert ids(responses) == [B, A]
    for response in responses:
        product = PRODUCTS[response.product_id]
        check_clip(response, product)
        footprint = shapely.from_wkt(response.wkt)
        assert footprint.intersects(AREA)
        assert response.product_type == "S2MSI2A"
        assert response.creation_date.seconds > 0
        assert response.cloud_cover == pytest.approx(100 * product.cloud.mean(), abs=0.01)


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({}, [B]),  # server default n_results (1)
        ({"n_results": 1}, [B]),
        ({"n_results": 1000}, [B, A]),  # capped at 2, but only two products here anyway
        ({"start_date": stamp(2021, 1, 1), "end_date": stamp(2021, 4, 1), "n_results": 5}, [A]),
        ({"start_date": stamp(2021, 4, 1), "n_results": 5}, [B]),
        ({"end_date": stamp(2020, 12, 31), "n_results": 5}, []),
        ({"categories": ["512"], "n_results": 5}, [A]),
        ({"categories": ["231,111"], "n_results": 5}, [B]),
        ({"product_ids": [A], "n_results": 5}, [A]),
    ],
)
def test_list_segmentation_filters(v1, request_fields, expected) -> None:  # type: ignore[no-untyped-def]
    request = v1_pb2.ListSegmentationRequest(wkt=AREA.wkt, **request_fields)
    assert ids(v1.ListSegmentation(request)) == expected


@pytest.mark.parametrize("product_ids", [[f"{A},{C}"], [A, C], [f" {C} ", A]])
def test_list_segmentation_by_ids_returns_whole_products(v1, product_ids) -> None:  # type: ignore[no-untyped-def]
    request = v1_pb2.ListSegmentationRequest(product_ids=product_ids, n_results=20)
    responses = list(v1.ListSegmentation(request))
    assert ids(responses) == [A, C]
    for response in responses:
        product = PRODUCTS[response.product_id]
        seg = decode_tiff(response.segmentation)
        assert seg.transform == product.transform
        assert np.array_equal(seg.array, product.codes)
        assert np.array_equal(decode_tiff(response.cloud_mask).array, product.cloud)


def test_server_cap_limits_huge_n_results(v1) -> None:  # type: ignore[no-untyped-def]
    request = v1_pb2.ListSegmentationRequest(product_ids=[A, B, C], n_results=2**31 - 1)
    assert ids(v1.ListSegmentation(request)) == [B, A]


def test_area_outside_every_product_returns_nothing(v1) -> None:  # type: ignore[no-untyped-def]
    far = aoi_box(700_000, 4_900_000, 700_500, 4_900_500)
    assert ids(v1.ListSegmentation(v1_pb2.ListSegmentationRequest(wkt=far.wkt))) == []


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({}, [B, A, C]),
        ({"wkt": AREA.wkt}, [B, A]),
        ({"categories": ["523"]}, [C]),
        ({"start_date": stamp(2021, 1, 1)}, [B, A]),
        ({"end_date": stamp(2021, 1, 1), "wkt": AREA.wkt}, []),
    ],
)
def test_list_product_ids(v1, request_fields, expected) -> None:  # type: ignore[no-untyped-def]
    responses = list(v1.ListProductIds(v1_pb2.ListProductIdsRequest(**request_fields)))
    assert ids(responses) == expected
    for response in responses:
        assert shapely.from_wkt(response.wkt).geom_type in ("Polygon", "MultiPolygon")
        assert response.creation_date.seconds > 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("category = 512", [A]),
        ("category IN (231, 111)", [B, C]),
        ("datetime >= TIMESTAMP('2021-01-01T00:00:00Z')", [B, A]),
        (f"product_id = '{C}'", [C]),
        ("cloud_cover > 5", [A]),
        ("category = 311 AND cloud_cover < 10", [A]),
        ("model = 'clc-test' AND version = 1 AND category = 111", [C]),
        ("TRUE", [B, A]),  # the default model only, as any query not naming one
        ("FALSE", []),
    ],
)
def test_search_segmentation(v1, query, expected) -> None:  # type: ignore[no-untyped-def]
    request = v1_pb2.SearchSegmentationRequest(query=query, n_results=5)
    assert ids(v1.SearchSegmentation(request)) == expected


def test_search_intersects_clips_to_its_polygon(v1) -> None:  # type: ignore[no-untyped-def]
    query = f"S_INTERSECTS(geometry, {AREA.wkt}) AND category = 512"
    responses = list(v1.SearchSegmentation(v1_pb2.SearchSegmentationRequest(query=query)))
    assert ids(responses) == [A]
    check_clip(responses[0], PRODUCTS[A])


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((), [B, A, C]),
        ((("x-earthsig-model", "clc-test"), ("x-earthsig-version", "1")), [B, A, C]),
        ((("x-earthsig-version", "9"),), []),
        ((("x-earthsig-model", "another-model"),), []),
    ],
)
def test_model_version_from_metadata(v1, metadata, expected) -> None:  # type: ignore[no-untyped-def]
    responses = v1.ListProductIds(v1_pb2.ListProductIdsRequest(), metadata=metadata)
    assert ids(responses) == expected


def test_bad_model_metadata_is_invalid_argument(v1) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        list(
            v1.ListProductIds(
                v1_pb2.ListProductIdsRequest(), metadata=(("x-earthsig-version", "x"),)
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
