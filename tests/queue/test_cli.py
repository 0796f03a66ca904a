"""``earthsig run`` (embedded Redis, local store, spawned workers) and ``earthsig status``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.queue.enqueue import discover_payload, enqueue_discover
from earthsignature.storage import LocalStore, catalog
from tests.queue.conftest import Pipeline, embedded_env, product, write_products


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
        env=embedded_env(store.root),
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


def test_run_area_reaches_the_cloud_stage(tmp_path: Path) -> None:
    """--aoi travels with each product's message: cloud sees the run's area, not the setting."""
    area = "POLYGON ((-13 23, -10 23, -10 26, -13 26, -13 23))"
    store = LocalStore(tmp_path / "store")
    write_products(store, [product("S2A_SAHARA", aoi=area)])
    result = CliRunner().invoke(
        cli,
        ["run", "--date", "2026-03-01", "--aoi", area, "--no-progress", "--timeout", "60"],
        env=embedded_env(store.root),
    )
    assert result.exit_code == 0, result.output
    assert "1 committed" in result.output


def test_progress_line_shows_stage_retries_and_last_error() -> None:
    from earthsignature.queue.run import progress_line
    from earthsignature.queue.status import ProductStatus

    line = progress_line(
        ProductStatus(
            product_id="S2A_RETRYING", date="2026-03-01", tile="31TCJ", model="m", version=1,
            run="r", stage="fetch", state="retrying", attempts=3, retries=2, shards=None,
            shards_done=0, failures=[{"stage": "fetch", "reason": "ConnectionError: reset"}],
        )
    )  # fmt: skip
    assert "fetch retrying" in line
    assert "retry 2" in line
    assert line.endswith("| ConnectionError: reset")
