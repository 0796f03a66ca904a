"""The viewer's HTTP endpoints, without a browser: static files, catalog, ranges, stats."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
import pytest
from pyproj import Transformer

from earthsignature import corine
from tests.viewer.conftest import COMPOSITE, CRS, DATES, MODEL, ORIGIN, SIZE, VERSION, Viewer


def get(
    viewer: Viewer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(viewer.url.rstrip("/") + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture(scope="module")
def catalog(viewer: Viewer) -> dict[str, Any]:
    status, _, body = get(viewer, "/api/catalog")
    assert status == 200
    return json.loads(body)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/", "text/html"),
        ("/static/app.js", "javascript"),
        ("/static/vendor/maplibre-gl.js", "javascript"),
        ("/static/vendor/pmtiles.js", "javascript"),
        ("/static/vendor/maplibre-gl.css", "text/css"),
    ],
)
def test_page_and_bundled_libraries_are_served(viewer: Viewer, path: str, kind: str) -> None:
    status, headers, body = get(viewer, path)
    assert status == 200 and kind in headers["Content-Type"] and body


def test_catalog_lists_products_by_date_with_clc_colours(catalog: dict[str, Any]) -> None:
    assert (catalog["model"], catalog["version"]) == (MODEL, VERSION)
    assert catalog["dates"] == [d.isoformat() for d in sorted(DATES)]
    assert [p["date"] for p in catalog["products"]] == catalog["dates"]
    expression = catalog["fill_color"]
    pairs = dict(zip(expression[2:-1:2], expression[3:-1:2], strict=True))
    assert pairs == {c: k.hex for c, k in corine.CLASSES.items()}
    assert {row["code"] for row in catalog["legend"]} == set(corine.CODES)


def test_unknown_model_version_has_no_products(viewer: Viewer) -> None:
    status, _, body = get(viewer, "/api/catalog?model=nope&version=3")
    assert status == 200 and json.loads(body)["products"] == []


@pytest.mark.parametrize(("start", "end"), [(0, 126), (100, 100), (5, None)])
def test_tiles_are_served_by_byte_range(
    viewer: Viewer, catalog: dict[str, Any], start: int, end: int | None
) -> None:
    url = catalog["products"][0]["tiles"]
    whole = viewer.store.get_bytes(url[len("/tiles/") :])
    spec = f"bytes={start}-{'' if end is None else end}"
    status, headers, body = get(viewer, url, {"Range": spec})
    stop = len(whole) - 1 if end is None else end
    assert status == 206
    assert body == whole[start : stop + 1]
    assert headers["Content-Range"] == f"bytes {start}-{stop}/{len(whole)}"
    assert whole[:7] == b"PMTiles"


def test_range_past_the_end_is_416(viewer: Viewer, catalog: dict[str, Any]) -> None:
    status, headers, _ = get(viewer, catalog["products"][0]["tiles"], {"Range": "bytes=99999999-"})
    assert status == 416 and headers["Content-Range"].startswith("bytes */")


@pytest.mark.parametrize(
    "path",
    [
        "/tiles/../catalog/x.pmtiles",
        "/tiles/catalog/x.json",
        "/static/../server.py",
        "/cloud/raw/x.tif",
    ],
)
def test_only_tiles_masks_and_static_files_are_reachable(viewer: Viewer, path: str) -> None:
    status, _, _ = get(viewer, path)
    assert status in (400, 404)


def test_cloud_overlay_png_and_corners(viewer: Viewer, catalog: dict[str, Any]) -> None:
    url = catalog["products"][0]["cloud"]
    status, headers, png = get(viewer, url)
    assert status == 200 and headers["Content-Type"] == "image/png" and png[:4] == b"\x89PNG"
    _, _, meta = get(viewer, url + "?meta=1")
    corners = json.loads(meta)["coordinates"]
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    assert corners[0] == pytest.approx(list(to_lonlat.transform(*ORIGIN)), abs=1e-9)
    assert corners[2] == pytest.approx(
        list(to_lonlat.transform(ORIGIN[0] + 10 * SIZE, ORIGIN[1] - 10 * SIZE)), abs=1e-9
    )


def test_stats_endpoint_gives_areas_and_change(viewer: Viewer) -> None:
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    x0, y0, x1, y1 = (
        ORIGIN[0] - 100,
        ORIGIN[1] - 10 * SIZE - 100,
        ORIGIN[0] + 10 * SIZE + 100,
        ORIGIN[1] + 100,
    )
    ring = [
        to_lonlat.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))
    ]
    wkt = "POLYGON ((" + ", ".join(f"{x} {y}" for x, y in ring) + "))"
    first, second = sorted(DATES)
    query = urllib.parse.urlencode({"wkt": wkt, "change": f"{first},{second}"})
    status, _, body = get(viewer, f"/api/stats?{query}")
    assert status == 200
    out = json.loads(body)
    quarter = (SIZE // 2) ** 2 * 100.0
    cloud = 20 * 20 * 100.0
    day1 = {c["code"]: c["area_m2"] for c in out["dates"][0]["classes"]}
    assert day1 == {311: quarter - cloud, 211: quarter, 111: quarter, 512: quarter}
    assert out["dates"][0]["cloud_m2"] == cloud
    moved = {(t["from_code"], t["to_code"]): t["area_m2"] for t in out["change"]["transitions"]}
    assert moved == {
        (311, 112): quarter - cloud,
        (211, 231): quarter,
        (111, 311): quarter,
        (512, 512): quarter,
    }


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("", "area"),
        ("wkt=POLYGON((", "WKT"),
        ("wkt=POINT(1%201)", "Polygon"),
        ("wkt=POLYGON((0 0,1 0,1 1,0 0))&from=x", "Invalid"),
    ],
)
def test_bad_stats_request_is_400_with_reason(viewer: Viewer, query: str, match: str) -> None:
    status, _, body = get(viewer, f"/api/stats?{query.replace(' ', '%20')}")
    assert status == 400
    assert match in json.loads(body)["error"]


def test_earthsig_viewer_command_serves_the_page(viewer: Viewer, tmp_path) -> None:
    """``earthsig viewer --port N`` in its own process serves the same store; SIGINT stops it."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "EARTHSIG_STORE": str(viewer.store.root), "EARTHSIG_MODEL_NAME": MODEL}
    code = "from earthsignature.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "viewer", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, body = time.monotonic() + 30, None
        while body is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/catalog", timeout=5) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.2)
        assert body is not None, "viewer did not answer"
        assert body["dates"] == [d.isoformat() for d in sorted(DATES)]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"127.0.0.1:{port}" in err


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def test_basemap_is_packaged_and_no_class_blends_into_it(
    viewer: Viewer, catalog: dict[str, Any]
) -> None:
    basemap = catalog["basemap"]
    status, _, body = get(viewer, basemap["url"])
    assert status == 200 and len(body) < 1_000_000
    kinds = {f["properties"]["kind"] for f in json.loads(body)["features"]}
    assert kinds == {"land", "border"}
    for ground in (basemap["land"], basemap["sea"]):
        nearest = min(
            np.linalg.norm(_rgb(ground) - np.array(cls.rgb)) for cls in corine.CLASSES.values()
        )
        assert nearest > 90, (ground, nearest)  # beaches (331) and sea (523) stand out


