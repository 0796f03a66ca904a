"""Reprocessing a date range with a second model version keeps both versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.storage import LocalStore, catalog
from tests.queue.conftest import (
    embedded_env,
    product,
    repository_with_two_versions,
    write_products,
)


@pytest.mark.parametrize("source", ["catalog-record", "discover-again"])
def test_reprocess_with_second_version_keeps_both(tmp_path: Path, source: str) -> None:
    store = LocalStore(tmp_path / "store")
    extra = {"no_source": True} if source == "discover-again" else {}
    write_products(
        store,
        [
            product("S2A_R1", date="2026-03-01", n_shards=2, **extra),
            product("S2A_R2", date="2026-03-03", **extra),
            product("S2A_LATER", date="2026-03-09", **extra),
        ],
    )
    env = embedded_env(store.root)
    env["EARTHSIG_MODEL_REPOSITORY"] = str(repository_with_two_versions(tmp_path / "models"))
    runner = CliRunner()
    for day in ("2026-03-01", "2026-03-03", "2026-03-09"):
        done = runner.invoke(
            cli, ["run", "--date", day, "--no-progress", "--workers", "1"], env=env
        )
        assert done.exit_code == 0, done.output
    v1 = {e.product_id: e for e in catalog.iter_entries(store, "clc-baseline", 1)}
    v1_bytes = {pid: store.get_bytes(e.assets["segmentation"]) for pid, e in v1.items()}

    args = [
        "reprocess",
        "--model",
        "clc-baseline",
        "--version",
        "2",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-05",
        "--no-progress",
    ]
    result = runner.invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "2 products to reprocess with clc-baseline v2" in result.output

    v2 = {e.product_id: e for e in catalog.iter_entries(store, "clc-baseline", 2)}
    assert sorted(v2) == ["S2A_R1", "S2A_R2"]  # S2A_LATER is outside the range
    assert all("version=2" in e.assets["segmentation"] for e in v2.values())
    after = {e.product_id: e for e in catalog.iter_entries(store, "clc-baseline", 1)}
    assert sorted(after) == sorted(v1) == ["S2A_LATER", "S2A_R1", "S2A_R2"]
    for pid, entry in after.items():  # the first version is untouched
        assert store.get_bytes(entry.assets["segmentation"]) == v1_bytes[pid]
    assert catalog.model_versions(store) == [("clc-baseline", 1), ("clc-baseline", 2)]

    again = runner.invoke(cli, args, env=env)
    assert again.exit_code == 0, again.output
    assert "0 products to reprocess" in again.output and "2 already done" in again.output
    json.loads(store.get_bytes(v2["S2A_R1"].key))  # a complete record


def test_reprocess_to_an_unknown_version_is_refused_before_any_work(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    args = ["reprocess", "--model", "clc-baseline", "--version", "7"]
    args += ["--from", "2026-03-01", "--to", "2026-03-05", "--no-progress"]
    result = CliRunner().invoke(cli, args, env=embedded_env(store.root))
    assert result.exit_code == 2
    assert "model 'clc-baseline' version 7 not available" in result.output
    assert "available versions: 1" in result.output
    assert list(store.list_keys("")) == []
