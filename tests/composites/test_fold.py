"""Folding committed products into tile-period composites, through a real store.

The truth is the generator's land-cover map; each date shows it as one Sentinel-2 date would:
arable fields bare in spring, forest hazed into grass on one date, snow over one block in
winter, a cloud block per date (masked). The composite must agree with the truth on more
pixels than any single date.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from shapely.geometry import shape

from earthsignature.composites import stage
from earthsignature.composites.periods import period_range, periods_of
from earthsignature.generator import generate_product
from earthsignature.grpc_api import ingest
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, catalog, layout
from earthsignature.testing.rasters import geotiff_bytes

MODEL, VERSION, TILE, SIZE = "clc-comp", 1, "31TCJ", 192
DATES = [dt.date(2024, m, d) for m, d in ((1, 10), (3, 5), (6, 2), (6, 20), (9, 1), (11, 3))]


def _views(truth: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels, cloud) of each date: the truth as single dates distort it."""
    rng = np.random.default_rng(3)
    out = []
    arable = np.isin(truth, (211, 212, 213))
    forest = np.isin(truth, (311, 312, 313))
    for i, day in enumerate(DATES):
        labels = truth.copy()
        if day.month in (1, 3, 11):  # bare fields outside the growing season
            labels[arable] = 333
        if i == 2:  # haze: forest looks like grass
            labels[forest] = 231
        if day.month == 1:  # snow over the top rows
            labels[:60] = 335
        noise = rng.random(truth.shape) < 0.1  # a tenth of pixels misread as another class
        labels[noise] = rng.choice(np.array([112, 231, 324]), size=int(noise.sum()))
        labels[truth == 0] = 0
        cloud = np.zeros(truth.shape, dtype=np.uint8)
        cloud[(i * 30) % SIZE : (i * 30) % SIZE + 40, 20:90] = 1
        out.append((labels.astype(np.uint16), cloud))
    return out


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runtime, np.ndarray, list]:
    root: Path = tmp_path_factory.mktemp("composites")
    gen = generate_product(root / "gen", size=SIZE, seed=5, tile=TILE)
    with rasterio.open(gen.truth) as src:
        truth, transform, crs = src.read(1), src.transform, src.crs.to_string()
    settings = Settings(store=str(root / "store"), min_mapping_unit_m2=0.0)
    rt = Runtime(settings=settings, store=LocalStore(root / "store"))
    entries = []
    for day, (labels, cloud) in zip(DATES, _views(truth), strict=True):
        up = ingest.Upload(
            product_id=f"S2G_{TILE}_{day:%Y%m%d}_0_L2A",
            acquired=dt.datetime.combine(day, dt.time(10, 30), tzinfo=dt.UTC),
            model=MODEL,
            version=VERSION,
            tile=TILE,
            segmentation=geotiff_bytes(labels, transform, crs, nodata=0),
            cloud_mask=geotiff_bytes(cloud, transform, crs),
        )
        ingest.ingest(rt, up)
        found = catalog.read_committed(rt.store, MODEL, VERSION, day, up.product_id)
        assert found is not None
        entries.append(found)
    return rt, truth, entries


def _read(rt: Runtime, key: str) -> np.ndarray:
    with rasterio.open(rt.store.gdal_path(key)) as ds:
        return ds.read(1)


def _agreement(labels: np.ndarray, truth: np.ndarray) -> float:
    valid = truth != 0
    return float(np.mean(labels[valid] == truth[valid]))


@pytest.fixture(scope="module")
def folded(committed: tuple) -> tuple[Runtime, np.ndarray, list]:
    """Every date folded in commit order; vectors (rolling periods only, as the stage does)
    with the last date only: they cost most."""
    rt, _, entries = committed
    for i, entry in enumerate(entries):
        stage.update_composites(rt, entry, vectors=None if i == len(entries) - 1 else False)
    return committed


#: The rolling 12 months ending with the last date's month: every date.
LAST_R12 = "R12-2024-11"


def test_rolling_composite_beats_every_single_date(folded: tuple) -> None:
    rt, truth, entries = folded
    prefix = layout.composite_prefix(MODEL, VERSION, LAST_R12, TILE)
    composite = _read(rt, prefix + "composite.tif")
    singles = [_agreement(v[0] * (1 - v[1]), truth) for v in _views(truth)]
    assert _agreement(composite, truth) > max(singles) + 0.1, (composite, singles)
    observations = _read(rt, prefix + "observations.tif")
    assert observations.max() == len(DATES)
    assert 0 < observations.min() < len(DATES)  # cloud blocks are not counted
    item = json.loads(rt.store.get_bytes(prefix + "item.json"))
    assert item["id"] == f"COMPOSITE_{TILE}_{LAST_R12}"
    assert item["properties"]["earthsig:products"] == sorted(e.product_id for e in entries)
    assert {"segmentation", "confidence", "observations", "polygons", "tiles"} <= set(
        item["assets"]
    )
    for asset in item["assets"].values():
        assert rt.store.exists(asset[catalog.ASSET_KEY])


