"""A catalog made by the pipeline's publish step, an API server on loopback, clients.

Products are small synthetic land-cover maps (UTM 31N, 10 m pixels) whose codes are known
block by block, so decoded answers can be checked pixel by pixel.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
import shapely
from affine import Affine
from pydantic import SecretStr
from pyproj import Transformer
from rasterio.io import MemoryFile
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from earthsignature.grpc_api import ingest
from earthsignature.grpc_api.server import ApiServer
from earthsignature.proto.stubs import v1_pb2_grpc, v2_pb2_grpc
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import S3Store
from earthsignature.storage.catalog import CatalogEntry
from earthsignature.testing.rasters import geotiff_bytes
from earthsignature.testing.seaweed import SeaweedS3
from tests.conftest import TEST_BUCKET

TOKEN = "test-token-0123456789"
CRS = "EPSG:32631"
SIZE = 120  # pixels a side, 10 m each
MODEL, VERSION = "clc-test", 1


@dataclass(frozen=True)
class SampleProduct:
    """A product written into the test catalog and what it holds."""

    product_id: str
    acquired: dt.datetime
    origin: tuple[float, float]  # upper-left corner, UTM 31N metres
    codes: np.ndarray
    cloud: np.ndarray

    @property
    def transform(self) -> Affine:
        return Affine(10.0, 0.0, self.origin[0], 0.0, -10.0, self.origin[1])


def geotiff(array: np.ndarray, transform: Affine, crs: str = CRS, **extra: object) -> bytes:
    """GeoTIFF bytes of one band (CRS defaults to the test grid's)."""
    return geotiff_bytes(array, transform, crs, **extra)


def blocks(*quadrants: int) -> np.ndarray:
    """A SIZE x SIZE map of four quadrant codes (top-left, top-right, bottom-left, bottom-right)."""
    half = SIZE // 2
    out = np.zeros((SIZE, SIZE), dtype=np.uint16)
    out[:half, :half], out[:half, half:], out[half:, :half], out[half:, half:] = quadrants
    return out


def cloud_block(row0: int, col0: int, size: int) -> np.ndarray:
    out = np.zeros((SIZE, SIZE), dtype=np.uint8)
    out[row0 : row0 + size, col0 : col0 + size] = 1
    return out


def sample_products() -> list[SampleProduct]:
    here = (500_000.0, 4_981_000.0)
    there = (600_000.0, 4_981_000.0)
    return [
        SampleProduct(
            "S2A_MSIL2A_20210301T103021_N0214_R108_T31TEJ_20210301T120000",
            dt.datetime(2021, 3, 1, 10, 30, 21, tzinfo=dt.UTC),
            here,
            blocks(311, 211, 311, 512),
            cloud_block(0, 0, 30),
        ),
        SampleProduct(
            "S2B_MSIL2A_20210615T103629_N0300_R008_T31TEJ_20210615T121000",
            dt.datetime(2021, 6, 15, 10, 36, 29, tzinfo=dt.UTC),
            here,
            blocks(312, 312, 231, 231),
            cloud_block(60, 60, 20),
        ),
        SampleProduct(
            "S2A_MSIL2A_20200501T103031_N0214_R108_T31TFJ_20200501T120000",
            dt.datetime(2020, 5, 1, 10, 30, 31, tzinfo=dt.UTC),
            there,
            blocks(111, 111, 523, 523),
            np.zeros((SIZE, SIZE), dtype=np.uint8),
        ),
    ]


def upload_of(product: SampleProduct, model: str = MODEL, version: int = VERSION) -> ingest.Upload:
    return ingest.Upload(
        product_id=product.product_id,
        acquired=product.acquired,
        model=model,
        version=version,
        segmentation=geotiff(product.codes, product.transform, nodata=0),
        cloud_mask=geotiff(product.cloud, product.transform),
    )


@pytest.fixture(scope="session")
def api_store(s3_server: SeaweedS3) -> S3Store:
    """The session's catalog lives on the real S3 server (reads are /vsis3/ range requests)."""
    return s3_server.store(TEST_BUCKET, f"api-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def api_settings() -> Settings:
    return Settings(
        model_name=MODEL,
        model_version=VERSION,
        api_host="127.0.0.1",
        api_port=0,
        api_token=SecretStr(TOKEN),
        api_default_results=1,
        api_max_results=2,
        api_refresh_seconds=0.2,
        api_workers=4,
        min_mapping_unit_m2=0.0,
    )


@pytest.fixture(scope="session")
def catalog(
    api_store: S3Store, api_settings: Settings
) -> dict[str, tuple[SampleProduct, CatalogEntry]]:
    """The sample products, published by the pipeline's publish step before the server starts."""
    rt = Runtime(settings=api_settings, store=api_store)
    return {p.product_id: (p, ingest.ingest(rt, upload_of(p))) for p in sample_products()}


@pytest.fixture(scope="session")
def api_server(
    api_settings: Settings, api_store: S3Store, catalog: dict[str, object]
) -> Iterator[ApiServer]:
    server = ApiServer(api_settings, api_store)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


@pytest.fixture(scope="session")
def address(api_server: ApiServer) -> str:
    return f"127.0.0.1:{api_server.port}"


@pytest.fixture(scope="session")
def channel(address: str) -> Iterator[grpc.Channel]:
    limit = 64 * 1024 * 1024
    with grpc.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ],
    ) as chan:
        yield chan


