"""A real worker process exposes per-stage durations, failures, retries and queue depths."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from earthsignature.queue import EmbeddedRedis
from earthsignature.queue.stages import AFTER_COMMIT_STAGES, QUEUES
from earthsignature.storage import LocalStore
from earthsignature.testing.ports import free_port
from tests.infra.conftest import Samples, scrape, value
from tests.queue.conftest import (
    Pipeline,
    make_pipeline,
    product,
    start_day,
    terminal,
    write_products,
)


@pytest.fixture
def observed(
    redis_conn: redis.Redis, redis_server: EmbeddedRedis, local_store: LocalStore, tmp_path: Path
) -> Iterator[tuple[Pipeline, int]]:
    port = free_port()
    yield from (
        (pipe, port)
        for pipe in make_pipeline(
            redis_conn,
            redis_server,
            local_store,
            tmp_path,
            EARTHSIG_METRICS_PORT=str(port),
            EARTHSIG_METRICS_HOST="127.0.0.1",
            EARTHSIG_LOG_FORMAT="json",
        )
    )


def _scrape_when_up(port: int, timeout: float = 20.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scrape(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_worker_metrics_after_a_run(observed: tuple[Pipeline, int]) -> None:
    pipeline, port = observed
    write_products(
        pipeline.store,
        [
            product("S2A_OK", n_shards=2),
            product("S2B_FLAKY", n_shards=1, transient={"cloud": 2}),
            product("S2A_BAD", bad_at="fetch"),
            product("S2A_SKIP", skip_at="cloud"),
        ],
    )
    pipeline.start_workers(1)
    start_day(pipeline)
    pipeline.wait(terminal(pipeline, "r1", 4), what="all products terminal")
    # a product turns terminal inside its last job, just before the job's timer stops; the
    # after-commit jobs (composites) of the two committed products follow it on the queue
    samples = pipeline.wait(
        lambda: (
            (s := _scrape_when_up(port))
            and all(
                value(s, "earthsig_stage_duration_seconds_count", stage=stage, outcome="ok") == 2
                for stage in ("vectorize", *AFTER_COMMIT_STAGES)
            )
            and s
        ),
        timeout=20,
        what="the last jobs' metrics",
    )

    def count(stage: str, outcome: str) -> float:
        return value(samples, "earthsig_stage_duration_seconds_count", stage=stage, outcome=outcome)

    assert count("discover", "ok") == 1
    assert count("fetch", "ok") == 3 and count("fetch", "failed") == 1
    assert count("cloud", "error") == 2  # the flaky product's two transient failures
    assert count("cloud", "ok") == 2 and count("cloud", "skipped") == 1
    assert count("infer", "ok") == 3  # one job per shard
    assert count("vectorize", "ok") == 2
    for stage in ("fetch", "cloud", "infer", "vectorize"):
        total = value(samples, "earthsig_stage_duration_seconds_sum", stage=stage, outcome="ok")
        assert 0 < total < 60
    failures = "earthsig_stage_failures_total"
    assert value(samples, failures, stage="cloud", kind="transient") == 2
    assert value(samples, failures, stage="fetch", kind="bad_input") == 1
    assert value(samples, "earthsig_stage_retries_total", stage="cloud") == 2
    assert value(samples, "earthsig_stage_retries_total", stage="fetch") == 0
    for queue in QUEUES:  # everything is done: every queue is drained
        assert ("earthsig_queue_depth", frozenset({("queue", queue)})) in samples
        assert value(samples, "earthsig_queue_depth", queue=queue) == 0


def test_worker_logs_are_json_with_product_and_stage(observed: tuple[Pipeline, int]) -> None:
    pipeline, _port = observed
    write_products(pipeline.store, [product("S2B_FLAKY", n_shards=1, transient={"split": 1})])
    pipeline.start_workers(1)
    start_day(pipeline)
    pipeline.wait(terminal(pipeline, "r1", 1), what="product terminal")
    lines = [
        line
        for path in sorted(pipeline.log_dir.glob("*.log"))
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]
    records = [json.loads(line) for line in lines]
    tagged = [r for r in records if r.get("product_id") == "S2B_FLAKY"]
    assert tagged, f"no JSON log line names the product: {lines[:5]}"
    assert {r["stage"] for r in tagged} >= {"split"}
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