def test_folding_again_counts_nothing_twice(folded: tuple) -> None:
    rt, _, entries = folded
    prefix = layout.composite_prefix(MODEL, VERSION, LAST_R12, TILE)
    before = _read(rt, prefix + "observations.tif")
    reports = stage.update_composites(rt, entries[-1])
    assert [r.period for r in reports] == ["2024-11", "2024-SON", LAST_R12]
    assert [r.folded for r in reports] == [False, False, False]
    assert np.array_equal(_read(rt, prefix + "observations.tif"), before)
    month = layout.composite_prefix(MODEL, VERSION, "2024-11", TILE)
    state_tifs = [i.key for i in rt.store.list_keys(month) if "/state-" in i.key]
    assert len(state_tifs) == 1  # old generations are deleted
    assert not [i.key for i in rt.store.list_keys(prefix) if "/state" in i.key]


def test_rolling_periods_sum_their_months(folded: tuple) -> None:
    """R12-2024-06 holds January to June; months and seasons have no vectors by default."""
    rt, _, _ = folded
    prefix = layout.composite_prefix(MODEL, VERSION, "R12-2024-06", TILE)
    item = json.loads(rt.store.get_bytes(prefix + "item.json"))
    assert item["properties"]["earthsig:dates"] == [str(d) for d in DATES[:4]]
    assert item["properties"]["start_datetime"].startswith("2023-07-01")
    last = json.loads(
        rt.store.get_bytes(layout.composite_prefix(MODEL, VERSION, LAST_R12, TILE) + "item.json")
    )
    assert {"polygons", "tiles"} <= set(last["assets"])
    months = [
        _read(rt, layout.composite_prefix(MODEL, VERSION, m, TILE) + "observations.tif")
        for m in ("2024-01", "2024-03", "2024-06")
    ]
    assert np.array_equal(_read(rt, prefix + "observations.tif"), sum(months))
    month_item = json.loads(
        rt.store.get_bytes(layout.composite_prefix(MODEL, VERSION, "2024-06", TILE) + "item.json")
    )
    assert "polygons" not in month_item["assets"]


def test_late_product_updates_later_rolling_periods(committed: tuple, tmp_path: Path) -> None:
    """Folding the dates newest first gives the same rolling composites as in date order:
    an old month's commit re-sums the later rolling periods that exist."""
    rt, _, entries = committed
    late = Runtime(settings=rt.settings, store=LocalStore(tmp_path / "store"))
    for folder in Path(rt.settings.store).iterdir():  # the products, not the composites
        if folder.name != layout.COMPOSITES:
            shutil.copytree(folder, tmp_path / "store" / folder.name)
    for entry in reversed(entries):
        stage.update_composites(late, entry, vectors=False)
    for period in (LAST_R12, "R12-2024-06"):
        prefix = layout.composite_prefix(MODEL, VERSION, period, TILE)
        assert np.array_equal(
            _read(late, prefix + "composite.tif"), _read(rt, prefix + "composite.tif")
        )


def test_periods_hold_only_their_dates(folded: tuple) -> None:
    rt, _, _ = folded
    summer = layout.composite_prefix(MODEL, VERSION, "2024-JJA", TILE)
    item = json.loads(rt.store.get_bytes(summer + "item.json"))
    assert item["properties"]["earthsig:dates"] == ["2024-06-02", "2024-06-20"]
    assert _read(rt, summer + "observations.tif").max() == 2


