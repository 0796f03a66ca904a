"""ProductRef from the real STAC items of each supported catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest

from earthsignature.functions.errors import BadInput
from earthsignature.functions.stac import (
    AOT,
    BAND_IDS,
    SCL,
    ProductRef,
    boa_add_offsets,
    from_stac_item,
)
from earthsignature.grpc_api import ingest
from earthsignature.storage import layout

ITEMS = {
    "stac/eodm__S2A_39QTA_20230628_0_L2A.json": ("39QTA", "05.09", -0.1, "2023-06-28"),
    "stac/odc-stac__S2A_28QCH_20200714_0_L2A.json": ("28QCH", "02.14", 0.0, "2020-07-14"),
    "stac/odc-stac__S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json": (
        "06VVN",
        "02.12",
        0.0,
        "2019-06-29",
    ),
    "s2/S2A_29RKH_20200219_L2A/S2A_29RKH_20200219_0_L2A.json": (
        "29RKH",
        "02.14",
        0.0,
        "2020-02-19",
    ),
}


@pytest.mark.parametrize("name", sorted(ITEMS))
def test_real_items_map_to_product_refs(shared_data: Path, name: str) -> None:
    tile, baseline, offset, date = ITEMS[name]
    raw = json.loads((shared_data / name).read_text())
    ref = from_stac_item(raw)
    assert (ref.tile, ref.processing_baseline, ref.date) == (tile, baseline, date)
    assert set(ref.assets) - {AOT} == {*BAND_IDS, SCL}
    if AOT in ref.assets:  # Earth Search's ``aot``: DN / 1000, for the haze figure
        assert (ref.assets[AOT].scale, ref.assets[AOT].offset) == (pytest.approx(1e-3), 0.0)
    for band in BAND_IDS:
        assert ref.assets[band].scale == pytest.approx(1e-4)
        assert ref.assets[band].offset == pytest.approx(offset)
        assert ref.assets[band].href.endswith(
            (f"{band}.tif", f"{band}_10m.tif", f"{band}_20m.tif", f"{band}_60m.tif")
        )
    assert (ref.assets[SCL].scale, ref.assets[SCL].offset) == (1.0, 0.0)
    assert ref.footprint == raw["geometry"]
    assert ref.cloud_cover == pytest.approx(raw["properties"]["eo:cloud_cover"])
    assert ProductRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
    assert from_stac_item(pystac.Item.from_dict(raw)) == ref


def test_to_dict_has_the_documented_keys(shared_data: Path) -> None:
    raw = json.loads((shared_data / sorted(ITEMS)[0]).read_text())
    out = from_stac_item(raw).to_dict()
    assert set(out) == {
        "id",
        "datetime",
        "tile",
        "footprint",
        "cloud_cover",
        "processing_baseline",
        "platform",
        "product_type",
        "published",
        "assets",
    }
    assert set(out["assets"]["B04"]) == {"href", "scale", "offset"}


@pytest.mark.parametrize(("baseline", "offset"), [("05.09", -0.1), ("04.00", -0.1), ("03.01", 0.0)])
def test_offset_from_baseline_without_raster_bands(
    shared_data: Path, baseline: str, offset: float
) -> None:
    raw = json.loads((shared_data / sorted(ITEMS)[0]).read_text())
    for asset in raw["assets"].values():
        asset.pop("raster:bands", None)
    raw["properties"]["s2:processing_baseline"] = baseline
    assert from_stac_item(raw).assets["B8A"].offset == pytest.approx(offset)


@pytest.mark.parametrize(
    ("safe", "expected"),
    [
        ("S2A_MSIL2A_20230821T221941_N0509_R029_T01KAB_20230822T021825.SAFE", -1000),
        ("S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE_20201007T160857.SAFE", None),
    ],
)
def test_boa_add_offset_from_metadata(shared_data: Path, safe: str, expected: int | None) -> None:
    offsets = boa_add_offsets((shared_data / "s2-metadata" / safe / "MTD_MSIL2A.xml").read_bytes())
    if expected is None:
        assert offsets == {}
    else:
        assert offsets == dict.fromkeys(range(13), expected)


def test_item_without_tile_is_bad_input() -> None:
    with pytest.raises(BadInput, match="MGRS tile"):
        from_stac_item(
            {
                "id": "x",
                "geometry": {"type": "Point", "coordinates": [0, 0]},
                "properties": {"datetime": "2024-01-01T00:00:00Z"},
                "assets": {},
            }
        )


@pytest.mark.parametrize(
    ("text", "tile"),
    [
        ("S2B_MSIL2A_20240615T103629_N0510_R008_T31TCJ_20240615T140612", "31TCJ"),
        ("S2A_29RKH_20200219_0_L2A", "29RKH"),
        ("T32ULU_20240601", "32ULU"),
        ("S2A_MSIL2A_20240615T103629_N0510_R008_T31TCZ_X", None),  # rows stop at V
        ("S2A_MSIL2A_31TCJX_X", None),
        ("upload-without-tile", None),
    ],
)
def test_one_pattern_finds_the_tile_in_a_product_id(text: str, tile: str | None) -> None:
    assert layout.tile_in_text(text) == tile
    if tile is None:  # an upload must then say its tile: a clear error, not a bad key
        with pytest.raises(BadInput, match="no MGRS tile"):
            ingest.tile_of(text)
    else:
        assert ingest.tile_of(text) == tile
