"""A worker SIGKILLed mid-job (machine loss): another worker retries the job, nothing is lost."""

from __future__ import annotations

import os
import signal

import pytest
from rq.callbacks import Callback
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from earthsignature.functions.messages import ProductMessage
from earthsignature.queue import status
from earthsignature.queue.enqueue import ON_FAILURE, RUN_STAGE, discover_payload, enqueue_discover
from earthsignature.queue.rq_setup import make_queue
from earthsignature.queue.stages import get_stage
from earthsignature.storage import catalog
from earthsignature.storage.records import OutcomeRecord, read_record, write_record
from tests.queue.conftest import DAY, Pipeline, product, start_day, terminal, write_products


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


@pytest.mark.parametrize("stage", ["fetch", "infer", "vectorize"])
def test_a_job_delivered_again_after_the_commit_leaves_the_product_committed(
    pipeline: Pipeline, stage: str
) -> None:
    """At-least-once delivery: a worker lost after the commit, or a Redis restart that lost a
    job's end, runs a stage job again. The commit removed the product's ``work/`` inputs, so
    the repeat must neither fail the product nor redo it; and as the committing worker may
    be the one lost, it finishes the commit's bookkeeping (a stale failure record goes)."""
    write_products(pipeline.store, [product("S2A_AGAIN", n_shards=2)])
    pipeline.start_workers(2)
    start_day(pipeline)
    pipeline.wait(terminal(pipeline, "r1", 1), what="the product committed")
    settings = pipeline.settings
    model, version = settings.model_name, settings.model_version
    assert catalog.is_committed(pipeline.store, model, version, DAY, "S2A_AGAIN")
    queue = make_queue(get_stage(stage).queue, pipeline.conn)
    done = [
        Job.fetch(i, pipeline.conn, serializer=JSONSerializer)
        for i in queue.finished_job_registry.get_job_ids()
    ]
    [first] = [j for j in done if j.args[0] == stage and j.args[1].get("shard") in (None, 0)]
    work = ProductMessage.model_validate(first.args[1]).work_prefix
    pipeline.store.delete_prefix(work)  # as the real vectorize does after the commit
    runs = f"test:runs:{stage}:S2A_AGAIN:v{version}" + (":0" if stage == "infer" else "")
    before = pipeline.count(runs)
    stale = OutcomeRecord("S2A_AGAIN", DAY.isoformat(), model, version, "failed", stage, "lost")
    write_record(pipeline.store, stale)  # as if the commit's worker died before clearing it

    again = queue.enqueue_call(
        RUN_STAGE,
        args=first.args,
        retry=get_stage(stage).retry(0),
        on_failure=Callback(ON_FAILURE),
    )
    pipeline.wait(
        lambda: again.get_status(refresh=True) in (JobStatus.FINISHED, JobStatus.FAILED),
        what="the repeated job",
    )
    assert again.return_value() == {"outcome": "duplicate"}
    assert pipeline.count(runs) == before  # the stage did not run again
    [state] = status.products(pipeline.conn, "r1")
    assert state.state == "committed"
    assert read_record(pipeline.store, model, version, DAY, "S2A_AGAIN") is None
    assert not [i.key for i in pipeline.store.list_keys(work)]
