"""The RQ job functions: run one stage for one JSON payload, then hand the product on.

Workers import these by dotted path (``earthsignature.queue.jobs.run_stage``). A job:

1. parses its message and notes the attempt in the product's status;
2. calls the stage handler with the process's :class:`~earthsignature.runtime.Runtime`;
3. enqueues the next stage (split fans out one infer job per shard; infer fans in through
   :mod:`earthsignature.queue.fanin`), each job at most once;
4. turns outcomes into ``records/``: ``ProductSkipped`` -> skipped, ``BadInput`` -> failed
   (neither retried); any other exception is re-raised so RQ retries it with the stage's
   backoff, and on the last attempt the product is recorded as failed with the reason.
   A job whose worker died is retried by RQ's registry cleanup; :func:`on_job_failure`
   records it when it has no retries left. A payload that is not a valid message (e.g. an
   ``item`` that is not a whole product reference) is recorded as failed, not retried.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from typing import Any

import redis
from pydantic import ValidationError
from rq import get_current_job
from rq.job import Job

from earthsignature import metrics
from earthsignature.functions.discover import DiscoverResult, Skipped
from earthsignature.functions.errors import BadInput, ProductSkipped
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.stac import quote_id
from earthsignature.logs import log_context
from earthsignature.queue import fanin, status
from earthsignature.queue.enqueue import enqueue_stage, start_product
from earthsignature.queue.preflight import cannot_heal
from earthsignature.queue.reprocess import for_model
from earthsignature.queue.stages import (
    AFTER_COMMIT_STAGES,
    PRODUCT_STAGES,
    Stage,
    get_stage,
    resolve_handler,
)
from earthsignature.runtime import Runtime
from earthsignature.storage import catalog
from earthsignature.storage.records import OutcomeRecord, clear_record, write_record

log = logging.getLogger(__name__)

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def set_runtime(runtime: Runtime | None) -> None:
    """Use ``runtime`` for the jobs of this process (workers set it once at start)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def get_runtime() -> Runtime:
    """The process's runtime, built from the environment's settings on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime.from_settings()
        return _runtime


def _current() -> tuple[Job | None, redis.Redis]:
    job = get_current_job()
    if job is None:
        raise RuntimeError("stage jobs run inside an RQ worker")
    return job, job.connection


def _is_retry(job: Job | None) -> bool:
    """Whether this execution is a retry (RQ counts retries down from Retry.max)."""
    if job is None or job.retries_left is None:
        return False
    return job.retries_left < get_stage(job.args[0]).retry_max if job.args else False


def _last_attempt(job: Job | None) -> bool:
    return job is None or not job.retries_left


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "reason", None) or str(exc) or ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _record(
    rt: Runtime, msg: ProductMessage, stage: str, state: str, reason: str, details: Any = None
) -> None:
    write_record(
        rt.store,
        OutcomeRecord(
            product_id=msg.product_id,
            date=msg.date,
            model=msg.model,
            version=msg.version,
            status=state,  # type: ignore[arg-type]
            stage=stage,
            reason=reason,
            details=json.loads(json.dumps(dict(details or {}), default=str)),
        ),
    )


def _observed(
    run: Any, stage: str, payload: dict[str, Any], product_id: str | None
) -> dict[str, Any]:
    """Run a job inside a log context and a stage timer (metrics), outcome from its summary."""
    job, _conn = _current()
    with log_context(product_id, stage), metrics.stage_run(stage, retry=_is_retry(job)) as timed:
        try:
            result: dict[str, Any] = run(stage, payload)
        except Exception as exc:
            log.warning("%s failed: %s", stage, _reason(exc))
            raise
        outcome = result.get("outcome")  # "committed" (last stage) is a success too
        timed.outcome = outcome if outcome in ("skipped", "failed") else "ok"
        return result


def run_stage(stage: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``stage`` on the message in ``payload``; returns a small JSON summary."""
    return _observed(_run_stage, stage, payload, payload.get("product_id"))


def _invalid_message(
    conn: redis.Redis, rt: Runtime, spec: Stage, payload: dict[str, Any], exc: ValidationError
) -> dict[str, Any]:
    """Record a product whose message does not validate (retrying cannot mend it); after the
    commit, only log it (the product's outcome is its chain's)."""
    stage = spec.name
    fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
    reason = f"invalid message: {', '.join(fields)} ({exc.errors()[0]['msg']})"
    identity = {k: payload.get(k) for k in ("product_id", "date", "tile", "model", "version")}
    try:
        msg = ProductMessage.model_validate({**identity, "run": payload.get("run")})
    except ValidationError:
        msg = None
    if msg is None or spec.after_commit:
        log.error("%s of %s: %s", stage, quote_id(payload.get("product_id")), reason)
        return {"outcome": "failed", "reason": reason}
    log.error("%s of %s: %s", stage, msg.product_id, reason)
    _record(rt, msg, stage, "failed", reason, {"invalid_fields": fields})
    status.failure(conn, msg, stage, reason, final=True)
    return {"outcome": "failed", "reason": reason}


