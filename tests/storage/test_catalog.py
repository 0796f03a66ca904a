"""The catalog record is the commit point; readers prune by model/version/date partitions."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest

from earthsignature.storage import ObjectStore, catalog, layout, records


def make_item(store: ObjectStore, pid: str, day: str, *, version: int = 1) -> dict[str, Any]:
    """A minimal valid record whose assets exist in the store."""
    keys = {
        "segmentation": layout.segmentation_key("m", version, day, pid),
        "polygons": layout.polygons_key("m", version, day, pid),
    }
    for key in keys.values():
        store.put_bytes(key, b"data")
    item_key = layout.catalog_key("m", version, day, pid)
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": pid,
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
        "bbox": [0, 0, 1, 1],
        "properties": {
            "datetime": f"{day}T10:30:00Z",
            catalog.PROP_MODEL: "m",
            catalog.PROP_VERSION: version,
            catalog.PROP_CATEGORIES: [311, 512],
            catalog.PROP_CLASS_AREAS: {"311": 100.0, "512": 50.0},
            "eo:cloud_cover": 12.5,
        },
        "assets": {
            name: {"href": catalog.relative_href(item_key, key), catalog.ASSET_KEY: key}
            for name, key in keys.items()
        },
        "links": [],
    }


def test_commit_then_read_back(store: ObjectStore) -> None:
    entry = catalog.commit(store, make_item(store, "P1", "2024-06-01"))
    assert catalog.is_committed(store, "m", 1, "2024-06-01", "P1")
    back = catalog.read_entry(store, entry.key)
    assert back.product_id == "P1"
    assert back.categories == (311, 512)
    assert back.class_areas == {311: 100.0, 512: 50.0}
    assert back.date == dt.date(2024, 6, 1)
    assert back.properties["eo:cloud_cover"] == 12.5


def test_relative_hrefs_resolve_to_the_asset_keys(store: ObjectStore) -> None:
    item = make_item(store, "P1", "2024-06-01")
    href = item["assets"]["segmentation"]["href"]
    assert href == "../../../../segmentations/model=m/version=1/date=2024-06-01/P1.tif"


def test_relative_hrefs_need_no_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys are not paths: a worker whose working directory was removed still publishes."""

    def gone() -> str:
        raise FileNotFoundError("the working directory was removed")

    monkeypatch.setattr(os, "getcwd", gone)
    item_key = layout.catalog_key("m", 1, "2024-06-01", "P1")
    assert catalog.relative_href(item_key, "polygons/model=m/P1.fgb") == (
        "../../../../polygons/model=m/P1.fgb"
    )
    assert catalog.asset_key_from_href(item_key, "../../../../polygons/model=m/P1.fgb") == (
        "polygons/model=m/P1.fgb"
    )


def test_commit_refuses_records_naming_missing_assets(store: ObjectStore) -> None:
    item = make_item(store, "P2", "2024-06-01")
    store.delete(item["assets"]["polygons"][catalog.ASSET_KEY])
    with pytest.raises(catalog.CatalogError, match="assets not stored"):
        catalog.commit(store, item)
    assert not catalog.is_committed(store, "m", 1, "2024-06-01", "P2")


def test_recommit_is_idempotent(store: ObjectStore) -> None:
    item = make_item(store, "P1", "2024-06-01")
    catalog.commit(store, item)
    first = store.get_bytes(layout.catalog_key("m", 1, "2024-06-01", "P1"))
    catalog.commit(store, item)
    assert store.get_bytes(layout.catalog_key("m", 1, "2024-06-01", "P1")) == first
    assert len(list(catalog.iter_entries(store, "m", 1))) == 1


def test_iter_entries_filters_by_date_model_and_version(store: ObjectStore) -> None:
    for pid, day, version in [
        ("A", "2024-06-01", 1), ("B", "2024-06-02", 1), ("C", "2024-06-05", 1),
        ("D", "2024-06-02", 2),
    ]:  # fmt: skip
        catalog.commit(store, make_item(store, pid, day, version=version))
    got = catalog.iter_entries(store, "m", 1, start=dt.date(2024, 6, 2), end=dt.date(2024, 6, 4))
    assert [e.product_id for e in got] == ["B"]
    assert sorted(e.product_id for e in catalog.iter_entries(store)) == ["A", "B", "C", "D"]
    assert [e.product_id for e in catalog.iter_entries(store, version=2)] == ["D"]
    assert catalog.model_versions(store) == [("m", 1), ("m", 2)]


def test_malformed_record_is_a_catalog_error(store: ObjectStore) -> None:
    key = layout.catalog_key("m", 1, "2024-06-01", "BAD")
    store.put_bytes(key, b'{"id": "BAD", "properties": {}}')
    with pytest.raises(catalog.CatalogError, match="malformed"):
        catalog.read_entry(store, key)


def test_outcome_records_round_trip(store: ObjectStore) -> None:
    rec = records.OutcomeRecord(
        product_id="P9", date="2024-06-01", model="m", version=1, status="skipped",
        stage="cloud", reason="cloud cover 87.0% over threshold 60.0%",
        details={"cloud_fraction": 87.0},
    )  # fmt: skip
    records.write_record(store, rec)
    assert records.read_record(store, "m", 1, "2024-06-01", "P9") == rec
    assert [r.product_id for r in records.iter_records(store, "m", 1)] == ["P9"]
    records.clear_record(store, "m", 1, "2024-06-01", "P9")
    assert records.read_record(store, "m", 1, "2024-06-01", "P9") is None
