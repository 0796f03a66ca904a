"""CreateProduct (token, validation, ingestion) and products committed while the server runs."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

import geobuf
import grpc
import numpy as np
import pytest

from earthsignature.grpc_api import ingest
from earthsignature.proto.stubs import geobuf_pb2, v1_pb2, v2_pb2
from earthsignature.runtime import Runtime
from tests.api.conftest import (
    TOKEN,
    SampleProduct,
    blocks,
    cloud_block,
    decode_tiff,
    geotiff,
    sample_products,
    upload_of,
)

TEMPLATE = sample_products()[0]
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def new_product(product_id: str, codes: np.ndarray | None = None) -> SampleProduct:
    return SampleProduct(
        product_id,
        dt.datetime(2022, 7, 14, 10, 0, tzinfo=dt.UTC),
        TEMPLATE.origin,
        blocks(141, 142, 221, 222) if codes is None else codes,
        cloud_block(10, 10, 12),
    )


def metadata_feature(**properties: Any) -> geobuf_pb2.Data:
    obj = {
        "type": "Feature",
        "geometry": {"type": "GeometryCollection", "geometries": []},
        "properties": properties,
    }
    return geobuf_pb2.Data.FromString(geobuf.encode(obj))


def v1_request(product: SampleProduct, **overrides: Any) -> v1_pb2.CreateProductRequest:
    properties = {"product_id": product.product_id, "datetime": product.acquired.isoformat()}
    properties.update(overrides.pop("properties", {}))
    fields = {
        "data": metadata_feature(**properties),
        "segmentation": base64.b64encode(
            geotiff(product.codes, product.transform, nodata=0)
        ).decode(),
        "cloud_mask": base64.b64encode(geotiff(product.cloud, product.transform)).decode(),
        **overrides,
    }
    return v1_pb2.CreateProductRequest(**fields)


def version_md(version: int) -> tuple[tuple[str, str], ...]:
    return (("x-earthsig-version", str(version)),)


def listed(v1, version: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        r.product_id
        for r in v1.ListProductIds(v1_pb2.ListProductIdsRequest(), metadata=version_md(version))
    ]


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong-token"),),
        (("authorization", f"Basic {TOKEN}"),),
        (("authorization", TOKEN),),
    ],
    ids=["no token", "wrong token", "wrong scheme", "no scheme"],
)
def test_create_without_valid_token_is_unauthenticated(v1, metadata) -> None:  # type: ignore[no-untyped-def]
    product = new_product("S2A_MSIL2A_20220714T100000_N0400_R022_T31TEJ_NOAUTH")
    with pytest.raises(grpc.RpcError) as info:
        v1.CreateProduct(v1_request(product), metadata=(*metadata, *version_md(2)))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert product.product_id not in listed(v1, 2)


def test_v1_create_ingests_and_is_visible_at_once(v1) -> None:  # type: ignore[no-untyped-def]
    product = new_product("S2A_MSIL2A_20220714T100000_N0400_R022_T31TEJ_20220714T120000")
    v1.CreateProduct(v1_request(product), metadata=(*AUTH, *version_md(2)))
    assert listed(v1, 2) == [product.product_id]
    request = v1_pb2.ListSegmentationRequest(product_ids=[product.product_id])
    (response,) = v1.ListSegmentation(request, metadata=version_md(2))
    assert np.array_equal(decode_tiff(response.segmentation).array, product.codes)
    assert np.array_equal(decode_tiff(response.cloud_mask).array, product.cloud)
    assert response.cloud_cover == pytest.approx(100 * product.cloud.mean(), abs=0.01)


def test_v2_create_ingests(v2) -> None:  # type: ignore[no-untyped-def]
    product = new_product("S2B_MSIL2A_20220714T100000_N0400_R022_T31TEJ_20220714T130000")
    data = metadata_feature(
        product_id=product.product_id,
        datetime=product.acquired.isoformat(),
        version=3,
        segmentation=base64.b64encode(geotiff(product.codes, product.transform, nodata=0)).decode(),
        cloud_mask=base64.b64encode(geotiff(product.cloud, product.transform)).decode(),
    )
    v2.CreateProduct(v2_pb2.CreateProductRequest(product=data), metadata=AUTH)
    found = [
        feature
        for r in v2.ListProductIds(v2_pb2.ListProductIdsRequest(), metadata=version_md(3))
        for feature in geobuf.decode(r.segmentation.SerializeToString())["features"]
    ]
    assert [f["properties"]["product_id"] for f in found] == [product.product_id]
    assert sorted(found[0]["properties"]["categories"]) == [141, 142, 221, 222]


BAD_UPLOADS: dict[str, tuple[dict[str, Any], str]] = {
    "segmentation not base64": ({"segmentation": "@@not base64@@"}, "base64"),
    "segmentation not a tiff": ({"segmentation": base64.b64encode(b"hello").decode()}, "GeoTIFF"),
    "codes outside CORINE": (
        {
            "segmentation": base64.b64encode(
                geotiff(np.full((120, 120), 999, np.uint16), TEMPLATE.transform)
            ).decode()
        },
        "CORINE",
    ),
    "cloud mask not 0/1": (
        {
            "cloud_mask": base64.b64encode(
                geotiff(np.full((120, 120), 2, np.uint8), TEMPLATE.transform)
            ).decode()
        },
        "0 (clear) and 1",
    ),
    "cloud mask off grid": (
        {
            "cloud_mask": base64.b64encode(
                geotiff(np.zeros((60, 60), np.uint8), TEMPLATE.transform)
            ).decode()
        },
        "grid",
    ),
    "no product id": ({"properties": {"product_id": ""}}, "product_id"),
    "bad product id": ({"properties": {"product_id": "../../etc"}}, "product id"),
    "bad datetime": ({"properties": {"datetime": "last tuesday"}}, "ISO 8601"),
    "no tile anywhere": ({"properties": {"product_id": "my-own-product"}}, "tile"),
}


@pytest.mark.parametrize(("overrides", "message"), BAD_UPLOADS.values(), ids=BAD_UPLOADS.keys())
def test_bad_uploads_are_invalid_argument(v1, overrides, message) -> None:  # type: ignore[no-untyped-def]
    product = new_product("S2A_MSIL2A_20220714T100000_N0400_R022_T31TEJ_BADUPLOAD")
    with pytest.raises(grpc.RpcError) as info:
        v1.CreateProduct(v1_request(product, **overrides), metadata=(*AUTH, *version_md(5)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert message in info.value.details()
    assert listed(v1, 5) == []


def test_product_committed_while_serving_appears_without_restart(  # type: ignore[no-untyped-def]
    v1, api_store, api_settings, wait_for: Callable[..., bool]
) -> None:
    assert listed(v1, 4) == []
    product = new_product("S2A_MSIL2A_20220714T100000_N0400_R022_T31TEJ_LATECOMER")
    # committed by the pipeline's publish step in this process, not through the server
    ingest.ingest(Runtime(settings=api_settings, store=api_store), upload_of(product, version=4))
    assert wait_for(lambda: listed(v1, 4) == [product.product_id], 10.0)
