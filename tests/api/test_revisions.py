"""Clients generated from each published revision's proto files, over every rpc and filter.

The stubs are generated at test time from ``tests/api/clients/<revision>`` (the clients' copy of
the contract, not the server's package) and run in a child process (``clients/client.py``):
both revisions name their files ``snapearth/api/v1/database.proto``. R1 rasters are base64 text,
R2 rasters bytes; both must equal, byte for byte, the GeoTIFF the server's clip makes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.io import MemoryFile

from earthsignature import corine
from earthsignature.grpc_api import rasters
from earthsignature.grpc_api.server import ApiServer
from tests.api.conftest import (
    MODEL,
    VERSION,
    SampleProduct,
    aoi_box,
    blocks,
    cloud_block,
    geotiff,
    sample_products,
)

CLIENTS = Path(__file__).parent / "clients"
REVISIONS = ("r1", "r2")
A, B, C = (p.product_id for p in sample_products())
#: Products uploaded by these tests go to their own model, so the session's catalog is unchanged.
UPLOAD_MODEL = "clc-revisions"
AREA = aoi_box(500_300.0, 4_980_200.0, 500_900.0, 4_980_700.0)
YEAR_2021 = {"start_date": "2021-01-01T00:00:00Z", "end_date": "2022-01-01T00:00:00Z"}


def _generate(revision: str, out: Path) -> Path:
    from grpc_tools import protoc

    root = CLIENTS / revision
    sources = sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={root}",
            f"--proto_path={well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *sources,
        ]
    )
    assert status == 0
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {r: _generate(r, tmp_path_factory.mktemp(f"client-{r}")) for r in REVISIONS}


def run_client(generated: Path, address: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    job = json.dumps({"address": address, "calls": calls})
    done = subprocess.run(
        [sys.executable, str(CLIENTS / "client.py"), str(generated)],
        input=job,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def _product(product_id: str, origin: tuple[float, float], codes: np.ndarray) -> SampleProduct:
    import datetime as dt

    return SampleProduct(
        product_id,
        dt.datetime(2022, 2, 2, 10, 0, tzinfo=dt.UTC),
        origin,
        codes,
        cloud_block(0, 0, 10),
    )


def _upload_feature(product: SampleProduct, **rasters_: str) -> dict[str, Any]:
    footprint = aoi_box(
        product.origin[0], product.origin[1] - 1200, product.origin[0] + 1200, product.origin[1]
    )
    return {
        "type": "Feature",
        "geometry": shapely.geometry.mapping(footprint),
        "properties": {
            "product_id": product.product_id,
            "datetime": product.acquired.isoformat(),
            **rasters_,
        },
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def uploads(revision: str) -> dict[str, SampleProduct]:
    """Products each revision's V1 and V2 CreateProduct upload (ids differ per revision)."""
    number = REVISIONS.index(revision) + 1
    return {
        service: _product(
            f"S2A_MSIL2A_2022020{number}T100000_N0400_R022_T31TEJ_2022020{number}T12000{i}",
            (500_000.0, 4_981_000.0),
            blocks(311, 112, 512, (231, 242)[i]),
        )
        for i, service in enumerate(("v1", "v2"))
    }


