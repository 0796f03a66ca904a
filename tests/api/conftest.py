"""A catalog made by the pipeline's publish step, an API server on loopback, clients.

Products are small synthetic land-cover maps (UTM 31N, 10 m pixels) whose codes are known
block by block, so decoded answers can be checked pixel by pixel.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import shapely
from affine import Affine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
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
from earthsignature.testing.ports import free_port
from earthsignature.testing.rasters import geotiff_bytes
from earthsignature.testing.seaweed import SeaweedS3
from tests.conftest import TEST_BUCKET
from tests.queue.conftest import store_env

TOKEN = "test-token-0123456789"
CRS = "EPSG:32631"
SIZE = 120  # pixels a side, 10 m each
MODEL, VERSION = "clc-test", 1
#: gRPC message size limit of the test clients (both directions).
MESSAGE_LIMIT = 64 * 1024 * 1024


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


# -- an `earthsig serve` process and TLS material ------------------------------------------


class ServeProcess:
    """``earthsig serve`` in a subprocess with the given settings; stderr kept in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, verbose: int = 0) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("EARTHSIG_")}
        full_env.update(env)
        full_env.update({"EARTHSIG_API_HOST": "127.0.0.1", "EARTHSIG_API_PORT": str(self.port)})
        earthsig = Path(sys.executable).parent / "earthsig"
        self.process = subprocess.Popen(
            [str(earthsig), *["-v"] * verbose, "serve", "--grace", "1"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, credentials: grpc.ChannelCredentials | None = None) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"earthsig serve exited: {self.log()}")
            if self.healthy(credentials):
                return
            time.sleep(0.3)
        raise TimeoutError(f"earthsig serve not ready: {self.log()}")

    def healthy(self, credentials: grpc.ChannelCredentials | None = None) -> bool:
        with open_channel(self.address, credentials) as chan:
            try:
                answer = health_pb2_grpc.HealthStub(chan).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            except grpc.RpcError:
                return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def open_channel(address: str, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
    options = [
        ("grpc.max_receive_message_length", MESSAGE_LIMIT),
        ("grpc.max_send_message_length", MESSAGE_LIMIT),
    ]
    if credentials is not None:
        options.append(("grpc.ssl_target_name_override", "localhost"))
        return grpc.secure_channel(address, credentials, options=options)
    return grpc.insecure_channel(address, options=options)


def s3_env(store: S3Store) -> dict[str, str]:
    """What a server process needs to open ``store`` and default to the sample model."""
    model = {"EARTHSIG_MODEL_NAME": MODEL, "EARTHSIG_MODEL_VERSION": str(VERSION)}
    return {**store_env(store), **model}


def published_store(server: SeaweedS3) -> S3Store:
    """A fresh prefix holding the sample products, published by the pipeline's publish step."""
    store = server.store(TEST_BUCKET, f"fuzz-{uuid.uuid4().hex[:12]}")
    rt = Runtime(settings=Settings(model_name=MODEL, min_mapping_unit_m2=0.0), store=store)
    for product in sample_products():
        ingest.ingest(rt, upload_of(product))
    return store


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