def _run_stage(stage: str, payload: dict[str, Any]) -> dict[str, Any]:
    job, conn = _current()
    rt = get_runtime()
    spec = get_stage(stage)
    try:
        msg = ProductMessage.model_validate(payload)
    except ValidationError as exc:
        return _invalid_message(conn, rt, spec, payload, exc)
    if spec.after_commit:  # other errors are retried by RQ; the product stays committed
        try:
            resolve_handler(stage, rt.settings.stage_handlers)(msg, rt)
        except (ProductSkipped, BadInput) as exc:
            log.warning("%s of %s: %s", stage, msg.product_id, exc.reason)
            return {"outcome": "failed", "reason": exc.reason}
        return {"outcome": "ok"}
    if _already_committed(rt, msg):
        return _repeated_delivery(conn, rt, msg, stage)
    status.stage_started(conn, msg, stage, retry=_is_retry(job))
    try:
        out = resolve_handler(stage, rt.settings.stage_handlers)(msg, rt)
    except Exception as exc:
        if _already_committed(rt, msg):  # committed meanwhile: its cleanup took our inputs
            return _repeated_delivery(conn, rt, msg, stage, _reason(exc))
        return _stage_failed(conn, job, rt, msg, stage, exc)
    return _hand_on(conn, rt, spec, msg, list(out or []))


def _stage_failed(
    conn: redis.Redis,
    job: Job | None,
    rt: Runtime,
    msg: ProductMessage,
    stage: str,
    exc: Exception,
) -> dict[str, Any]:
    """Record a stage's exception as its outcome; re-raises what RQ should retry."""
    if isinstance(exc, ProductSkipped):
        _record(rt, msg, stage, "skipped", exc.reason, exc.details)
        status.finished(conn, msg, stage, "skipped", exc.reason)
        return {"outcome": "skipped", "reason": exc.reason}
    if isinstance(exc, BadInput):
        _record(rt, msg, stage, "failed", exc.reason, exc.details)
        status.failure(conn, msg, stage, _reason(exc), final=True)
        return {"outcome": "failed", "reason": exc.reason}
    permanent = cannot_heal(exc)  # unknown host, permission denied, a 4xx: no retry
    final = permanent is not None or _last_attempt(job)
    reason = f"{_reason(exc)} ({permanent})" if permanent else _reason(exc)
    status.failure(conn, msg, stage, reason, final=final)
    if permanent is not None:
        _record(rt, msg, stage, "failed", reason, {"attempts": "cannot heal"})
        return {"outcome": "failed", "reason": reason}
    if final:
        _record(rt, msg, stage, "failed", reason, {"attempts": "exhausted"})
    raise exc


def _already_committed(rt: Runtime, msg: ProductMessage) -> bool:
    """Whether the product's catalog record exists (False when the store cannot say: the
    stage then runs and meets the store's trouble itself)."""
    try:
        return catalog.is_committed(rt.store, msg.model, msg.version, msg.date, msg.product_id)
    except Exception as exc:
        log.warning("could not check whether %s is committed: %s", msg.product_id, exc)
        return False


def _repeated_delivery(
    conn: redis.Redis, rt: Runtime, msg: ProductMessage, stage: str, error: str = ""
) -> dict[str, Any]:
    """A stage job of a product already committed: RQ delivers at least once, so a worker
    lost after the commit, or a Redis restart that lost the job's end, runs it again. The
    product's outcome stays committed (no failure record, status set back to committed),
    whatever the repeat wrote under ``work/`` goes, and the commit's bookkeeping is done
    (again: it is idempotent)."""
    log.info(
        "%s of %s: already committed for %s v%d, a repeated delivery%s",
        stage,
        msg.product_id,
        msg.model,
        msg.version,
        f" (it failed: {error})" if error else "",
    )
    try:
        rt.store.delete_prefix(msg.work_prefix)
    except Exception as exc:  # the lifecycle rule on work/ is the second guard
        log.warning("could not remove %s: %s", msg.work_prefix, exc)
    # the worker lost may have been the committing one, before it finished the bookkeeping
    return {**_committed(conn, rt, msg, PRODUCT_STAGES[-1]), "outcome": "duplicate"}


def _committed(conn: redis.Redis, rt: Runtime, msg: ProductMessage, stage: str) -> dict[str, Any]:
    """What follows a commit, each step idempotent: an earlier run's failure record cleared,
    the status committed, the after-commit stages enqueued (each job at most once; a
    composite already holding the product does nothing)."""
    clear_record(rt.store, msg.model, msg.version, msg.date, msg.product_id)
    status.finished(conn, msg, stage, "committed")
    after = [
        j.id
        for s in (AFTER_COMMIT_STAGES if rt.settings.composites else ())
        if (j := enqueue_stage(conn, rt.settings, s, msg))
    ]
    return {"outcome": "committed", **({"enqueued": after} if after else {})}


