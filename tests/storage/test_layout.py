"""Every key comes from storage.layout; outside input cannot escape its prefix."""

from __future__ import annotations

import datetime as dt

import pytest

from earthsignature.functions.messages import ProductMessage
from earthsignature.storage import InvalidKey, layout


def test_keys_follow_the_architecture_layout() -> None:
    pid = "S2A_MSIL2A_20240601T103021_N0510_R108_T31TCJ_20240601T140000"
    day = dt.date(2024, 6, 1)
    assert layout.raw_key(day, "31TCJ", pid, "B04") == (
        f"raw/date=2024-06-01/tile=31TCJ/{pid}/B04.tif"
    )
    assert layout.mask_key("2024-06-01", "T31TCJ", pid) == (
        f"masks/date=2024-06-01/tile=31TCJ/{pid}/cloud.tif"
    )
    part = "model=clc-baseline/version=2/date=2024-06-01"
    assert layout.segmentation_key("clc-baseline", 2, day, pid) == f"segmentations/{part}/{pid}.tif"
    assert layout.polygons_key("clc-baseline", "2", day, pid) == f"polygons/{part}/{pid}.fgb"
    assert layout.tiles_key("clc-baseline", 2, day, pid) == f"tiles/{part}/{pid}.pmtiles"
    assert layout.catalog_key("clc-baseline", 2, day, pid) == f"catalog/{part}/{pid}.json"
    assert layout.record_key("clc-baseline", 2, day, pid) == f"records/{part}/{pid}.json"
    assert layout.work_prefix(pid, "run-1") == f"work/{pid}/run-1/"
    assert layout.work_prefix(pid, "run-1", "clc-baseline", 2) == (
        f"work/{pid}/run-1/model=clc-baseline/version=2/"
    )


def test_two_versions_of_a_product_in_one_run_share_no_scratch_object() -> None:
    """A version's clean-up (a prefix delete) must not reach the other's chips/predictions."""
    one, two = (
        ProductMessage(
            product_id="S2A_MSIL2A_20240601T103031_N0510_R108_T31TCJ_20240601T140001",
            date="2024-06-01",
            tile="31TCJ",
            model="clc-baseline",
            version=version,
            run="daily-2024-06-01",
        ).work_prefix
        for version in (1, 2)
    )
    assert not one.startswith(two) and not two.startswith(one)
    assert one.startswith(layout.work_prefix(one.split("/")[1], "daily-2024-06-01"))
    with pytest.raises(InvalidKey):
        layout.work_prefix("P1", "run-1", "clc-baseline")


def test_datetime_partitions_by_its_utc_date() -> None:
    late = dt.datetime(2024, 6, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert layout.acquisition_date(late) == dt.date(2024, 6, 2)
    assert layout.acquisition_date("2024-06-01T10:00:00Z") == dt.date(2024, 6, 1)


@pytest.mark.parametrize(
    ("builder", "value"),
    [
        (layout.product_id, "../../x"),
        (layout.product_id, "/etc/passwd"),
        (layout.product_id, "a/b"),
        (layout.product_id, "x" * 201),
        (layout.product_id, ""),
        (layout.product_id, "a..b"),
        (layout.model_name, "../model"),
        (layout.model_name, "Model With Spaces"),
        (layout.model_version, "0"),
        (layout.model_version, "-1"),
        (layout.model_version, "1.5"),
        (layout.model_version, "abc"),
        (layout.tile_id, "31/TCJ"),
        (layout.tile_id, "ZZZZZ"),
        (layout.band_name, "../B04"),
        (layout.run_id, "run/1"),
        (layout.acquisition_date, "2024-13-01"),
        (layout.acquisition_date, "yesterday"),
    ],
)
def test_malformed_parts_are_refused(builder, value) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidKey, match="invalid key part"):
        builder(value)


def test_partitioned_key_round_trips() -> None:
    key = layout.catalog_key("clc-baseline", 3, "2024-06-01", "S2B_T31TCJ_x")
    parts = layout.parse_partitioned_key(key)
    assert (parts.kind, parts.model, parts.version, parts.date, parts.product_id) == (
        "catalog", "clc-baseline", 3, dt.date(2024, 6, 1), "S2B_T31TCJ_x",
    )  # fmt: skip
    with pytest.raises(InvalidKey):
        layout.parse_partitioned_key("catalog/model=x/version=1/date=2024-06-01/../a.json")


def test_catalog_prefix_narrows_with_what_is_known() -> None:
    assert layout.catalog_prefix() == "catalog/"
    assert layout.catalog_prefix("m") == "catalog/model=m/"
    assert layout.catalog_prefix("m", 1) == "catalog/model=m/version=1/"
    assert layout.catalog_prefix("m", 1, "2024-01-02") == (
        "catalog/model=m/version=1/date=2024-01-02/"
    )