def test_products_carry_footprint_and_confidence_when_they_have_one(
    catalog: dict[str, Any],
) -> None:
    first, second = catalog["products"]
    assert first["confidence"] is None
    assert second["confidence"].startswith("/confidence/confidence/model=")
    assert second["footprint"]["type"] in ("Polygon", "MultiPolygon")


def test_confidence_overlay_is_greyscale_with_no_data_transparent(
    viewer: Viewer, catalog: dict[str, Any]
) -> None:
    from rasterio.io import MemoryFile

    url = catalog["products"][1]["confidence"]
    status, headers, png = get(viewer, url)
    assert status == 200 and headers["Content-Type"] == "image/png"
    with MemoryFile(png) as mem, mem.open() as ds:
        rgba = ds.read()
    assert (rgba[0] == rgba[1]).all() and (rgba[1] == rgba[2]).all()  # grey
    assert (rgba[3, :10] == 0).all() and (rgba[3, 10:] > 0).all()  # no data transparent
    row = rgba[0, SIZE // 2]
    assert row[0] == 0 and row[-1] >= 250 and (np.diff(row.astype(int)) >= 0).all()
    _, _, meta = get(viewer, url + "?meta=1")
    assert len(json.loads(meta)["coordinates"]) == 4


def test_catalog_lists_composites_with_their_tiles(viewer: Viewer, catalog: dict[str, Any]) -> None:
    assert catalog["periods"] == ["R12-2024-05", COMPOSITE[0]]
    (last,) = [c for c in catalog["composites"] if c["period"] == COMPOSITE[0]]
    assert last["id"] == f"COMPOSITE_31TEJ_{COMPOSITE[0]}" and last["cloud"] is None
    assert sorted(last["categories"]) == sorted(set(COMPOSITE[1]))
    status, _, body = get(viewer, last["tiles"], {"Range": "bytes=0-126"})
    assert status == 206 and body[:7] == b"PMTiles"
