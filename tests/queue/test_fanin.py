"""Fan-in and deduplicated enqueueing, on a real Redis (no workers needed)."""

from __future__ import annotations

import pytest
import redis

from earthsignature.functions.messages import ProductMessage
from earthsignature.queue import fanin
from earthsignature.queue.enqueue import enqueue_stage, product_job_id
from earthsignature.queue.errors import UnknownStage
from earthsignature.queue.rq_setup import make_queue
from earthsignature.queue.stages import CPU_QUEUES, parse_queues
from earthsignature.settings import load_settings


def _msg(shard: int | None = None, n: int | None = 3, run: str = "r1") -> ProductMessage:
    return ProductMessage(
        product_id="S2A_FANIN", date="2026-03-01", tile="31TCJ", model="clc-baseline",
        version=1, run=run, shard=shard, n_shards=n,
    )  # fmt: skip


@pytest.mark.parametrize(
    "order", [[0, 1, 2], [2, 0, 0, 1], [1, 1, 2, 2, 0, 0]], ids=["in-order", "retry", "all-twice"]
)
def test_set_completes_once_all_distinct_shards_are_done(
    redis_conn: redis.Redis, order: list[int]
) -> None:
    counts = [fanin.mark_shard_done(redis_conn, _msg(s)) for s in order]
    done = [fanin.all_done(redis_conn, _msg(s), c) for s, c in zip(order, counts, strict=True)]
    first = done.index(True)
    assert set(order[: first + 1]) == {0, 1, 2} and not any(done[:first])
    assert counts[-1] == 3


def test_runs_and_versions_fan_in_separately(redis_conn: redis.Redis) -> None:
    fanin.mark_shard_done(redis_conn, _msg(0, run="r1"))
    assert fanin.mark_shard_done(redis_conn, _msg(0, run="r2")) == 1


@pytest.mark.parametrize("shard", [-1, 3, None])
def test_shard_outside_the_product_is_refused(redis_conn: redis.Redis, shard: int | None) -> None:
    with pytest.raises(ValueError, match="shard"):
        fanin.mark_shard_done(redis_conn, _msg(shard))


def test_the_same_work_is_enqueued_once(redis_conn: redis.Redis) -> None:
    settings = load_settings()
    vectorize = fanin.fan_in_message(_msg(2))
    assert enqueue_stage(redis_conn, settings, "vectorize", vectorize) is not None
    assert enqueue_stage(redis_conn, settings, "vectorize", fanin.fan_in_message(_msg(0))) is None
    assert make_queue("vectorize", redis_conn).count == 1
    # shards are distinct infer jobs; another run is distinct work
    ids = {product_job_id("infer", _msg(s)) for s in range(3)}
    ids.add(product_job_id("infer", _msg(0, run="r2")))
    assert len(ids) == 4


@pytest.mark.parametrize(
    ("text", "queues"),
    [("fetch,infer", ["fetch", "infer"]), ("gpu", ["infer"]), ("cpu", list(CPU_QUEUES)),
     ("all,fetch", ["discover", "fetch", "cloud", "split", "infer", "vectorize"])],
)  # fmt: skip
def test_queue_names(text: str, queues: list[str]) -> None:
    assert parse_queues(text) == queues


def test_unknown_queue_is_a_clear_error() -> None:
    with pytest.raises(UnknownStage, match="unknown stage 'gpus'"):
        parse_queues("fetch,gpus")
