"""One day end to end on one machine: ``earthsig run`` and ``earthsig demo``.

Uses whatever the settings name and embeds the rest: Redis at ``REDIS_URL`` or an embedded
server owned by the run, the configured store (a local directory by default), Triton at
``TRITON_URL`` or the embedded onnxruntime runner. Worker processes are spawned locally
with the same settings (passed as ``EARTHSIG_*``), discover is enqueued for the window, and
the run waits until every product it found is committed, skipped or failed, and then until
the work committing queued behind it (the after-commit ``composite`` jobs) has run, so the
local workers are not stopped under it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr
from tqdm import tqdm

from earthsignature.functions.messages import ProductMessage
from earthsignature.queue import status
from earthsignature.queue.enqueue import discover_payload, enqueue_discover, start_product
from earthsignature.queue.errors import QueueError
from earthsignature.queue.preflight import check_run
from earthsignature.queue.redis_conn import redis_connection
from earthsignature.queue.stages import PRODUCT_STAGES, QUEUES, SHARD_STAGES
from earthsignature.queue.worker import EMBEDDED, LocalWorkers, WorkerTiming, local_workers
from earthsignature.settings import ENV_PREFIX, Settings
from earthsignature.storage import ObjectStore, open_store

log = logging.getLogger(__name__)


def new_run_id(prefix: str = "run") -> str:
    """A fresh run id (names the ``work/`` folder and the run's status set)."""
    return f"{prefix}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def settings_env(settings: Settings, redis_url: str) -> dict[str, str]:
    """This process's environment with ``settings`` written as EARTHSIG_* (for workers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.pop("TRITON_URL", None)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        elif isinstance(value, Path):
            value = str(value.resolve())
        env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    store = env.get(f"{ENV_PREFIX}STORE", "")
    if store and "://" not in store:
        env[f"{ENV_PREFIX}STORE"] = str(Path(store).expanduser().resolve())
    env["REDIS_URL"] = env[f"{ENV_PREFIX}REDIS_URL"] = redis_url
    return env


@dataclass(frozen=True)
class RunSummary:
    """What became of every product of a run."""

    run: str
    products: list[status.ProductStatus]
    discover_error: str | None = None
    rejected: int = 0  # STAC items discover refused (unsafe ids...), recorded under records/
    already_committed: int = 0  # products found but committed before, for this model version

    def with_state(self, state: str) -> list[status.ProductStatus]:
        return [p for p in self.products if p.state == state]

    @property
    def failed(self) -> list[status.ProductStatus]:
        return self.with_state("failed")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.discover_error

    def lines(self) -> list[str]:
        counts = {s: len(self.with_state(s)) for s in ("committed", "skipped", "failed")}
        out = [
            f"run {self.run}: {len(self.products)} products, "
            + ", ".join(f"{n} {s}" for s, n in counts.items())
        ]
        if self.discover_error:
            out.append(f"  discover failed: {self.discover_error}")
        if self.already_committed:
            out.append(
                f"  {self.already_committed} products found were already committed"
                " for this model version (nothing to do for them)"
            )
        if self.rejected:
            out.append(f"  {self.rejected} STAC items refused at discover (see records/)")
        for p in self.products:
            extra = f" at {p.stage}: {p.reason}" if p.state in ("failed", "skipped") else ""
            retries = f" ({p.retries} retries)" if p.retries else ""
            out.append(f"  {p.state:<9} {p.product_id}{retries}{extra}")
        return out


def progress_line(p: status.ProductStatus) -> str:
    """Product, stage (a per-shard stage with its shards), state, retries and the last error."""
    shards = f" {p.shards_done}/{p.shards}" if p.stage in SHARD_STAGES and p.shards else ""
    where = f"{p.stage}{shards} {p.state}"
    line = f"{p.product_id[-40:]:<40} {where:<24}"
    if p.retries:
        line += f" retry {p.retries}"
    last = p.reason or (p.failures[-1].get("reason") if p.failures else None)
    if last and p.state != "committed":
        line += f" | {str(last).splitlines()[0][:80]}"
    return line


class _Progress:
    """One tqdm bar per product: stages done (infer by shards), current stage and state."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, tqdm] = {}

    def update(self, products: Iterable[status.ProductStatus]) -> None:
        if not self.enabled:
            return
        for p in products:
            bar = self.bars.get(p.product_id)
            if bar is None:
                bar = tqdm(
                    total=len(PRODUCT_STAGES),
                    position=len(self.bars),
                    bar_format="{desc} {bar:20} {n:.1f}/{total}",
                    leave=True,
                )
                self.bars[p.product_id] = bar
            bar.n = round(p.stages_done, 2)
            bar.set_description_str(progress_line(p), refresh=False)
            bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def wait_for_run(
    conn: redis.Redis,
    run: str,
    workers: LocalWorkers | None = None,
    *,
    progress: bool = True,
    timeout: float | None = None,
    discovered: Callable[[], bool] | None = None,
) -> RunSummary:
    """Poll the run's status until discover is over and every product is terminal."""
    bars = _Progress(progress)
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while True:
            found = status.products(conn, run)
            bars.update(found)
            info = status.run_discovered(conn, run)
            over = discovered() if discovered else bool(info)
            if over and all(p.terminal for p in found):
                error = (info or {}).get("error") or None
                rejected = int((info or {}).get("rejected") or 0)
                committed = int((info or {}).get("committed") or 0)
                return RunSummary(run, found, error, rejected, committed)
            if workers is not None:
                workers.check()
            if deadline and time.monotonic() > deadline:
                raise QueueError(f"run {run} not finished after {timeout}s")
            time.sleep(0.3)
    finally:
        bars.close()


def wait_for_drain(
    conn: redis.Redis,
    queues: Iterable[str],
    workers: LocalWorkers | None = None,
    *,
    timeout: float | None = None,
) -> None:
    """Wait until ``queues`` hold no job queued, running or scheduled for a retry: what the
    run's commits enqueued after them (composites) is done before local workers stop."""
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    from earthsignature.queue.rq_setup import make_queue

    names = list(queues)
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        busy = [
            name
            for name in names
            if make_queue(name, conn).count
            or StartedJobRegistry(name, connection=conn).count
            or ScheduledJobRegistry(name, connection=conn).count
        ]
        if not busy:
            return
        if workers is not None:
            workers.check()
        if deadline and time.monotonic() > deadline:
            raise QueueError(f"queues {', '.join(busy)} still busy after {timeout}s")
        time.sleep(0.3)


def run_window(
    settings: Settings,
    *,
    start: dt.date,
    end: dt.date | None = None,
    aoi_wkt: str | None = None,
    workers: int = 2,
    progress: bool = True,
    timing: WorkerTiming = EMBEDDED,
    log_dir: Path | None = None,
    timeout: float | None = None,
    run: str | None = None,
) -> RunSummary:
    """Discover and process ``start..end`` with locally spawned workers."""
    run = run or new_run_id()
    store = open_store(settings)
    check_run(settings, store, aoi_wkt)  # fail in one line, before enqueueing
    with redis_connection(settings.redis_url) as (conn, url):
        env = settings_env(settings, url)
        with local_workers(workers, url, QUEUES, env=env, timing=timing, log_dir=log_dir) as procs:
            payload = discover_payload(
                start=start,
                end=end or start,
                run=run,
                model=settings.model_name,
                version=settings.model_version,
                aoi_wkt=aoi_wkt or settings.aoi_wkt,
            )
            enqueue_discover(conn, settings, payload)
            summary = wait_for_run(conn, run, procs, progress=progress, timeout=timeout)
            wait_for_drain(conn, QUEUES, procs, timeout=timeout)
    if summary.with_state("committed"):
        update_stac_catalog(store)
    return summary


def update_stac_catalog(store: ObjectStore) -> None:
    """Rewrite the root STAC Catalog and Collections after a run (a failure only logs)."""
    from earthsignature.storage.stac_catalog import write_stac_catalog

    try:
        write_stac_catalog(store)
    except Exception as exc:
        log.warning("could not update the STAC catalog of %s: %s", store.url, exc)


def run_products(
    settings: Settings,
    messages: list[ProductMessage],
    *,
    workers: int = 2,
    progress: bool = True,
    timing: WorkerTiming = EMBEDDED,
    log_dir: Path | None = None,
    timeout: float | None = None,
    redis_url: str | None = None,
) -> RunSummary:
    """Process given products (reprocessing) from fetch on, with locally spawned workers."""
    if not messages:
        return RunSummary("none", [])
    run = messages[0].run
    with redis_connection(redis_url or settings.redis_url) as (conn, url):
        env = settings_env(settings, url)
        with local_workers(workers, url, QUEUES, env=env, timing=timing, log_dir=log_dir) as procs:
            enqueue_products(conn, settings, messages)
            summary = wait_for_run(
                conn, run, procs, progress=progress, timeout=timeout, discovered=lambda: True
            )
            wait_for_drain(conn, QUEUES, procs, timeout=timeout)
            return summary


def enqueue_products(
    conn: redis.Redis, settings: Settings, messages: Iterable[ProductMessage]
) -> list[str]:
    """Enter products into the pipeline at fetch; returns the ids of the jobs created."""
    out = []
    for msg in messages:
        job = start_product(conn, settings, msg)
        if job is not None:
            out.append(job.id)
    return out


def summary_json(summary: RunSummary) -> dict[str, Any]:
    return {
        "run": summary.run,
        "discover_error": summary.discover_error,
        "already_committed": summary.already_committed,
        "products": [
            {
                "product_id": p.product_id,
                "state": p.state,
                "stage": p.stage,
                "retries": p.retries,
                "reason": p.reason,
            }
            for p in summary.products
        ],
    }
