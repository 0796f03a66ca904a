"""What a newcomer meets first: store paths, dates, ``config``, ``status`` without Redis,
``train`` without its extra; each answers in one clear line."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.grpc_api import ingest
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore
from earthsignature.storage.records import OutcomeRecord, write_record
from earthsignature.testing.rasters import geotiff_bytes


def _env(store: Path, **extra: str | None) -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EARTHSIG_")}
    env.update({"REDIS_URL": None, "EARTHSIG_STORE": str(store), **extra})
    return env


@pytest.mark.parametrize(
    "args",
    [
        ["store", "ls"],
        ["store", "cat", "catalog/x.json"],
        ["stats", "--wkt", "POLYGON ((0 0, 1 0, 1 1, 0 0))"],
        ["status"],
        ["serve", "--port", "0"],
        ["export", "--out", "x.parquet"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_readers_refuse_a_missing_store_and_do_not_create_it(
    tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "typo"
    result = CliRunner().invoke(cli, args, env=_env(missing))
    assert result.exit_code == 2, result.output
    assert result.output == f"error: store {missing} does not exist (check EARTHSIG_STORE)\n"
    assert not missing.exists()


def test_a_store_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "store"
    afile.write_text("x")
    result = CliRunner().invoke(cli, ["store", "ls"], env=_env(afile))
    assert result.exit_code == 2
    assert result.output == f"error: store {afile} is a file, not a directory\n"


@pytest.mark.parametrize(
    ("value", "says"),
    [("2024-02-30", "2024-02-30 is not a valid date"), ("30/02/2024", "not a date in the form")],
)
def test_impossible_dates_are_named(tmp_path: Path, value: str, says: str) -> None:
    result = CliRunner().invoke(cli, ["run", "--date", value], env=_env(tmp_path))
    assert result.exit_code == 2
    assert says in result.output


@pytest.mark.parametrize("args", [["config"], ["config", "--describe"]])
def test_config_columns_are_aligned(args: list[str]) -> None:
    out = CliRunner().invoke(cli, args).output.splitlines()
    assert len(out) > 20
    starts = {len(line) - len(line.split(None, 1)[1]) for line in out if len(line.split()) > 1}
    assert len(starts) == 1, starts


def test_stats_help_units_match_the_table() -> None:
    text = " ".join(CliRunner().invoke(cli, ["stats", "--help"]).output.split())
    assert "hectares in the table, m² with --json" in text


def test_train_without_its_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as if the extra were not installed
    (tmp_path / "bands").mkdir()
    (tmp_path / "label.tif").write_bytes(b"")
    result = CliRunner().invoke(
        cli,
        ["train", "--pair", str(tmp_path / "bands"), str(tmp_path / "label.tif"), "--name", "m"],
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: earthsig train needs PyTorch, from the 'train' extra: pip install -e \".[train]\""
    ]


@pytest.fixture
def store_with_outcomes(tmp_path: Path) -> LocalStore:
    """One committed product and one failed record."""
    store = LocalStore(tmp_path / "store")
    settings = Settings(store=str(store.root), model_name="clc-status", min_mapping_unit_m2=0.0)
    codes = np.full((60, 60), 311, dtype=np.uint16)
    transform = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_900_000.0)
    ingest.ingest(
        Runtime(settings=settings, store=store),
        ingest.Upload(
            product_id="S2G_31TEJ_20240501_0_L2A",
            acquired=dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC),
            model="clc-status",
            version=1,
            tile="31TEJ",
            segmentation=geotiff_bytes(codes, transform, "EPSG:32631", nodata=0),
            cloud_mask=geotiff_bytes(np.zeros((60, 60), np.uint8), transform, "EPSG:32631"),
        ),
    )
    write_record(
        store,
        OutcomeRecord(
            product_id="S2G_31TEJ_20240502_0_L2A",
            date="2024-05-02",
            model="clc-status",
            version=1,
            status="failed",
            stage="fetch",
            reason="band B04 unreadable",
        ),
    )
    return store


def test_status_without_redis_reports_from_the_store(store_with_outcomes: LocalStore) -> None:
    result = CliRunner().invoke(cli, ["status"], env=_env(store_with_outcomes.root))
    assert result.exit_code == 0, result.output
    assert "REDIS_URL is not set: reporting from the store" in result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows[0][:5] == [
        "S2G_31TEJ_20240501_0_L2A",
        "clc-status",
        "v1",
        "2024-05-01",
        "committed",
    ]
    assert rows[1][:6] == [
        "S2G_31TEJ_20240502_0_L2A",
        "clc-status",
        "v1",
        "2024-05-02",
        "failed",
        "fetch",
    ]
    assert "band B04 unreadable" in result.stdout
