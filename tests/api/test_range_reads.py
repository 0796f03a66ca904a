"""Answers for an area read only that area: bytes over the wire from S3, counted by a proxy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from earthsignature import corine
from earthsignature.functions.cog import to_cog
from earthsignature.grpc_api.server import ApiServer
from earthsignature.proto.stubs import v1_pb2
from earthsignature.settings import Settings
from earthsignature.storage import S3Store, catalog, layout
from earthsignature.testing.proxy import CountingProxy
from earthsignature.testing.seaweed import SeaweedS3
from tests.api.conftest import CRS, aoi_box, decode_tiff, utm_to_lonlat
from tests.conftest import TEST_BUCKET

SIZE = 2048  # pixels a side, 10 m
ORIGIN = (400_000.0, 5_000_000.0)
PRODUCT = "S2A_MSIL2A_20230301T103021_N0509_R108_T31TCJ_20230301T120000"
MODEL = "clc-range"
CELL = 32  # polygon grid cell, pixels


def write_product(store: S3Store, folder: Path) -> np.ndarray:
    """A 2048 x 2048 noisy map (compression cannot hide its size) and a grid of polygons."""
    rng = np.random.default_rng(7)
    codes = np.asarray(corine.CODES, dtype=np.uint16)[rng.integers(0, 44, size=(SIZE, SIZE))]
    transform = from_origin(*ORIGIN, 10, 10)
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, crs=CRS, transform=transform)
    date, tile = "2023-03-01", "31TCJ"
    keys = {
        "segmentation": layout.segmentation_key(MODEL, 1, date, PRODUCT),
        "cloud_mask": layout.mask_key(date, tile, PRODUCT),
        "polygons": layout.polygons_key(MODEL, 1, date, PRODUCT),
    }
    for name, array, cog in (
        ("segmentation", codes, {}),
        ("cloud_mask", (codes % 2).astype(np.uint8), {"nbits": 1}),
    ):
        plain = folder / f"{name}.tif"
        with rasterio.open(plain, "w", dtype=array.dtype, tiled=True, **profile) as dst:
            dst.write(array, 1)
        with store.staged_file(keys[name]) as staged:
            to_cog(plain, staged, blocksize=256, **cog)
    x0, y0 = ORIGIN
    cells = [
        box(x0 + c * 10, y0 - (r + CELL) * 10, x0 + (c + CELL) * 10, y0 - r * 10)
        for r in range(0, SIZE, CELL)
        for c in range(0, SIZE, CELL)
    ]
    polygons = [utm_to_lonlat(cell) for cell in cells]
    n = len(polygons)
    cell_codes = np.asarray(corine.CODES, dtype=np.int32)[np.arange(n) % 44]
    fgb = folder / "polygons.fgb"
    pyogrio.raw.write(
        str(fgb),
        shapely.to_wkb(np.asarray(polygons, dtype=object)),
        [cell_codes, np.full(n, PRODUCT, dtype=object), np.full(n, 1e4)],
        ["code", "product_id", "area_m2"],
        driver="FlatGeobuf",
        geometry_type="Polygon",
        crs="EPSG:4326",
        layer_options={"SPATIAL_INDEX": "YES"},
    )
    store.put_file(keys["polygons"], fgb)
    footprint = utm_to_lonlat(box(x0, y0 - SIZE * 10, x0 + SIZE * 10, y0))
    item_key = layout.catalog_key(MODEL, 1, date, PRODUCT)
    catalog.commit(
        store,
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": PRODUCT,
            "geometry": mapping(footprint),
            "bbox": list(footprint.bounds),
            "properties": {
                "datetime": "2023-03-01T10:30:21Z",
                "created": "2023-03-02T00:00:00Z",
                catalog.PROP_MODEL: MODEL,
                catalog.PROP_VERSION: 1,
                "eo:cloud_cover": 50.0,
                catalog.PROP_CATEGORIES: list(corine.CODES),
            },
            "links": [],
            "assets": {
                name: {"href": catalog.relative_href(item_key, key), catalog.ASSET_KEY: key}
                for name, key in keys.items()
            },
        },
    )
    return codes


@pytest.fixture(scope="module")
def proxied(
    s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, CountingProxy, S3Store]]:
    prefix = f"range-{uuid.uuid4().hex[:10]}"
    direct = s3_server.store(TEST_BUCKET, prefix)
    write_product(direct, tmp_path_factory.mktemp("range"))
    with CountingProxy("127.0.0.1", s3_server.port) as proxy:
        through_proxy = s3_server.store(TEST_BUCKET, prefix, endpoint_url=proxy.endpoint_url)
        settings = Settings(model_name=MODEL, api_host="127.0.0.1", api_port=0, api_workers=2)
        server = ApiServer(settings, through_proxy)
        server.start()
        try:
            yield server, proxy, direct
        finally:
            server.stop(grace=0)


AREA = aoi_box(ORIGIN[0] + 5_000, ORIGIN[1] - 5_500, ORIGIN[0] + 5_500, ORIGIN[1] - 5_000)


def test_v1_reads_only_the_area(proxied, channel_to) -> None:  # type: ignore[no-untyped-def]
    server, proxy, store = proxied
    stub = channel_to(server, "v1")
    proxy.reset()
    (response,) = stub.ListSegmentation(v1_pb2.ListSegmentationRequest(wkt=AREA.wkt))
    seg = decode_tiff(response.segmentation)
    assert seg.array.shape == (50, 50)
    stored = store.size(layout.segmentation_key(MODEL, 1, "2023-03-01", PRODUCT))
    stored += store.size(layout.mask_key("2023-03-01", "31TCJ", PRODUCT))
    assert proxy.downstream_bytes < 0.1 * stored, (proxy.downstream_bytes, stored)
