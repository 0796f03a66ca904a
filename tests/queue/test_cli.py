"""``earthsig run`` (embedded Redis, local store, spawned workers) and ``earthsig status``."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.queue.enqueue import discover_payload, enqueue_discover
from earthsignature.storage import LocalStore, catalog
from tests.queue import fake_stages
from tests.queue.conftest import ROOT, Pipeline, product, write_products


def _embedded_env(store: Path) -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EARTHSIG_")}
    env.update(
        {
            "REDIS_URL": None,
            "TRITON_URL": None,
            "EARTHSIG_STORE": str(store),
            "EARTHSIG_STAGE_HANDLERS": json.dumps(fake_stages.HANDLERS),
            "EARTHSIG_RETRY_BACKOFF_SCALE": "0",
            # fake stages: the model only names the outputs; the suite's fast model
            "EARTHSIG_MODEL_NAME": "clc-baseline",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


@pytest.mark.parametrize(
    ("products", "exit_code", "committed"),
    [
        ([product("S2A_ONE", n_shards=2), product("S2B_TWO", n_shards=1)], 0, 2),
        ([product("S2A_ONE"), product("S2A_BROKEN", bad_at="split")], 1, 1),
    ],
    ids=["all-commit", "one-fails"],
)
def test_run_embedded_end_to_end(
    tmp_path: Path, products: list[dict], exit_code: int, committed: int
) -> None:
    store = LocalStore(tmp_path / "store")
    write_products(store, products)
    result = CliRunner().invoke(
        cli,
        ["run", "--date", "2026-03-01", "--workers", "2", "--no-progress", "--timeout", "90"],
        env=_embedded_env(store.root),
    )
    assert result.exit_code == exit_code, result.output
    assert f"{committed} committed" in result.output
    assert len(list(catalog.iter_entries(store))) == committed
    if exit_code:
        assert "failed    S2A_BROKEN at split: BadInput: band B04 unreadable" in result.output


def test_status_shows_products_queues_and_workers(pipeline: Pipeline) -> None:
    write_products(pipeline.store, [product("S2A_SHOWN", n_shards=2, transient={"fetch": 1})])
    settings = pipeline.settings
    pipeline.start_workers(1)
    payload = discover_payload(
        start=dt.date(2026, 3, 1),
        end=dt.date(2026, 3, 1),
        run="r1",
        model=settings.model_name,
        version=settings.model_version,
    )
    enqueue_discover(pipeline.conn, settings, payload)
    pipeline.wait(
        lambda: catalog.is_committed(
            pipeline.store, settings.model_name, settings.model_version, "2026-03-01", "S2A_SHOWN"
        ),
        what="commit",
    )
    result = CliRunner().invoke(cli, ["status"], env={"REDIS_URL": pipeline.url})
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("S2A_SHOWN"))
    assert line.split()[1:5] == ["vectorize", "committed", "2/2", "1"]
    assert "! fetch: ConnectionError: simulated outage in fetch, attempt 1" in result.output
    assert any(ln.split()[:2] == ["infer", "0"] for ln in result.output.splitlines())
    assert "1 workers" in result.output
    as_json = json.loads(
        CliRunner().invoke(cli, ["status", "--json"], env={"REDIS_URL": pipeline.url}).output
    )
    assert as_json["products"][0]["state"] == "committed"
    assert {q["name"] for q in as_json["queues"]} >= {"fetch", "infer", "vectorize"}
