"""A worker SIGKILLed mid-job (machine loss): another worker retries the job, nothing is lost."""

from __future__ import annotations

import datetime as dt
import os
import signal

import pytest

from earthsignature.queue import status
from earthsignature.queue.enqueue import discover_payload, enqueue_discover
from earthsignature.storage import catalog
from tests.queue.conftest import Pipeline, product, write_products

DAY = dt.date(2026, 3, 1)


@pytest.mark.parametrize("stage", ["infer", "vectorize"])
def test_killed_worker_job_is_retried_elsewhere(pipeline: Pipeline, stage: str) -> None:
    write_products(
        pipeline.store,
        [product("S2A_KILLED", n_shards=2, block=stage), product("S2A_OTHER", n_shards=2)],
    )
    pipeline.start_workers(3)
    settings = pipeline.settings
    enqueue_discover(
        pipeline.conn,
        settings,
        discover_payload(
            start=DAY, end=DAY, run="r1", model=settings.model_name, version=settings.model_version
        ),
    )

    pid = int(
        pipeline.wait(
            lambda: pipeline.conn.get(f"test:blocked:{stage}:S2A_KILLED"),
            what=f"{stage} job to start",
        )
    )
    os.killpg(pid, signal.SIGKILL)  # the worker and everything it started, mid-job

    def committed():  # type: ignore[no-untyped-def]
        found = {p.product_id: p for p in status.products(pipeline.conn, "r1")}
        return len(found) == 2 and all(p.terminal for p in found.values()) and found

    found = pipeline.wait(committed, timeout=60, what="both products committed")
    assert {p.state for p in found.values()} == {"committed"}
    killed = found["S2A_KILLED"]
    assert killed.retries == 1
    assert [f["stage"] for f in killed.failures] == [stage]
    assert "worker lost" in killed.failures[0]["reason"]

    v = settings.model_version
    suffix = ":0" if stage == "infer" else ""
    assert pipeline.count(f"test:runs:{stage}:S2A_KILLED:v{v}{suffix}") == 2  # killed + retry
    assert pipeline.count(f"test:done:vectorize:S2A_KILLED:v{v}") == 1
    assert pipeline.count(f"test:runs:vectorize:S2A_KILLED:v{v}") == (
        2 if stage == "vectorize" else 1
    )
    # exactly the expected objects, each complete; one catalog record
    entries = list(catalog.iter_entries(pipeline.store, settings.model_name, v))
    assert sorted(e.product_id for e in entries) == ["S2A_KILLED", "S2A_OTHER"]
    for entry in entries:
        for name in ("segmentation", "polygons", "tiles"):
            body = pipeline.store.get_bytes(entry.assets[name])
            assert body == f"{name} of {entry.product_id}".encode()
    keys = [info.key for info in pipeline.store.list_keys("")]
    assert len(keys) == len(set(keys))
    killed_keys = [k for k in keys if "S2A_KILLED" in k]
    assert len(killed_keys) == 1 + 1 + 3 + 1 + 2 * 2  # raw, mask, 3 outputs, catalog, shards+preds