def _hand_on(
    conn: redis.Redis, rt: Runtime, spec: Stage, msg: ProductMessage, out: list[ProductMessage]
) -> dict[str, Any]:
    """Enqueue what follows ``spec`` (as its fan-out/fan-in flags say) and update the status."""
    stage, next_stage = spec.name, spec.next
    if next_stage is None:
        return _committed(conn, rt, msg, stage)
    if spec.fans_in:
        done = fanin.mark_shard_done(conn, msg)
        status.shards_progress(conn, msg, done)
        if not fanin.all_done(conn, msg, done):
            return {"outcome": "ok", "shards_done": done}
        final = fanin.fan_in_message(out[0] if out else msg)
        status.stage_finished(conn, msg, stage, next_stage)
        job = enqueue_stage(conn, rt.settings, next_stage, final)
        return {"outcome": "ok", "shards_done": done, "enqueued": [job.id] if job else []}
    if not out:
        reason = f"{stage} handed on nothing"
        _record(rt, msg, stage, "failed", reason)
        status.failure(conn, msg, stage, reason, final=True)
        return {"outcome": "failed", "reason": reason}
    if spec.fans_out:
        status.shards_planned(conn, msg, len(out))
    status.stage_finished(conn, msg, stage, next_stage)  # before the next job can start
    enqueued = [job.id for m in out if (job := enqueue_stage(conn, rt.settings, next_stage, m))]
    return {"outcome": "ok", "enqueued": enqueued}


def run_discover(stage: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Search one window and enter each new product into the pipeline (``stage`` is discover)."""
    return _observed(_run_discover, stage, payload, None)


def _run_discover(stage: str, payload: dict[str, Any]) -> dict[str, Any]:
    job, conn = _current()
    rt = get_runtime()
    run = payload["run"]
    model, version = payload["model"], int(payload["version"])
    discover = resolve_handler(stage, rt.settings.stage_handlers)
    try:
        result: DiscoverResult = discover(
            for_model(rt, model, version),
            start=dt.date.fromisoformat(payload["start"]),
            end=dt.date.fromisoformat(payload["end"]),
            aoi_wkt=payload.get("aoi_wkt"),
            max_cloud=payload.get("max_cloud"),
            run=run,
        )
    except Exception as exc:
        permanent = cannot_heal(exc)
        if permanent is not None:  # retrying cannot help: the run ends now, saying why
            status.mark_run_discovered(conn, run, 0, error=f"{permanent} ({_reason(exc)})")
            return {"outcome": "failed", "reason": permanent}
        if _last_attempt(job):
            status.mark_run_discovered(conn, run, 0, error=_reason(exc))
        raise
    started, committed = [], []
    for found in result.products:
        update: dict[str, Any] = {"model": model, "version": version, "run": run}
        if payload.get("aoi_wkt"):  # the run's area reaches every stage
            update["aoi_wkt"] = payload["aoi_wkt"]
        msg = found.model_copy(update=update)
        if catalog.is_committed(rt.store, model, version, msg.date, msg.product_id):
            committed.append(msg.product_id)
            continue
        if start_product(conn, rt.settings, msg) is not None:
            started.append(msg.product_id)
    skipped = _report_skipped(conn, stage, result.skipped, model, version, run)
    rejected = [quote_id(item_id) for item_id, _ in result.invalid]
    committed += result.committed
    status.mark_run_discovered(
        conn,
        run,
        len(started) + len(skipped),
        rejected=len(rejected),
        committed=len(committed),
    )
    return {
        "outcome": "ok",
        "started": started,
        "already_committed": committed,
        "skipped": skipped,
        "rejected": rejected,
    }


def _report_skipped(
    conn: redis.Redis, stage: str, skipped: list[Skipped], model: str, version: int, run: str
) -> list[str]:
    """Status of the products discover chose not to process (discover wrote their records)."""
    out = []
    for entry in skipped:
        ref = entry.ref
        ident = ProductMessage(
            product_id=ref.id, date=ref.date, tile=ref.tile, model=model, version=version, run=run
        )
        status.finished(conn, ident, stage, "skipped", entry.reason)
        out.append(ref.id)
    return out


def on_job_failure(job: Job, connection: redis.Redis, *exc_info: Any) -> None:
    """RQ failure callback: records products whose job died with no retries left.

    Exceptions raised by a handler are recorded by :func:`run_stage` itself; this covers
    jobs that never returned, i.e. whose worker was killed (RQ's ``AbandonedJobError``).
    """
    from rq.exceptions import AbandonedJobError

    exc_type = exc_info[0] if exc_info else None
    if exc_type is None or not issubclass(exc_type, AbandonedJobError):
        return
    stage, payload = job.args[0], job.args[1]
    reason = "worker lost during the job (killed or machine gone)"
    if get_stage(stage).takes_window:
        if _last_attempt(job):
            status.mark_run_discovered(connection, payload["run"], 0, error=reason)
        return
    try:
        msg = ProductMessage.model_validate(payload)
    except ValidationError:  # its job recorded it when it ran (run_stage)
        return
    if get_stage(stage).after_commit:  # not the product's outcome: retried by RQ, or lost
        return
    rt = get_runtime()
    if _already_committed(rt, msg):  # lost after the commit: the product is done
        _repeated_delivery(connection, rt, msg, stage, reason)
        return
    final = _last_attempt(job)
    status.failure(connection, msg, stage, reason, final=final)
    if final:
        _record(rt, msg, stage, "failed", reason, {"job": job.id})