def calls_for(revision: str) -> dict[str, dict[str, Any]]:
    """Every rpc and filter of both versions, as this revision's clients send them."""
    wkt = shapely.MultiPolygon([AREA]).wkt
    upload_md = [
        ["authorization", "Bearer test-token-0123456789"],
        ["x-earthsig-model", UPLOAD_MODEL],
    ]
    made = uploads(revision)
    v1_upload = made["v1"]
    seg = geotiff(v1_upload.codes, v1_upload.transform, nodata=0)
    cloud = geotiff(v1_upload.cloud, v1_upload.transform)
    v2_upload = made["v2"]
    v2_seg = geotiff(v2_upload.codes, v2_upload.transform, nodata=0)
    v2_cloud = geotiff(v2_upload.cloud, v2_upload.transform)
    calls: dict[str, dict[str, Any]] = {
        "v1_ids_all": {"service": "v1", "method": "ListProductIds"},
        "v1_ids_dates": {"service": "v1", "method": "ListProductIds", "request": YEAR_2021},
        "v1_ids_category": {
            "service": "v1",
            "method": "ListProductIds",
            "request": {"categories": ["523"]},
        },
        "v1_ids_wkt": {"service": "v1", "method": "ListProductIds", "request": {"wkt": wkt}},
        "v1_ids_other_version": {
            "service": "v1",
            "method": "ListProductIds",
            "metadata": [["x-earthsig-version", str(VERSION + 1)]],
        },
        "v1_segmentation": {
            "service": "v1",
            "method": "ListSegmentation",
            "request": {"wkt": wkt, "n_results": 5, **YEAR_2021},
        },
        "v1_segmentation_ids_categories": {
            "service": "v1",
            "method": "ListSegmentation",
            "request": {"product_ids": [f"{A},{C}"], "categories": ["111"], "n_results": 1},
        },
        "v1_search": {
            "service": "v1",
            "method": "SearchSegmentation",
            "request_type": "SearchSegmentationRequest",
            "request": {"query": f"product_id = '{C}'"},
        },
        "v1_create": {
            "service": "v1",
            "method": "CreateProduct",
            "geobuf": {"data": _upload_feature(v1_upload)},
            "request": {"segmentation": _b64(seg), "cloud_mask": _b64(cloud)},
            "metadata": upload_md,
        },
        "v2_segmentation": {
            "service": "v2",
            "method": "ListSegmentation",
            "request": {"wkt": wkt, "categories": [311], "n_results": 5, **YEAR_2021},
        },
        "v2_segmentation_ids": {
            "service": "v2",
            "method": "ListSegmentation",
            "request": {"product_ids": [C]},
        },
        "v2_segmentation_no_field": {"service": "v2", "method": "ListSegmentation"},
        "v2_ids_all": {"service": "v2", "method": "ListProductIds"},
        "v2_ids_filters": {
            "service": "v2",
            "method": "ListProductIds",
            "request": {"wkt": wkt, "categories": [512], **YEAR_2021},
        },
        "v2_create": {
            "service": "v2",
            "method": "CreateProduct",
            "geobuf": {
                "product": _upload_feature(
                    v2_upload, segmentation=_b64(v2_seg), cloud_mask=_b64(v2_cloud)
                )
            },
            "metadata": upload_md,
        },
        "v2_create_no_mask": {
            "service": "v2",
            "method": "CreateProduct",
            "geobuf": {"product": _upload_feature(v2_upload, segmentation=_b64(v2_seg))},
            "metadata": upload_md,
        },
        "v2_create_not_tiff": {
            "service": "v2",
            "method": "CreateProduct",
            "geobuf": {
                "product": _upload_feature(
                    v2_upload, segmentation=_b64(b"not a tiff"), cloud_mask=_b64(v2_cloud)
                )
            },
            "metadata": upload_md,
        },
    }
    if revision == "r1":  # R1 rasters are text: a client can send text that is not base64
        calls["v1_create_bad_base64"] = {
            **calls["v1_create"],
            "request": {"segmentation": "%%% not base64", "cloud_mask": _b64(cloud)},
        }
    return calls


AFTER_UPLOADS = {
    "uploaded_v1": {
        "service": "v1",
        "method": "ListProductIds",
        "metadata": [["x-earthsig-model", UPLOAD_MODEL]],
    },
    "uploaded_v2": {
        "service": "v2",
        "method": "ListProductIds",
        "metadata": [["x-earthsig-model", UPLOAD_MODEL]],
    },
}


