"""Access control: write token, optional read token, TLS, and no secret in logs or messages."""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geobuf
import grpc
import pytest
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import SecretStr

from earthsignature.cli import cli
from earthsignature.grpc_api import ingest
from earthsignature.grpc_api.server import ApiServer
from earthsignature.proto.stats_stubs import stats_pb2, stats_pb2_grpc
from earthsignature.proto.stubs import (
    geobuf_pb2,
    r2_v1_pb2,
    r2_v1_pb2_grpc,
    r2_v2_pb2,
    r2_v2_pb2_grpc,
    v1_pb2,
    v1_pb2_grpc,
    v2_pb2,
    v2_pb2_grpc,
)
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore
from earthsignature.testing.seaweed import SeaweedS3
from tests.api.conftest import (
    MODEL,
    SampleProduct,
    ServeProcess,
    aoi_box,
    blocks,
    cloud_block,
    geotiff,
    open_channel,
    published_store,
    s3_env,
    sample_products,
    self_signed,
    upload_of,
)

WRITE_TOKEN = "write-token-d41d8cd98f00b204"
READ_TOKEN = "read-token-9e107d9d372bb682"
PRODUCT = sample_products()[2]


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    """A local catalog of one product."""
    store = LocalStore(tmp_path_factory.mktemp("access") / "store")
    settings = Settings(store=str(store.root), min_mapping_unit_m2=0.0)
    ingest.ingest(Runtime(settings=settings, store=store), upload_of(PRODUCT))
    return store


ServerFactory = Callable[..., grpc.Channel]


@pytest.fixture
def serve(small_store: LocalStore) -> Iterator[ServerFactory]:
    """Start an in-process server with extra settings; returns a channel to it."""
    servers: list[ApiServer] = []
    channels: list[grpc.Channel] = []

    def _start(credentials: grpc.ChannelCredentials | None = None, **extra: Any) -> grpc.Channel:
        settings = Settings(
            store=str(small_store.root),
            model_name=MODEL,
            api_host="127.0.0.1",
            api_port=0,
            api_workers=2,
            min_mapping_unit_m2=0.0,
            **extra,
        )
        server = ApiServer(settings, small_store)
        servers.append(server)
        channels.append(open_channel(f"127.0.0.1:{server.start()}", credentials))
        return channels[-1]

    yield _start
    for chan in channels:
        chan.close()
    for server in servers:
        server.stop(grace=0)


# -- writes ---------------------------------------------------------------------------------


def upload_request(product_id: str, version: int) -> v1_pb2.CreateProductRequest:
    product = SampleProduct(
        product_id,
        dt.datetime(2023, 5, 2, 10, 0, tzinfo=dt.UTC),
        PRODUCT.origin,
        blocks(311, 312, 321, 322),
        cloud_block(0, 0, 10),
    )
    feature = {
        "type": "Feature",
        "geometry": {"type": "GeometryCollection", "geometries": []},
        "properties": {
            "product_id": product.product_id,
            "datetime": product.acquired.isoformat(),
            "version": version,
        },
    }
    return v1_pb2.CreateProductRequest(
        data=geobuf_pb2.Data.FromString(geobuf.encode(feature)),
        segmentation=base64.b64encode(geotiff(product.codes, product.transform, nodata=0)).decode(),
        cloud_mask=base64.b64encode(geotiff(product.cloud, product.transform)).decode(),
    )


