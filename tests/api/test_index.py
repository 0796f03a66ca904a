"""The reader index: loads the catalog, follows commits and removals, searches area and time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from earthsignature.grpc_api import ingest
from earthsignature.grpc_api.index import ProductIndex
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, layout
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
