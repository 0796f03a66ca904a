"""Where every product stands, kept in Redis beside the queues (what ``earthsig status`` shows).

One hash per (model, version, product): current stage and state, attempts, retries, shards
done, and the failures seen with their reasons. Runs keep the set of their products, so an
embedded run can wait for exactly its own work. Writes are small and idempotent: a retried
job updates the same fields again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
from redis.typing import EncodableT, FieldT
from rq import Worker
from rq.registry import (
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from earthsignature.functions.messages import ProductMessage
from earthsignature.queue.rq_setup import make_queue
from earthsignature.queue.stages import PRODUCT_STAGES, QUEUES, SHARD_STAGES

PREFIX = "earthsig"
State = Literal["queued", "running", "retrying", "committed", "skipped", "failed"]
TERMINAL: frozenset[str] = frozenset({"committed", "skipped", "failed"})
#: Status keys expire after this long without an update (a week).
STATUS_TTL = 7 * 24 * 3600


def product_key(model: str, version: int, product_id: str) -> str:
    return f"{PREFIX}:product:{model}:{version}:{product_id}"


def run_key(run: str) -> str:
    return f"{PREFIX}:run:{run}"


def _index_key() -> str:
    return f"{PREFIX}:products"


@dataclass(frozen=True)
class ProductStatus:
    """A product's progress through the pipeline for one model version."""

    product_id: str
    date: str
    tile: str
    model: str
    version: int
    run: str
    stage: str
    state: str
    attempts: int
    retries: int
    shards: int | None
    shards_done: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    updated: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def stages_done(self) -> float:
        """Completed stages (infer counts its shards fractionally), for progress bars."""
        if self.state == "committed":
            return float(len(PRODUCT_STAGES))
        index = PRODUCT_STAGES.index(self.stage) if self.stage in PRODUCT_STAGES else 0
        done = float(index)
        if self.stage in SHARD_STAGES and self.shards:
            done += self.shards_done / self.shards
        return done

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes] | dict[str, str]) -> ProductStatus:
        h = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            product_id=h["product_id"],
            date=h.get("date", ""),
            tile=h.get("tile", ""),
            model=h.get("model", ""),
            version=int(h.get("version", 0)),
            run=h.get("run", ""),
            stage=h.get("stage", ""),
            state=h.get("state", "queued"),
            attempts=int(h.get("attempts", 0)),
            retries=int(h.get("retries", 0)),
            shards=int(h["shards"]) if h.get("shards") else None,
            shards_done=int(h.get("shards_done", 0)),
            failures=json.loads(h.get("failures", "[]")),
            reason=h.get("reason") or None,
            updated=float(h.get("updated", 0)),
        )


def _identity(msg: ProductMessage) -> dict[str, str]:
    return {
        "product_id": msg.product_id,
        "date": msg.date,
        "tile": msg.tile,
        "model": msg.model,
        "version": str(msg.version),
        "run": msg.run,
    }


def _text(value: bytes | str) -> str:
    """A Redis answer as text (these connections answer bytes; redis-py types allow str)."""
    return value.decode() if isinstance(value, bytes) else value


def _write(conn: redis.Redis, msg: ProductMessage, fields: dict[str, Any]) -> None:
    key = product_key(msg.model, msg.version, msg.product_id)
    now = time.time()
    text = {**_identity(msg), **{k: str(v) for k, v in fields.items()}, "updated": str(now)}
    mapping: dict[FieldT, EncodableT] = dict(text.items())
    with conn.pipeline() as pipe:
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, STATUS_TTL)
        pipe.zadd(_index_key(), {key: now})
        pipe.sadd(run_key(msg.run), key)
        pipe.expire(run_key(msg.run), STATUS_TTL)
        pipe.execute()


def product_queued(conn: redis.Redis, msg: ProductMessage, stage: str) -> None:
    """A product entered the pipeline (or a new run of it started)."""
    key = product_key(msg.model, msg.version, msg.product_id)
    current = conn.hget(key, "run")
    if current is not None and _text(current) != msg.run:
        conn.delete(key)  # a new run (reprocess, re-trigger) starts from a clean slate
    _write(conn, msg, {"stage": stage, "state": "queued", "reason": ""})


def stage_started(conn: redis.Redis, msg: ProductMessage, stage: str, *, retry: bool) -> None:
    key = product_key(msg.model, msg.version, msg.product_id)
    state = conn.hget(key, "state")
    if state is not None and _text(state) in TERMINAL:
        return  # a late shard retry never reopens a finished product
    with conn.pipeline() as pipe:
        pipe.hincrby(key, "attempts", 1)
        if retry:
            pipe.hincrby(key, "retries", 1)
        pipe.execute()
    _write(conn, msg, {"stage": stage, "state": "running"})


def shards_planned(conn: redis.Redis, msg: ProductMessage, n_shards: int) -> None:
    _write(conn, msg, {"shards": n_shards, "shards_done": 0})


