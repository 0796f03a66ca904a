"""Putting work on the stage queues, each piece of work at most once.

Job ids are deterministic per (stage, model, version, product, run, shard) and jobs are
enqueued with RQ's atomic ``unique=True`` (one Lua script checks the job hash, saves it and
pushes the id), so a retried predecessor, a second trigger or a racing shard re-enqueueing
the same work finds the job already there and adds nothing. Finished jobs are kept for
:data:`KEEP_FINISHED` seconds, which is how long this deduplication holds.

A run is only enqueued for a model version the model repository has (:func:`require_model`):
a typo'd or not yet registered version is a clear error at once, not a day of failed jobs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import redis
from rq.callbacks import Callback
from rq.exceptions import DuplicateJobError
from rq.job import Job

from earthsignature.functions.messages import ProductMessage
from earthsignature.models.repository import repository_for
from earthsignature.queue import status
from earthsignature.queue.rq_setup import make_queue
from earthsignature.queue.stages import get_stage
from earthsignature.settings import Settings

#: Seconds a finished job (and so its id's deduplication) is kept.
KEEP_FINISHED = 7 * 24 * 3600
#: Seconds a failed job is kept for inspection (``earthsig status``, rq's failed registry).
KEEP_FAILED = 30 * 24 * 3600

RUN_STAGE = "earthsignature.queue.jobs.run_stage"
RUN_DISCOVER = "earthsignature.queue.jobs.run_discover"
ON_FAILURE = "earthsignature.queue.jobs.on_job_failure"


def job_id(stage: str, *parts: object) -> str:
    """``<stage>-<digest>``: the same work always gets the same id (RQ ids are [A-Za-z0-9_-])."""
    digest = hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return f"{stage}-{digest}"


def product_job_id(stage: str, msg: ProductMessage) -> str:
    shard = msg.shard if get_stage(stage).fans_in else None
    return job_id(stage, msg.model, msg.version, msg.product_id, msg.run, shard)


def _enqueue(
    conn: redis.Redis,
    settings: Settings,
    stage: str,
    func: str,
    payload: dict[str, Any],
    jid: str,
    description: str,
) -> Job | None:
    spec = get_stage(stage)
    queue = make_queue(spec.queue, conn)
    try:
        return queue.enqueue_call(
            func,
            args=(stage, payload),
            job_id=jid,
            timeout=spec.timeout,
            result_ttl=KEEP_FINISHED,
            failure_ttl=KEEP_FAILED,
            retry=spec.retry(settings.retry_backoff_scale),
            on_failure=Callback(ON_FAILURE),
            description=description,
            unique=True,
        )
    except DuplicateJobError:
        return None


def enqueue_stage(
    conn: redis.Redis, settings: Settings, stage: str, msg: ProductMessage
) -> Job | None:
    """Enqueue ``stage`` for ``msg``; None when that exact job already exists."""
    shard = (
        f" shard {msg.shard + 1}/{msg.n_shards}"
        if get_stage(stage).fans_in and msg.shard is not None
        else ""
    )
    job = _enqueue(
        conn,
        settings,
        stage,
        RUN_STAGE,
        msg.to_json(),
        product_job_id(stage, msg),
        f"{stage} {msg.product_id}{shard} ({msg.model} v{msg.version}, run {msg.run})",
    )
    return job


def start_product(
    conn: redis.Redis, settings: Settings, msg: ProductMessage, stage: str = "fetch"
) -> Job | None:
    """Enter a product into the pipeline at ``stage`` (fetch unless its raw bands exist)."""
    job = enqueue_stage(conn, settings, stage, msg)
    if job is not None:
        status.product_queued(conn, msg, stage)
    return job


def discover_payload(
    *,
    start: dt.date,
    end: dt.date,
    run: str,
    model: str,
    version: int,
    aoi_wkt: str | None = None,
    max_cloud: float | None = None,
) -> dict[str, Any]:
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "run": run,
        "model": model,
        "version": int(version),
        "aoi_wkt": aoi_wkt,
        "max_cloud": max_cloud,
    }


def require_model(settings: Settings, model: str, version: int) -> None:
    """Raise ModelNotFound (listing the versions there are) unless the repository that
    ``settings`` name has ``model`` version ``version``."""
    repository_for(settings.model_repository or None).spec(model, int(version))


def enqueue_discover(conn: redis.Redis, settings: Settings, payload: dict[str, Any]) -> Job | None:
    """Enqueue discover for a window; None when the same window/run/model is already queued.

    Raises ModelNotFound for a model version the repository lacks (nothing is enqueued).
    """
    require_model(settings, payload["model"], payload["version"])
    jid = job_id(
        "discover",
        payload["model"],
        payload["version"],
        payload["start"],
        payload["end"],
        payload["run"],
        payload.get("aoi_wkt"),
    )
    return _enqueue(
        conn,
        settings,
        "discover",
        RUN_DISCOVER,
        payload,
        jid,
        f"discover {payload['start']}..{payload['end']} ({payload['model']} v{payload['version']},"
        f" run {payload['run']})",
    )
