"""Stages chained on RQ by real worker processes: fan-out, fan-in, retries, outcomes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from earthsignature.queue.enqueue import discover_payload, enqueue_discover
from earthsignature.storage import catalog, layout
from earthsignature.storage.records import read_record
from earthsignature.testing.stac_server import StacServer
from tests.queue.conftest import DAY, Pipeline, product, start_day, terminal, write_products
from tests.queue.fake_stages import HANDLERS


def test_products_flow_through_every_stage_once(pipeline: Pipeline) -> None:
    write_products(
        pipeline.store,
        [
            product("S2A_A", n_shards=3),
            product("S2B_B", n_shards=1, transient={"cloud": 2, "infer": 1}),
            product("S2A_C", n_shards=4),
            product("S2A_SKIP", skip_at="cloud"),
            product("S2A_BAD", bad_at="fetch"),
            {**product("S2A_CLOUDY"), "scene_cloud": 95},
            product("S2A_OTHERDAY", date="2026-03-02"),
        ],
    )
    pipeline.start_workers(3)
    start_day(pipeline)
    states = pipeline.wait(terminal(pipeline, "r1", 6), what="all products terminal")

    assert {k: v.state for k, v in states.items()} == {
        "S2A_A": "committed",
        "S2B_B": "committed",
        "S2A_C": "committed",
        "S2A_SKIP": "skipped",
        "S2A_BAD": "failed",
        "S2A_CLOUDY": "skipped",
    }
    model, version = pipeline.settings.model_name, pipeline.settings.model_version
    for pid, shards in (("S2A_A", 3), ("S2B_B", 1), ("S2A_C", 4)):
        assert catalog.is_committed(pipeline.store, model, version, DAY, pid)
        assert pipeline.count(f"test:runs:vectorize:{pid}:v{version}") == 1
        assert pipeline.count(f"test:done:split:{pid}:v{version}") == 1
        assert all(
            pipeline.count(f"test:done:infer:{pid}:v{version}:{i}") == 1 for i in range(shards)
        )
        assert states[pid].shards == shards and states[pid].shards_done == shards
    # the transient failures were retried, counted, and their reasons kept
    flaky = states["S2B_B"]
    assert flaky.retries == 3
    assert [f["stage"] for f in flaky.failures] == ["cloud", "cloud", "infer"]
    assert "simulated outage" in flaky.failures[0]["reason"]
    skipped = read_record(pipeline.store, model, version, DAY, "S2A_SKIP")
    assert skipped and (skipped.status, skipped.stage, skipped.reason) == (
        "skipped",
        "cloud",
        "too cloudy",
    )
    assert skipped.details == {"cloud_fraction": 97.5}
    bad = read_record(pipeline.store, model, version, DAY, "S2A_BAD")
    assert bad and (bad.status, bad.stage, bad.reason) == ("failed", "fetch", "band B04 unreadable")
    assert pipeline.count(f"test:runs:fetch:S2A_BAD:v{version}") == 1  # bad input: no retry
    cloudy = read_record(pipeline.store, model, version, DAY, "S2A_CLOUDY")
    assert cloudy and cloudy.stage == "discover" and "95%" in cloudy.reason
    assert cloudy.details == {"cloud_cover": 95.0, "threshold": 90.0}
    assert not pipeline.store.exists(layout.raw_key(DAY, "31TCJ", "S2A_OTHERDAY", "B04"))


def test_exhausted_retries_record_failure_without_blocking_others(pipeline: Pipeline) -> None:
    write_products(
        pipeline.store,
        [
            product("S2A_DOOMED", transient={"split": 99}),
            product("S2A_FINE", n_shards=2),
        ],
    )
    pipeline.start_workers(2)
    start_day(pipeline)
    states = pipeline.wait(terminal(pipeline, "r1", 2), what="both terminal")
    version = pipeline.settings.model_version
    assert states["S2A_FINE"].state == "committed"
    doomed = states["S2A_DOOMED"]
    assert doomed.state == "failed" and doomed.stage == "split"
    assert "simulated outage in split" in (doomed.reason or "")
    tries = pipeline.count(f"test:runs:split:S2A_DOOMED:v{version}")
    assert tries == 1 + 3  # first attempt + the split stage's 3 retries
    record = read_record(pipeline.store, "clc-baseline", version, DAY, "S2A_DOOMED")
    assert record and record.status == "failed" and "simulated outage" in record.reason


def test_real_discover_skip_keeps_its_figures(pipeline: Pipeline, shared_data: Path) -> None:
    """The real discover on a worker: the skipped record keeps the cloud cover and threshold."""
    folder = shared_data / "s2" / "S2A_29RKH_20200219_L2A"
    item = json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text())
    item["properties"]["eo:cloud_cover"] = 95.0
    handlers = {k: v for k, v in HANDLERS.items() if k != "discover"}
    with StacServer([item]) as server:
        pipeline.env.update(
            EARTHSIG_STAGE_HANDLERS=json.dumps(handlers),
            EARTHSIG_STAC_API_URL=server.url,
            EARTHSIG_AOI_WKT="POLYGON ((-13 23, -10 23, -10 26, -13 26, -13 23))",
            EARTHSIG_CLOUD_THRESHOLD="60",
        )
        pipeline.start_workers(1, ["discover"])
        day = dt.date(2020, 2, 19)
        settings = pipeline.settings
        payload = discover_payload(
            start=day, end=day, run="r1", model=settings.model_name, version=settings.model_version
        )
        assert enqueue_discover(pipeline.conn, settings, payload) is not None
        states = pipeline.wait(terminal(pipeline, "r1", 1), what="the cloudy product skipped")
    pid = item["id"]
    assert states[pid].state == "skipped"
    record = read_record(pipeline.store, settings.model_name, settings.model_version, day, pid)
    assert record and (record.status, record.stage) == ("skipped", "discover")
    assert record.reason == "scene cloud cover 95.0 % is over 60.0 %"
    assert record.details == {"cloud_cover": 95.0, "threshold": 60.0}
