"""The reader index: loads the catalog, follows commits and removals, searches area and time."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from shapely.geometry import shape

from earthsignature.grpc_api import ingest
from earthsignature.grpc_api.index import KEPT_PROPERTIES, ProductIndex
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, catalog, layout
from tests.api.conftest import MODEL, VERSION, aoi_box, sample_products, upload_of

A, B, C = sample_products()
NEAR_AB = aoi_box(500_100, 4_980_100, 500_200, 4_980_200)


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    store = LocalStore(tmp_path / "store")
    return Runtime(settings=Settings(store=str(store.root), min_mapping_unit_m2=0.0), store=store)


def ids(found: list) -> list[str]:  # type: ignore[type-arg]
    return [p.entry.product_id for p in found]


def test_refresh_follows_commits_and_removals(runtime: Runtime) -> None:
    index = ProductIndex(runtime.store)
    assert index.refresh() == 0 and len(index) == 0
    ingest.ingest(runtime, upload_of(A))
    ingest.ingest(runtime, upload_of(C))
    assert index.refresh() == 2
    assert index.refresh() == 0  # nothing new: nothing re-read
    assert ids(index.search(MODEL, VERSION)) == [A.product_id, C.product_id]
    runtime.store.delete(layout.catalog_key(MODEL, VERSION, C.acquired, C.product_id))
    assert index.refresh() == 1
    assert ids(index.search(MODEL, VERSION)) == [A.product_id]


def test_malformed_record_is_skipped(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    ingest.ingest(runtime, upload_of(B))
    runtime.store.put_bytes(layout.catalog_key(MODEL, VERSION, "2021-01-01", "BROKEN"), b"{}")
    index = ProductIndex(runtime.store)
    index.refresh()
    assert ids(index.search(None, None)) == [B.product_id]
    assert "malformed catalog record" in caplog.text


@pytest.mark.parametrize(
    ("area", "start", "end", "expected"),
    [
        (None, None, None, [B, A, C]),
        (NEAR_AB, None, None, [B, A]),
        (aoi_box(600_100, 4_980_100, 600_200, 4_980_200), None, None, [C]),
        (aoi_box(800_000, 4_980_100, 800_200, 4_980_200), None, None, []),
        (None, dt.datetime(2021, 3, 1, 12, tzinfo=dt.UTC), None, [B]),  # A is at 10:30 that day
        (None, None, dt.datetime(2021, 3, 1, 10, 30, 21, tzinfo=dt.UTC), [A, C]),  # inclusive
        (NEAR_AB, None, dt.datetime(2021, 1, 1, tzinfo=dt.UTC), []),
    ],
)
def test_search_by_area_and_time(runtime: Runtime, area, start, end, expected) -> None:  # type: ignore[no-untyped-def]
    for product in (A, B, C):
        ingest.ingest(runtime, upload_of(product))
    index = ProductIndex(runtime.store)
    index.refresh()
    found = index.search(MODEL, VERSION, aoi=area, start=start, end=end)
    assert ids(found) == [p.product_id for p in expected]


@pytest.mark.parametrize("read_threads", [1, 4])
def test_index_keeps_what_readers_need(runtime: Runtime, read_threads: int) -> None:
    entries = {p.product_id: ingest.ingest(runtime, upload_of(p)) for p in (A, B, C)}
    index = ProductIndex(runtime.store, read_threads=read_threads)
    assert index.refresh() == 3
    found = index.search(MODEL, VERSION)
    assert len(found) == 3
    for product in found:
        stored = catalog.read_entry(runtime.store, entries[product.product_id].key)
        entry = product.entry
        for name in ("key", "product_id", "model", "version", "datetime", "cloud_cover"):
            assert getattr(entry, name) == getattr(stored, name), name
        assert (entry.categories, entry.assets) == (stored.categories, stored.assets)
        assert (entry.created, entry.published) == (stored.created, stored.published)
        assert shape(entry.geometry).equals(shape(stored.geometry))
        assert product.footprint.equals(shape(stored.geometry))
        assert product.asset("polygons") == stored.assets["polygons"]
        kept = {k: v for k, v in stored.properties.items() if k in KEPT_PROPERTIES}
        assert entry.properties == kept  # not the whole STAC properties
        assert entry.class_areas == {}
    # equal strings and tuples are shared between products, not repeated
    assert found[0].row.model is found[1].row.model
    assert found[0].row.extra is found[1].row.extra


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"id": "X", "properties": {}}'])
def test_unreadable_records_are_skipped(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    ingest.ingest(runtime, upload_of(A))
    runtime.store.put_bytes(layout.catalog_key(MODEL, VERSION, "2021-01-01", "BROKEN"), content)
    index = ProductIndex(runtime.store)
    assert index.refresh() == 1
    assert ids(index.search(None, None)) == [A.product_id]
    assert "malformed catalog record" in caplog.text


def test_changed_record_replaces_the_old_one(runtime: Runtime) -> None:
    entry = ingest.ingest(runtime, upload_of(A))
    index = ProductIndex(runtime.store)
    index.refresh()
    item = json.loads(runtime.store.get_bytes(entry.key))
    item["properties"]["eo:cloud_cover"] = 42.5
    item["properties"]["quicklook"] = "https://example.org/quicklook.png"
    runtime.store.put_bytes(entry.key, json.dumps(item).encode())
    assert index.refresh() == 1
    [product] = index.search(MODEL, VERSION)
    assert product.entry.cloud_cover == 42.5
    assert product.entry.properties["quicklook"] == "https://example.org/quicklook.png"