_RAISE_TO = """
local current = tonumber(redis.call('HGET', KEYS[1], 'shards_done') or '0') or 0
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'shards_done', ARGV[1]) end
return 1
"""


def shards_progress(conn: redis.Redis, msg: ProductMessage, done: int) -> None:
    """Shards done so far (only ever raised: shard jobs finish in any order)."""
    conn.eval(_RAISE_TO, 1, product_key(msg.model, msg.version, msg.product_id), str(done))  # type: ignore[arg-type]


def stage_finished(conn: redis.Redis, msg: ProductMessage, stage: str, next_stage: str) -> None:
    """A stage succeeded and the product waits for ``next_stage``."""
    key = product_key(msg.model, msg.version, msg.product_id)
    state = conn.hget(key, "state")
    if state is not None and _text(state) in TERMINAL:
        return
    _write(conn, msg, {"stage": next_stage, "state": "queued"})


def failure(
    conn: redis.Redis, msg: ProductMessage, stage: str, reason: str, *, final: bool
) -> None:
    """A failed attempt; ``final`` marks the product failed, else it waits for a retry."""
    key = product_key(msg.model, msg.version, msg.product_id)
    raw = conn.hget(key, "failures")
    failures = json.loads(raw) if raw else []
    failures.append({"stage": stage, "reason": reason[:500], "at": round(time.time(), 3)})
    fields: dict[str, Any] = {"stage": stage, "failures": json.dumps(failures[-20:])}
    fields["state"] = "failed" if final else "retrying"
    if final:
        fields["reason"] = reason[:500]
    _write(conn, msg, fields)


def finished(
    conn: redis.Redis, msg: ProductMessage, stage: str, state: State, reason: str = ""
) -> None:
    """A terminal outcome: committed, skipped or failed."""
    _write(conn, msg, {"stage": stage, "state": state, "reason": reason[:500]})


def mark_run_discovered(
    conn: redis.Redis,
    run: str,
    count: int,
    error: str = "",
    rejected: int = 0,
    committed: int = 0,
) -> None:
    """Discover for ``run`` is over: every product of the run is now known.

    ``rejected`` counts STAC items refused before entering the run (unsafe ids, CRS
    contradictions); their records are under ``records/`` with a stand-in key.
    ``committed`` counts products found but already committed for the model version.
    """
    key = f"{run_key(run)}:discover"
    mapping: dict[FieldT, EncodableT] = {
        "done": "1",
        "count": str(count),
        "error": error[:500],
        "rejected": str(rejected),
        "committed": str(committed),
    }
    conn.hset(key, mapping=mapping)
    conn.expire(key, STATUS_TTL)


def run_discovered(conn: redis.Redis, run: str) -> dict[str, str] | None:
    raw = conn.hgetall(f"{run_key(run)}:discover")
    return {_text(k): _text(v) for k, v in raw.items()} if raw else None


def products(conn: redis.Redis, run: str | None = None, limit: int = 1000) -> list[ProductStatus]:
    """Products of one run, or the most recently updated ones, oldest update first."""
    keys: Iterable[Any] = (  # Redis keys, as bytes
        sorted(conn.smembers(run_key(run))) if run else conn.zrange(_index_key(), -limit, -1)
    )
    out = []
    with conn.pipeline() as pipe:
        keys = list(keys)
        for key in keys:
            pipe.hgetall(key)
        for raw in pipe.execute():
            if raw:
                out.append(ProductStatus.from_hash(raw))
    return sorted(out, key=lambda p: (p.date, p.product_id))


@dataclass(frozen=True)
class QueueDepth:
    name: str
    queued: int
    started: int
    scheduled: int
    failed: int
    finished: int
    claimed: int = 0
    """Taken off the queue by a worker that has not started it yet (or died meanwhile)."""


def queue_depths(conn: redis.Redis, names: Iterable[str] = QUEUES) -> list[QueueDepth]:
    """Jobs waiting, running, scheduled for retry, failed and finished, per queue."""
    out = []
    for name in names:
        queue = make_queue(name, conn)
        out.append(
            QueueDepth(
                name=name,
                queued=queue.count,
                started=StartedJobRegistry(queue=queue).count,
                scheduled=ScheduledJobRegistry(queue=queue).count,
                failed=FailedJobRegistry(queue=queue).count,
                finished=FinishedJobRegistry(queue=queue).count,
                claimed=int(conn.llen(queue.intermediate_queue_key)),  # type: ignore[arg-type]
            )
        )
    return out


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    hostname: str
    pid: int | None
    queues: list[str]
    state: str
    current_job: str | None


def workers(conn: redis.Redis) -> list[WorkerInfo]:
    """Live workers registered in Redis (any host)."""
    out = []
    for worker in Worker.all(connection=conn):
        job_id = worker.get_current_job_id()
        out.append(
            WorkerInfo(
                name=worker.name,
                hostname=str(worker.hostname or ""),
                pid=worker.pid,
                queues=worker.queue_names(),
                state=str(worker.get_state()),
                current_job=job_id,
            )
        )
    return sorted(out, key=lambda w: w.name)
