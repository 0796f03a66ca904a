"""Reprocessing a date range with a new model version builds that version's composites, and
``earthsig composites rebuild`` recomputes them from the committed products.

The pipeline runs on the real queue with local worker processes (``earthsig run`` and
``earthsig reprocess``); discover to infer are the queue tests' fake stages and vectorize
commits a small map through the ingest path (``tests.composites.test_queue.vectorize``), so
the composites fold real rasters.
"""

from __future__ import annotations

import json
from pathlib import Path

import rasterio
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.storage import LocalStore, layout
from tests.queue import fake_stages
from tests.queue.conftest import (
    embedded_env,
    product,
    repository_with_two_versions,
    write_products,
)

PID = "S2G_31TCJ_20260301_0_L2A"


def test_reprocess_builds_the_new_versions_composites(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    write_products(store, [product(PID, date="2026-03-01", n_shards=1)])
    handlers = fake_stages.HANDLERS | {
        "vectorize": "tests.composites.test_queue:vectorize",
        "composite": "earthsignature.composites.stage:handle",
    }
    env = embedded_env(store.root, EARTHSIG_STAGE_HANDLERS=json.dumps(handlers))
    env["EARTHSIG_MODEL_REPOSITORY"] = str(repository_with_two_versions(tmp_path / "models"))
    runner = CliRunner()
    first = runner.invoke(
        cli,
        ["run", "--date", "2026-03-01", "--no-progress", "--workers", "1"],
        env=env | {"EARTHSIG_COMPOSITES": "false"},
    )
    assert first.exit_code == 0, first.output
    assert not list(store.list_keys(layout.COMPOSITES + "/"))
    args = ["--model", "clc-baseline", "--version", "2"]
    result = runner.invoke(
        cli,
        ["reprocess", *args, "--from", "2026-03-01", "--to", "2026-03-01", "--no-progress"],
        env=env | {"EARTHSIG_COMPOSITES": "true"},
    )
    assert result.exit_code == 0, result.output
    periods = {"2026-03", "2026-MAM", "R12-2026-03"}
    for period in periods:
        prefix = layout.composite_prefix("clc-baseline", 2, period, "31TCJ")
        item = json.loads(store.get_bytes(prefix + "item.json"))
        assert item["properties"]["earthsig:products"] == [PID]
        with rasterio.open(store.gdal_path(prefix + "composite.tif")) as ds:
            composite = ds.read(1)
        assert (composite[:, :32] == 311).all() and (composite[:, 32:] == 211).all()
    assert not list(store.list_keys(f"{layout.COMPOSITES}/model=clc-baseline/version=1/"))

    rebuilt = runner.invoke(cli, ["composites", "rebuild", *args, "--no-vectors"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert {line.split(":")[0] for line in rebuilt.output.splitlines()} == {
        f"31TCJ {p}" for p in periods
    }
    prefix = layout.composite_prefix("clc-baseline", 2, "R12-2026-03", "31TCJ")
    assert "polygons" not in json.loads(store.get_bytes(prefix + "item.json"))["assets"]
    bad = runner.invoke(cli, ["composites", "rebuild", *args, "--period", "2026-13"], env=env)
    assert bad.exit_code == 2 and "--period" in bad.output and "Traceback" not in bad.output
    none = runner.invoke(cli, ["composites", "rebuild", "--model", "x", "--version", "3"], env=env)
    assert none.exit_code == 1 and "no committed product of x v3" in none.output