def test_rebuild_equals_incremental(folded: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Also: the rolling period's vectors come from a spawned child here, as on a full tile
    (every raster counts as large)."""
    monkeypatch.setattr(stage, "CHILD_PROCESS_PIXELS", 1)
    rt, _, _ = folded
    prefixes = {p: layout.composite_prefix(MODEL, VERSION, p, TILE) for p in ("2024-SON", LAST_R12)}
    incremental = {p: _read(rt, k + "composite.tif") for p, k in prefixes.items()}
    rebuilt = stage.rebuild_all(rt, MODEL, VERSION, tile=TILE, period=LAST_R12)
    assert [(r.period, r.products) for r in rebuilt][-1] == (LAST_R12, len(DATES))
    assert stage.rebuild(rt, MODEL, VERSION, TILE, "2024-SON", vectors=False) == 2
    for period, key in prefixes.items():
        assert np.array_equal(_read(rt, key + "composite.tif"), incremental[period])
        item = json.loads(rt.store.get_bytes(key + "item.json"))
        assert ("polygons" in item["assets"]) == (period == LAST_R12)  # the default: rolling
        assert rt.store.exists(key + "polygons.fgb") == (period == LAST_R12)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2024-12-15", ("2024-12", "2025-DJF", "R12-2024-12")),
        ("2024-06-01", ("2024-06", "2024-JJA", "R12-2024-06")),
    ],
)
def test_periods_of_a_date(day: str, expected: tuple[str, str, str]) -> None:
    assert periods_of(day) == expected
    for period in expected:
        first, last = period_range(period)
        assert first <= dt.date.fromisoformat(day) <= last


def test_api_index_lists_composites_as_products(folded: tuple) -> None:
    """Composites with polygons (the rolling periods by default) are products, dated at the
    period's first day; those without (months, seasons) are not: V2 serves polygons."""
    from earthsignature.grpc_api.index import ProductIndex

    rt, _, entries = folded
    stage.rebuild(rt, MODEL, VERSION, TILE, "2024-JJA", vectors=True)
    index = ProductIndex(rt.store)
    index.refresh()
    summer = index.search(
        MODEL,
        VERSION,
        start=dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
        end=dt.datetime(2024, 6, 1, 23, tzinfo=dt.UTC),
    )
    assert {p.product_id for p in summer} == {f"COMPOSITE_{TILE}_2024-JJA"}
    found = index.search(MODEL, VERSION, product_ids=frozenset({f"COMPOSITE_{TILE}_{LAST_R12}"}))
    (year,) = found
    assert rt.store.exists(year.asset("polygons")) and year.entry.categories
    assert year.entry.datetime == dt.datetime(2023, 12, 1, tzinfo=dt.UTC)
    month = frozenset({f"COMPOSITE_{TILE}_2024-06"})
    assert not index.search(MODEL, VERSION, product_ids=month)
    assert len(index) == len(entries) + 2  # the dates, LAST_R12 and 2024-JJA


def test_item_footprint_is_the_products_union_without_cloud_holes(folded: tuple) -> None:
    """Clouded pixels of every date leave gaps in the composite; the item's footprint is the
    area its products cover (their footprints' union), not a trace of those gaps."""
    rt, _, entries = folded
    prefix = layout.composite_prefix(MODEL, VERSION, LAST_R12, TILE)
    item = json.loads(rt.store.get_bytes(prefix + "item.json"))
    footprint = shape(item["geometry"])
    products = shapely.union_all([shape(e.geometry) for e in entries])
    assert footprint.symmetric_difference(products).area < 1e-9 * products.area
    parts = getattr(footprint, "geoms", [footprint])
    assert all(not p.interiors for p in parts)
    state = json.loads(
        rt.store.get_bytes(layout.composite_prefix(MODEL, VERSION, "2024-06", TILE) + "state.json")
    )
    june = shapely.union_all([shape(e.geometry) for e in entries if e.date.month == 6])
    assert shape(state["footprint"]).symmetric_difference(june).area < 1e-9 * june.area


class _CountingStore(LocalStore):
    """A local store that records the keys looked up (read whole or tested for existence)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.looked_up: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        self.looked_up.append(key)
        return super().get_bytes(key)

    def exists(self, key: str) -> bool:
        self.looked_up.append(key)
        return super().exists(key)


def test_catch_up_reads_each_composite_once(folded: tuple) -> None:
    """``fold_committed`` (reprocess's catch-up) on composites that hold every product looks
    each tile-period's record up once, not once per product (before: a month and a season
    state, 11 later months and the rolling items, per product), and folds nothing; with one
    rolling item missing, it republishes that period."""
    rt, _, _ = folded
    counting = _CountingStore(Path(rt.settings.store))
    catch_up = Runtime(settings=rt.settings, store=counting)
    reports = stage.fold_committed(catch_up, MODEL, VERSION)
    assert reports and not any(r.folded for r in reports)
    composites = [k for k in counting.looked_up if k.startswith(layout.COMPOSITES + "/")]
    assert composites and len(composites) == len(set(composites))
    last = layout.composite_prefix(MODEL, VERSION, LAST_R12, TILE)
    item = rt.store.get_bytes(last + "item.json")
    rt.store.delete(last + "item.json")
    redone = stage.fold_committed(catch_up, MODEL, VERSION, vectors=False)
    assert [r.period for r in redone if r.folded] == [LAST_R12]
    assert (
        json.loads(rt.store.get_bytes(last + "item.json"))["properties"]["earthsig:products"]
        == json.loads(item)["properties"]["earthsig:products"]
    )
