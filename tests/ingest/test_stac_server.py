"""The local STAC API answers pystac-client searches (GET and POST, filters, paging)."""

from __future__ import annotations

import copy
import json
import urllib.request
from pathlib import Path

import pytest
from pystac_client import Client

from earthsignature.testing.stac_server import StacServer

ITEM = "s2/S2A_29RKH_20200219_L2A/S2A_29RKH_20200219_0_L2A.json"


@pytest.fixture
def server(shared_data: Path):  # type: ignore[no-untyped-def]
    base = json.loads((shared_data / ITEM).read_text())
    items = []
    for day in range(1, 6):
        item = copy.deepcopy(base)
        item["id"] = f"S2A_29RKH_202002{day:02d}_0_L2A"
        item["properties"]["datetime"] = f"2020-02-{day:02d}T11:34:25Z"
        items.append(item)
    with StacServer(
        items, files={"B02.tif": shared_data / ITEM.replace(ITEM.split("/")[-1], "B02.tif")}
    ) as srv:
        yield srv


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_search_filters_and_pages(server: StacServer, method: str) -> None:
    client = Client.open(server.url)
    found = client.search(
        collections=["sentinel-2-l2a"],
        datetime="2020-02-02/2020-02-04",
        intersects={"type": "Point", "coordinates": [-11.4, 24.8]},
        limit=2,
        method=method,
    )
    ids = [item["id"] for item in found.items_as_dicts()]
    assert ids == [f"S2A_29RKH_202002{d:02d}_0_L2A" for d in (2, 3, 4)]
    assert sum(r == f"{method} /search" for r in server.requests) == 2  # two pages
    nowhere = client.search(bbox=[10, 45, 11, 46], method=method)
    assert list(nowhere.items_as_dicts()) == []


@pytest.mark.parametrize(
    ("header", "status", "length"),
    [("bytes=0-99", 206, 100), ("bytes=-10", 206, 10), ("", 200, None)],
)
def test_files_support_ranges(
    server: StacServer, header: str, status: int, length: int | None
) -> None:
    headers = {"Range": header} if header else {}
    req = urllib.request.Request(server.file_url("B02.tif"), headers=headers)
    with urllib.request.urlopen(req) as resp:
        body = resp.read()
        assert resp.status == status
    data = server.files["B02.tif"].read_bytes()
    assert len(body) == (length or len(data))
    assert body == (data[-10:] if header == "bytes=-10" else data[: len(body)])