@pytest.fixture(scope="module")
def answers(generated: dict[str, Path], address: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Each revision's calls, run by that revision's generated client, by name."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for revision in REVISIONS:
        calls = {**calls_for(revision), **AFTER_UPLOADS}
        results = run_client(generated[revision], address, list(calls.values()))
        out[revision] = dict(zip(calls, results, strict=True))
    return out


def ok(answer: dict[str, Any]) -> list[dict[str, Any]]:
    assert answer["code"] == "OK", answer["details"]
    return list(answer["answers"])


def raster_bytes(revision: str, value: str) -> bytes:
    """What the client holds: R1 base64 text decoded; R2 bytes (MessageToDict shows base64)."""
    return base64.b64decode(value)


@pytest.mark.parametrize("revision", REVISIONS)
def test_v1_list_product_ids_filters(answers: dict[str, Any], revision: str) -> None:
    got = answers[revision]
    ids = {
        name: [a["product_id"] for a in ok(got[name])] for name in got if name.startswith("v1_ids_")
    }
    assert ids["v1_ids_all"] == [B, A, C]
    assert ids["v1_ids_dates"] == [B, A]
    assert ids["v1_ids_category"] == [C]
    assert ids["v1_ids_wkt"] == [B, A]
    assert ids["v1_ids_other_version"] == []
    for answer in ok(got["v1_ids_all"]):
        assert shapely.from_wkt(answer["wkt"]).is_valid
        assert answer["creation_date"]  # no publication date in this catalog


def test_v1_rasters_equal_the_servers_geotiff_in_both_revisions(
    answers: dict[str, Any], api_server: ApiServer
) -> None:
    by_revision = {r: ok(answers[r]["v1_segmentation"]) for r in REVISIONS}
    assert [a["product_id"] for a in by_revision["r1"]] == [B, A]  # server cap 2
    state = api_server.state
    for r1, r2 in zip(by_revision["r1"], by_revision["r2"], strict=True):
        assert r1["product_id"] == r2["product_id"]
        entry = state.index.search(MODEL, VERSION, product_ids=frozenset({r1["product_id"]}))
        assets = entry[0].entry.assets
        for field, nbits, classes in (("segmentation", None, True), ("cloud_mask", 1, False)):
            expected = rasters.clip_to_geotiff(
                state.store,
                assets[field],
                shapely.from_wkt(shapely.MultiPolygon([AREA]).wkt),
                max_pixels=state.settings.api_max_pixels,
                nbits=nbits,
                classes=classes,
            )
            assert raster_bytes("r1", r1[field]) == expected
            assert raster_bytes("r2", r2[field]) == expected


def test_v1_segmentation_carries_the_clc_palette_and_class_names(answers: dict[str, Any]) -> None:
    answer = ok(answers["r2"]["v1_segmentation"])[0]
    with MemoryFile(base64.b64decode(answer["segmentation"])) as memfile, memfile.open() as src:
        assert src.colormap(1)[311] == (*corine.clc_class(311).rgb, 255)
        assert src.descriptions[0] == rasters.SEGMENTATION_DESCRIPTION
        assert src.tags(1)["CLC_311"] == corine.clc_class(311).label


@pytest.mark.parametrize("revision", REVISIONS)
def test_v1_list_segmentation_by_ids_and_categories(answers: dict[str, Any], revision: str) -> None:
    [answer] = ok(answers[revision]["v1_segmentation_ids_categories"])
    assert answer["product_id"] == C
    with MemoryFile(base64.b64decode(answer["segmentation"])) as memfile, memfile.open() as src:
        assert set(np.unique(src.read(1))) == {111, 523}  # whole product: no area given


def test_search_segmentation_exists_only_in_r1(answers: dict[str, Any]) -> None:
    assert [a["product_id"] for a in ok(answers["r1"]["v1_search"])] == [C]
    assert answers["r2"]["v1_search"]["code"] == "UNIMPLEMENTED"


@pytest.mark.parametrize("revision", REVISIONS)
def test_v2_list_segmentation_filters(answers: dict[str, Any], revision: str) -> None:
    got = answers[revision]
    collections = [a["geojson"] for a in ok(got["v2_segmentation"])]
    # B (newer) holds no 311 inside the area: only A's 311 polygons
    assert [c["features"][0]["properties"]["product_id"] for c in collections] == [A]
    for collection in collections:
        assert collection["type"] == "FeatureCollection"
        codes = {f["properties"]["code"] for f in collection["features"]}
        assert codes == {311}
        union = shapely.unary_union(
            [shapely.geometry.shape(f["geometry"]) for f in collection["features"]]
        )
        assert union.difference(AREA.buffer(1e-6)).area < 1e-12
    [only_c] = [a["geojson"] for a in ok(got["v2_segmentation_ids"])]
    assert {f["properties"]["code"] for f in only_c["features"]} == {111, 523}
    # no field at all: the newest products, as many as the server's default (1)
    [newest] = [a["geojson"] for a in ok(got["v2_segmentation_no_field"])]
    assert {f["properties"]["product_id"] for f in newest["features"]} == {B}


@pytest.mark.parametrize("revision", REVISIONS)
def test_v2_list_product_ids(answers: dict[str, Any], revision: str) -> None:
    got = answers[revision]
    [everything] = [a["geojson"] for a in ok(got["v2_ids_all"])]
    assert everything["type"] == "FeatureCollection"
    assert [f["properties"]["product_id"] for f in everything["features"]] == [B, A, C]
    assert [f["id"] for f in everything["features"]] == [B, A, C]
    [filtered] = [a["geojson"] for a in ok(got["v2_ids_filters"])]
    assert [f["properties"]["product_id"] for f in filtered["features"]] == [A]


@pytest.mark.parametrize("revision", REVISIONS)
def test_create_product_in_both_versions(answers: dict[str, Any], revision: str) -> None:
    got = answers[revision]
    assert ok(got["v1_create"]) == [{}]
    assert ok(got["v2_create"]) == [{}]
    made = {p.product_id for p in uploads(revision).values()}
    listed = {a["product_id"] for a in ok(got["uploaded_v1"])}
    assert made <= listed
    [collection] = [a["geojson"] for a in ok(got["uploaded_v2"])]
    assert made <= {f["properties"]["product_id"] for f in collection["features"]}


@pytest.mark.parametrize("revision", REVISIONS)
def test_malformed_uploads_are_invalid_argument(answers: dict[str, Any], revision: str) -> None:
    got = answers[revision]
    bad = [name for name in got if name.startswith(("v2_create_", "v1_create_bad"))]
    assert len(bad) == (3 if revision == "r1" else 2)
    for name in bad:
        assert got[name]["code"] == "INVALID_ARGUMENT", (name, got[name])
    assert "cloud_mask" in got["v2_create_no_mask"]["details"]


def test_v1_r2_rasters_open_directly_as_geotiff(answers: dict[str, Any], tmp_path: Path) -> None:
    answer = ok(answers["r2"]["v1_segmentation"])[0]
    tiff = tmp_path / "segmentation.tif"
    tiff.write_bytes(base64.b64decode(answer["segmentation"]))
    with rasterio.open(tiff) as src:
        assert src.dtypes[0] == "uint16" and src.crs.to_string() == "EPSG:32631"
