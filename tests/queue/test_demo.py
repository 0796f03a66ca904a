"""``earthsig demo``: generated scenes through the real stages, offline, with embedded defaults;
and what the run leaves for GIS tools (STAC catalog, COG labels, GeoParquet) and on disk."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pystac
import pytest
import rasterio
from click.testing import CliRunner, Result
from pystac.validation import validate_dict

from earthsignature import corine
from earthsignature.cli import cli
from earthsignature.storage import LocalStore, catalog
from earthsignature.storage.stac_catalog import ROOT_KEY
from tests.queue.conftest import ROOT


@dataclass(frozen=True)
class Demo:
    out: Path
    result: Result
    tmp: Path  # the workers' TMPDIR, private to this run

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.out / "store", create=False)


def _env() -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EARTHSIG_")}
    env.update({"REDIS_URL": None, "TRITON_URL": None, "PYTHONPATH": str(ROOT)})
    return env


def _demo(out: Path, tmp: Path | None = None) -> Result:
    env = _env() if tmp is None else {**_env(), "TMPDIR": str(tmp)}
    return CliRunner().invoke(
        cli,
        ["demo", "--out", str(out), "--products", "2", "--size", "420", "--no-progress"],
        env=env,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo")
    tmp = root / "tmp"
    tmp.mkdir()
    yield Demo(root / "demo", _demo(root / "demo", tmp), tmp)


def test_demo_runs_offline_and_says_where_outputs_are(demo: Demo) -> None:
    result, out = demo.result, demo.out
    assert result.exit_code == 0, result.output
    assert "2 products, 2 committed" in result.output
    entries = list(catalog.iter_entries(demo.store))
    assert len(entries) == 2
    assert {entry.model for entry in entries} == {"dynamicworld-clc"}  # the learned default
    for entry in entries:
        path = out / "store" / entry.assets["polygons"]
        assert path.is_file() and str(path) in result.output
    assert f"EARTHSIG_STORE={(out / 'store').resolve()} earthsig serve" in result.output


def test_committed_products_leave_no_work_files_and_no_aux_xml(demo: Demo) -> None:
    assert demo.result.exit_code == 0, demo.result.output
    assert list(demo.store.list_keys("work/")) == []
    assert list(demo.tmp.rglob("*.aux.xml")) == []  # GDAL sidecars of staged files


def test_segmentation_cog_carries_palette_class_names_and_band_description(demo: Demo) -> None:
    (entry, *_rest) = list(catalog.iter_entries(demo.store))
    with rasterio.open(demo.store.gdal_path(entry.assets["segmentation"])) as ds:
        assert ds.colormap(1)[311] == (*corine.clc_class(311).rgb, 255)
        assert ds.descriptions[0] == "CORINE Land Cover level-3 code (0 = no data)"
        assert ds.tags(1)["CLC_331"] == corine.clc_class(331).label
    with rasterio.open(demo.store.gdal_path(entry.assets["cloud_mask"])) as ds:
        assert ds.descriptions[0] == "cloud mask (1 = cloud or shadow)"


def test_stac_root_catalog_and_collection_per_model_version(demo: Demo) -> None:
    root = pystac.Catalog.from_file(str(demo.store.root / ROOT_KEY))
    (collection,) = list(root.get_children())
    assert isinstance(collection, pystac.Collection)
    items = list(collection.get_items())
    assert sorted(i.id for i in items) == sorted(
        e.product_id for e in catalog.iter_entries(demo.store)
    )
    assert all(Path(i.assets["segmentation"].get_absolute_href() or "").is_file() for i in items)
    extensions = " ".join(collection.stac_extensions)
    assert all(name in extensions for name in ("projection", "raster", "classification"))
    asset = collection.extra_fields["item_assets"]["segmentation"]
    classes = {c["value"]: c for c in asset["classification:classes"]}
    assert classes[331]["color_hint"] == corine.clc_class(331).hex.lstrip("#").upper()
    assert classes[331]["title"] == corine.clc_class(331).label
    assert collection.summaries.get_list("proj:code")
    # pystac's JSON-schema validation against the core schemas it ships (the extensions'
    # schemas would be fetched from the network, which tests do not reach)
    for key in (ROOT_KEY, *{k.key for k in demo.store.list_keys("stac/") if k.key != ROOT_KEY}):
        document = json.loads(demo.store.get_bytes(key))
        assert validate_dict(document, extensions=[]), key
    for item in items:
        assert validate_dict(item.to_dict(transform_hrefs=False), extensions=[])


def test_second_demo_says_its_products_were_already_committed(demo: Demo) -> None:
    again = _demo(demo.out)
    assert again.exit_code == 0, again.output
    assert "2 products found were already committed" in again.output


def test_geoparquet_export_reads_back_in_duckdb(demo: Demo, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    spatial = pytest.importorskip("duckdb_extension_spatial")
    parquet = tmp_path / "polygons.parquet"
    result = CliRunner().invoke(
        cli,
        ["export", "--out", str(parquet)],
        env={**_env(), "EARTHSIG_STORE": str(demo.store.root)},
    )
    assert result.exit_code == 0, result.output
    extension = next(Path(spatial.__file__).parent.rglob("spatial.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{extension}'")
    rows, total_m2, laea_m2, products = con.execute(
        f"""
        SELECT count(*), sum(area_m2),
               sum(ST_Area(ST_Transform(geometry, 'EPSG:4326', 'EPSG:3035', always_xy := true))),
               count(DISTINCT product_id)
        FROM '{parquet}'
        """
    ).fetchone()
    entries = list(catalog.iter_entries(demo.store))
    assert products == len(entries) and rows > 0
    assert f"{rows} polygons of {len(entries)} products" in result.output
    # the stored areas are m² (not square degrees) and agree with an equal-area projection
    assert laea_m2 == pytest.approx(total_m2, rel=0.02)
    assert total_m2 == pytest.approx(sum(sum(e.class_areas.values()) for e in entries), rel=0.05)
    geo = json.loads(
        con.execute(
            f"SELECT decode(value) FROM parquet_kv_metadata('{parquet}') WHERE decode(key) = 'geo'"
        ).fetchone()[0]
    )
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    # DuckDB read the geo metadata: the column arrives as a GEOMETRY, not a blob
    (kind,) = con.execute(f"SELECT typeof(geometry) FROM '{parquet}' LIMIT 1").fetchone()
    assert kind.startswith("GEOMETRY")