@pytest.fixture(scope="session")
def v1(channel: grpc.Channel) -> v1_pb2_grpc.DatabaseProductServiceStub:
    return v1_pb2_grpc.DatabaseProductServiceStub(channel)


@pytest.fixture(scope="session")
def v2(channel: grpc.Channel) -> v2_pb2_grpc.DatabaseProductServiceStub:
    return v2_pb2_grpc.DatabaseProductServiceStub(channel)


@pytest.fixture
def wait_for() -> Callable[[Callable[[], bool], float], bool]:
    """Poll a condition until it holds or the timeout passes."""
    import time

    def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.1)
        return condition()

    return _wait


def utm_to_lonlat(geometry: BaseGeometry) -> BaseGeometry:
    """A UTM 31N geometry in EPSG:4326 (edges densified first, so it keeps its shape)."""
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    dense = shapely.segmentize(geometry, 10.0)
    return shapely.transform(
        dense, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1]))
    )


def aoi_box(minx: float, miny: float, maxx: float, maxy: float) -> BaseGeometry:
    """A lon/lat area from UTM 31N bounds."""
    return utm_to_lonlat(box(minx, miny, maxx, maxy))


@dataclass(frozen=True)
class DecodedRaster:
    array: np.ndarray
    crs: str
    transform: Affine
    bounds: tuple[float, float, float, float]
    nbits: str | None


def decode_tiff(text: str) -> DecodedRaster:
    """A base64 GeoTIFF from a response, read with rasterio."""
    with MemoryFile(base64.b64decode(text)) as memfile, memfile.open() as src:
        return DecodedRaster(
            array=src.read(1),
            crs=src.crs.to_string(),
            transform=src.transform,
            bounds=tuple(src.bounds),  # type: ignore[arg-type]
            nbits=src.tags(1, ns="IMAGE_STRUCTURE").get("NBITS"),
        )


def source_values(product: SampleProduct, decoded: DecodedRaster, layer: np.ndarray) -> np.ndarray:
    """The product's pixels under each pixel centre of a decoded clip (same grid)."""
    rows, cols = np.indices(decoded.array.shape)
    xs, ys = decoded.transform * (cols + 0.5, rows + 0.5)
    src_cols, src_rows = ~product.transform * (xs, ys)
    return layer[np.floor(src_rows).astype(int), np.floor(src_cols).astype(int)]


@pytest.fixture
def channel_to() -> Iterator[Callable[[ApiServer, str], object]]:
    """Stubs (``"v1"`` or ``"v2"``) for another server than the session's; channels closed after."""
    channels: list[grpc.Channel] = []

    def _stub(server: ApiServer, version: str) -> object:
        chan = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        channels.append(chan)
        module = v1_pb2_grpc if version == "v1" else v2_pb2_grpc
        return module.DatabaseProductServiceStub(chan)

    yield _stub
    for chan in channels:
        chan.close()
