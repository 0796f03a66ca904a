"""``earthsig demo``: generated scenes through the real stages, offline, with embedded defaults."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.storage import LocalStore, catalog
from tests.queue.conftest import ROOT


def test_demo_runs_offline_and_says_where_outputs_are(tmp_path: Path) -> None:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EARTHSIG_")}
    env.update(
        {
            "REDIS_URL": None,
            "TRITON_URL": None,
            "PYTHONPATH": str(ROOT),
        }
    )
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli,
        ["demo", "--out", str(out), "--products", "2", "--size", "600", "--no-progress"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "2 products, 2 committed" in result.output
    entries = list(catalog.iter_entries(LocalStore(out / "store")))
    assert len(entries) == 2
    assert {entry.model for entry in entries} == {"dynamicworld-clc"}  # the learned default
    for entry in entries:
        path = out / "store" / entry.assets["polygons"]
        assert path.is_file() and str(path) in result.output
    assert f"EARTHSIG_STORE={(out / 'store').resolve()} earthsig serve" in result.output