@pytest.mark.parametrize(
    ("metadata", "created"),
    [
        ((), False),
        (bearer("wrong"), False),
        (bearer(WRITE_TOKEN[:-1]), False),
        (bearer(WRITE_TOKEN + "0"), False),
        ((("authorization", WRITE_TOKEN),), False),
        (bearer(READ_TOKEN), False),
        (bearer(WRITE_TOKEN), True),
        ((("authorization", f"bearer  {WRITE_TOKEN} "),), True),
    ],
    ids=["none", "wrong", "prefix", "longer", "no scheme", "read token", "right", "lower case"],
)
def test_create_product_needs_the_write_token(serve: ServerFactory, metadata, created) -> None:  # type: ignore[no-untyped-def]
    stub = v1_pb2_grpc.DatabaseProductServiceStub(
        serve(api_token=SecretStr(WRITE_TOKEN), api_read_token=SecretStr(READ_TOKEN))
    )
    version = 7
    product_id = "S2A_MSIL2A_20230502T100000_N0500_R022_T31TFJ_20230502T120000"
    auth = bearer(READ_TOKEN)
    if created:
        stub.CreateProduct(upload_request(product_id, version), metadata=metadata)
        assert ids_of_with(stub, version, auth) == [product_id]
        return
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateProduct(upload_request(product_id, version), metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in info.value.details()
    assert ids_of_with(stub, version, auth) == []


def ids_of_with(stub: Any, version: int, auth: tuple[tuple[str, str], ...]) -> list[str]:
    request = v1_pb2.ListProductIdsRequest()
    metadata = (("x-earthsig-version", str(version)), *auth)
    return [p.product_id for p in stub.ListProductIds(request, metadata=metadata)]


@pytest.mark.parametrize("version", ["v1", "v2", "r2v1", "r2v2"])
def test_writes_are_refused_when_no_token_is_configured(serve: ServerFactory, version) -> None:  # type: ignore[no-untyped-def]
    chan = serve()
    if version == "r2v1":
        call = lambda: r2_v1_pb2_grpc.DatabaseProductServiceStub(chan).CreateProduct(  # noqa: E731
            r2_v1_pb2.CreateProductRequest(), metadata=bearer("anything")
        )
    elif version == "r2v2":
        call = lambda: r2_v2_pb2_grpc.DatabaseProductServiceStub(chan).CreateProduct(  # noqa: E731
            r2_v2_pb2.CreateProductRequest(), metadata=bearer("anything")
        )
    elif version == "v1":
        call = lambda: v1_pb2_grpc.DatabaseProductServiceStub(chan).CreateProduct(  # noqa: E731
            upload_request("S2A_MSIL2A_20230502T100000_N0500_R022_T31TFJ_X", 8),
            metadata=bearer("anything"),
        )
    else:
        call = lambda: v2_pb2_grpc.DatabaseProductServiceStub(chan).CreateProduct(  # noqa: E731
            v2_pb2.CreateProductRequest(), metadata=bearer("anything")
        )
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "no API token configured" in info.value.details()


# -- reads ----------------------------------------------------------------------------------

AREA_WKT = aoi_box(600_100.0, 4_980_000.0, 601_100.0, 4_980_900.0).wkt
#: Every read method of the API, each with a request that succeeds with the right token.
READS: dict[str, Callable[[grpc.Channel, tuple[tuple[str, str], ...]], object]] = {
    "v1 ListSegmentation": lambda ch, md: list(
        v1_pb2_grpc.DatabaseProductServiceStub(ch).ListSegmentation(
            v1_pb2.ListSegmentationRequest(product_ids=[PRODUCT.product_id]), metadata=md
        )
    ),
    "v1 SearchSegmentation": lambda ch, md: list(
        v1_pb2_grpc.DatabaseProductServiceStub(ch).SearchSegmentation(
            v1_pb2.SearchSegmentationRequest(query="category = 111"), metadata=md
        )
    ),
    "v1 ListProductIds": lambda ch, md: list(
        v1_pb2_grpc.DatabaseProductServiceStub(ch).ListProductIds(
            v1_pb2.ListProductIdsRequest(), metadata=md
        )
    ),
    "v2 ListSegmentation": lambda ch, md: list(
        v2_pb2_grpc.DatabaseProductServiceStub(ch).ListSegmentation(
            v2_pb2.ListSegmentationRequest(product_ids=[PRODUCT.product_id]), metadata=md
        )
    ),
    "v2 ListProductIds": lambda ch, md: list(
        v2_pb2_grpc.DatabaseProductServiceStub(ch).ListProductIds(
            v2_pb2.ListProductIdsRequest(), metadata=md
        )
    ),
    "R2 v1 ListSegmentation": lambda ch, md: list(
        r2_v1_pb2_grpc.DatabaseProductServiceStub(ch).ListSegmentation(
            r2_v1_pb2.ListSegmentationRequest(product_ids=[PRODUCT.product_id]), metadata=md
        )
    ),
    "R2 v1 ListProductIds": lambda ch, md: list(
        r2_v1_pb2_grpc.DatabaseProductServiceStub(ch).ListProductIds(
            r2_v1_pb2.ListProductIdsRequest(), metadata=md
        )
    ),
    "R2 v2 ListSegmentation": lambda ch, md: list(
        r2_v2_pb2_grpc.DatabaseProductServiceStub(ch).ListSegmentation(
            r2_v2_pb2.ListSegmentationRequest(product_ids=[PRODUCT.product_id]), metadata=md
        )
    ),
    "R2 v2 ListProductIds": lambda ch, md: list(
        r2_v2_pb2_grpc.DatabaseProductServiceStub(ch).ListProductIds(
            r2_v2_pb2.ListProductIdsRequest(), metadata=md
        )
    ),
    "stats AreaByDate": lambda ch, md: stats_pb2_grpc.LandCoverStatsStub(ch).AreaByDate(
        stats_pb2.AreaByDateRequest(
            wkt=AREA_WKT, date_from="2020-01-01", date_to="2020-12-31", model=MODEL
        ),
        metadata=md,
    ),
    "stats Change": lambda ch, md: stats_pb2_grpc.LandCoverStatsStub(ch).Change(
        stats_pb2.ChangeRequest(
            wkt=AREA_WKT, date_from="2020-05-01", date_to="2020-05-01", model=MODEL
        ),
        metadata=md,
    ),
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
def test_reads_are_open_by_default(serve: ServerFactory, read) -> None:  # type: ignore[no-untyped-def]
    chan = serve(api_token=SecretStr(WRITE_TOKEN))
    read(chan, ())  # no error


@pytest.fixture
def guarded(serve: ServerFactory) -> grpc.Channel:
    """A server whose reads need the read token."""
    return serve(api_token=SecretStr(WRITE_TOKEN), api_read_token=SecretStr(READ_TOKEN))


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
@pytest.mark.parametrize(
    ("metadata", "allowed"),
    [
        ((), False),
        (bearer("guess"), False),
        (bearer(READ_TOKEN.upper()), False),
        (bearer(READ_TOKEN), True),
        (bearer(WRITE_TOKEN), True),
    ],
    ids=["none", "wrong", "wrong case", "read token", "write token"],
)
def test_read_token_guards_every_read(guarded: grpc.Channel, read, metadata, allowed) -> None:  # type: ignore[no-untyped-def]
    if allowed:
        read(guarded, metadata)  # no error
        return
    with pytest.raises(grpc.RpcError) as info:
        read(guarded, metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in info.value.details()


def test_bad_request_without_read_token_is_unauthenticated(guarded: grpc.Channel) -> None:
    """The token is checked before the request is even decoded: no hints to strangers."""
    call = guarded.unary_stream("/snapearth.api.v2.database.DatabaseProductService/ListProductIds")
    with pytest.raises(grpc.RpcError) as info:
        list(call(b"\x0a\x03\xff\xff\xff"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_and_reflection_stay_open(guarded: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(guarded).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(guarded)
    (answer,) = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for s in answer.list_services_response.service}
    assert "snapearth.api.v1.database.DatabaseProductService" in names


# -- TLS ------------------------------------------------------------------------------------


def test_tokens_over_tls(serve: ServerFactory, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    chan = serve(
        credentials,
        api_tls_cert=cert,
        api_tls_key=key,
        api_token=SecretStr(WRITE_TOKEN),
        api_read_token=SecretStr(READ_TOKEN),
    )
    stub = v1_pb2_grpc.DatabaseProductServiceStub(chan)
    product_id = "S2A_MSIL2A_20230502T100000_N0500_R022_T31TFJ_TLS"
    stub.CreateProduct(upload_request(product_id, 9), metadata=bearer(WRITE_TOKEN), timeout=30)
    assert ids_of_with(stub, 9, bearer(READ_TOKEN)) == [product_id]
    with pytest.raises(grpc.RpcError) as info:
        ids_of_with(stub, 9, ())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- secrets --------------------------------------------------------------------------------

WRONG_S3_SECRET = "wrong-s3-secret-0f1e2d3c4b5a"


@pytest.fixture(scope="module")
def secret_store(s3_server: SeaweedS3) -> Any:
    return published_store(s3_server)


def test_no_secret_in_logs_or_messages(  # type: ignore[no-untyped-def]
    s3_server: SeaweedS3, secret_store, tmp_path: Path
) -> None:
    """A debug-logging server with every secret set; failing calls; nothing leaks anywhere."""
    env = {
        **s3_env(secret_store),
        "EARTHSIG_API_TOKEN": WRITE_TOKEN,
        "EARTHSIG_API_READ_TOKEN": READ_TOKEN,
    }
    server = ServeProcess(env, tmp_path / "serve.log", verbose=2)
    details: list[str] = []
    try:
        server.wait_ready()
        with open_channel(server.address) as chan:
            for read in READS.values():
                for metadata in ((), bearer("wrong"), bearer(READ_TOKEN)):
                    details += _details_of(lambda r=read, m=metadata: r(chan, m))
            v1 = v1_pb2_grpc.DatabaseProductServiceStub(chan)
            bad = v1_pb2.ListSegmentationRequest(wkt="POLYGON ((0 0, 1 1")
            details += _details_of(
                lambda: list(v1.ListSegmentation(bad, metadata=bearer(READ_TOKEN)))
            )
            for metadata in ((), bearer("wrong"), bearer(READ_TOKEN), bearer(WRITE_TOKEN)):
                request = upload_request("S2A_MSIL2A_20230502T100000_N0500_R022_T31TFJ_NOPE", 3)
                request.segmentation = "@@"
                details += _details_of(
                    lambda r=request, m=metadata: v1.CreateProduct(r, metadata=m)
                )
            # a read the store fails: a product's raster (never read before) is gone from S3
            lost = sample_products()[0].product_id
            (lost_key,) = [o.key for o in secret_store.list_keys("segmentations/") if lost in o.key]
            secret_store.delete(lost_key)
            gone = v1_pb2.ListSegmentationRequest(product_ids=[lost])
            details += _details_of(
                lambda: list(v1.ListSegmentation(gone, metadata=bearer(READ_TOKEN)))
            )
    finally:
        server.stop()
    log = server.log()
    assert len(details) >= 20 and any("bearer token" in d for d in details)
    assert any(d.startswith("no object 'segmentations/") for d in details)
    assert " DEBUG " in log  # -vv: every library's debug lines are in it too
    # a failing S3 access at start: a wrong secret key, same debug logging
    failing = ServeProcess(
        {**env, "EARTHSIG_S3_SECRET_KEY": WRONG_S3_SECRET},
        tmp_path / "failing.log",
        verbose=2,
    )
    try:
        assert failing.process.wait(timeout=60) != 0
    finally:
        failing.stop()
    failed_log = failing.log()
    assert "SignatureDoesNotMatch" in failed_log or "denied" in failed_log.lower(), failed_log
    secrets = [WRITE_TOKEN, READ_TOKEN, s3_server.secret_key, WRONG_S3_SECRET]
    for secret in secrets:
        assert secret not in log, secret
        assert secret not in failed_log, secret
        assert not [d for d in details if secret in d], secret


def _details_of(call: Callable[[], object]) -> list[str]:
    try:
        call()
    except grpc.RpcError as exc:
        return [exc.details() or ""]
    return []


def test_config_masks_secrets() -> None:
    env = {
        "EARTHSIG_API_TOKEN": WRITE_TOKEN,
        "EARTHSIG_API_READ_TOKEN": READ_TOKEN,
        "EARTHSIG_S3_SECRET_KEY": "s3-secret-abcdef",
        "EARTHSIG_S3_ACCESS_KEY": "s3-access-key-123",
        "EARTHSIG_REDIS_URL": "redis://:redis-password-42@127.0.0.1:6379/0",
    }
    for as_json in ([], ["--json"]):
        result = CliRunner().invoke(cli, ["config", *as_json], env={**os.environ, **env})
        assert result.exit_code == 0, result.output
        for secret in (WRITE_TOKEN, READ_TOKEN, "s3-secret-abcdef", "redis-password-42"):
            assert secret not in result.output
        assert "redis://:********@127.0.0.1:6379/0" in result.output
        assert result.output.count("********") >= 5
