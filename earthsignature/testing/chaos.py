"""A fault run: real stages on RQ while workers are SIGKILLed, Redis restarts and S3 fails.

:func:`fault_run` generates products, serves them from a loopback STAC API, puts the real
S3 server behind a :class:`~earthsignature.testing.faultproxy.FaultProxy`, starts workers
under a :class:`Supervisor` (which respawns dead ones, as k8s or compose would) and a
:class:`Controller` thread that SIGKILLs busy workers in every stage and restarts Redis once
(append-only file on). Then :func:`verify` checks what a reader relies on: each product
committed exactly once, every asset complete, nothing stored outside ``work/`` that no
record explains. The benchmark (``python -m benchmarks faults``) and the reliability test
both run this.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from rq import Worker
from rq.serializers import JSONSerializer

from earthsignature.queue import status
from earthsignature.queue.enqueue import discover_payload, enqueue_discover
from earthsignature.queue.redis_conn import EmbeddedRedis
from earthsignature.queue.run import settings_env
from earthsignature.queue.stages import PRODUCT_STAGES, QUEUES, STAGES
from earthsignature.queue.worker import FAST, spawn_workers, stop_processes
from earthsignature.settings import EUROPE_WKT, load_settings
from earthsignature.storage import catalog, layout
from earthsignature.storage.base import ObjectStore

#: Tiles the generated products lie on (inside the default European AOI).
TILES = ("31TCJ", "32ULU", "32TQQ", "31UDQ", "33TUG", "30TYN")
FIRST_DAY = dt.date(2024, 6, 1)
#: Stages the controller kills workers in, besides the window stage (discover runs once per
#: run; it is killed when met).
KILL_STAGES = PRODUCT_STAGES


@dataclass(frozen=True)
class FaultPlan:
    """What to run and which faults to inject."""

    products: int = 10
    size: int = 600
    workers: int = 4
    kills: int = 20
    fault_rate: float = 0.1
    redis_restarts: int = 1
    shard_megabytes: int = 4
    seed: int = 0
    timeout: float = 420.0


class Supervisor:
    """Keeps ``count`` worker processes alive; SIGKILLs only processes it started."""

    def __init__(self, count: int, url: str, env: dict[str, str], log_dir: Path) -> None:
        self.url, self.env, self.log_dir = url, env, log_dir
        self.procs: list[subprocess.Popen[bytes]] = [self._spawn(i) for i in range(count)]
        self.spawned = count
        self.killed: set[int] = set()
        self.crashed = 0  # exits the controller did not cause (e.g. Redis went away)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        workers = spawn_workers(
            1, self.url, QUEUES, env=self.env, timing=FAST, log_dir=self.log_dir / f"slot-{slot}"
        )
        return workers.procs[0]

    def _watch(self) -> None:
        while not self._halt.wait(0.2):
            with self._lock:
                for slot, proc in enumerate(self.procs):
                    if proc.poll() is None:
                        continue
                    if proc.pid not in self.killed:
                        self.crashed += 1
                    self.procs[slot] = self._spawn(slot)
                    self.spawned += 1

    def kill(self, pid: int) -> bool:
        """SIGKILL the process group of one of our live workers (the job and its children)."""
        with self._lock:
            if not any(p.pid == pid and p.poll() is None for p in self.procs):
                return False
            self.killed.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            return True

    def stop(self, timeout: float = 15.0) -> None:
        self._halt.set()
        self._thread.join(timeout=5)
        stop_processes(self.procs, timeout)


class Controller(threading.Thread):
    """SIGKILLs workers busy with a job (each job at most once, stages evened out) and
    restarts Redis once half the kills are done."""

    def __init__(
        self, plan: FaultPlan, supervisor: Supervisor, server: EmbeddedRedis, seed: int
    ) -> None:
        super().__init__(name="chaos-controller", daemon=True)
        self.plan, self.supervisor, self.server = plan, supervisor, server
        self.rng = random.Random(seed)
        self.kills: Counter[str] = Counter()
        self.killed_jobs: set[str] = set()
        self.redis_restarts = 0
        self.redis_down_s = 0.0
        self.redis_restart_at_s: float | None = None
        self._began = time.monotonic()
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._quota = -(-plan.kills // len(KILL_STAGES))  # each stage's share

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def _busy(self, conn: redis.Redis) -> list[tuple[int, str, str]]:
        """(pid, job id, stage) of every registered worker in the middle of a job."""
        out = []
        for worker in Worker.all(connection=conn, serializer=JSONSerializer):
            job_id = worker.get_current_job_id()
            if job_id and worker.pid and worker.get_state() == "busy":
                out.append((int(worker.pid), job_id, job_id.split("-", 1)[0]))
        return out

    def _pick(self, busy: list[tuple[int, str, str]]) -> tuple[int, str, str] | None:
        fresh = [b for b in busy if b[1] not in self.killed_jobs and self._wanted(b[2])]
        if not fresh:
            return None
        least = min(self.kills[b[2]] for b in fresh)
        return self.rng.choice([b for b in fresh if self.kills[b[2]] == least])

    def _wanted(self, stage: str) -> bool:
        """Stages share the kills evenly; the window stage (discover, one job per run) is
        killed at most once."""
        spec = STAGES.get(stage)
        if spec is not None and spec.takes_window:
            return not self.kills[stage]
        return stage in KILL_STAGES and self.kills[stage] < self._quota

    def run(self) -> None:
        conn = redis.Redis.from_url(self.server.url, socket_timeout=5)
        try:
            while not self._halt.is_set():
                if sum(self.kills.values()) >= self.plan.kills and (
                    self.redis_restarts >= self.plan.redis_restarts
                ):
                    return
                if self.redis_restarts < self.plan.redis_restarts and sum(
                    self.kills.values()
                ) >= self.plan.kills // 2 * (self.redis_restarts + 1):
                    self._restart_redis()
                    continue
                try:
                    self._kill_one(conn)
                except redis.RedisError as exc:
                    self.errors.append(f"controller: {exc}")
                self._halt.wait(0.05)
        finally:
            conn.close()

    def _kill_one(self, conn: redis.Redis) -> None:
        if sum(self.kills.values()) >= self.plan.kills:
            return
        choice = self._pick(self._busy(conn))
        if choice is None:
            return
        pid, job_id, stage = choice
        self._halt.wait(self.rng.uniform(0.0, 0.3))  # somewhere inside the job
        if (pid, job_id, stage) not in self._busy(conn):
            return  # finished meanwhile
        if self.supervisor.kill(pid):
            self.kills[stage] += 1
            self.killed_jobs.add(job_id)

    def _restart_redis(self) -> None:
        started = time.monotonic()
        self.redis_restart_at_s = round(started - self._began, 1)
        self.server.restart(kill=True, down_for=self.rng.uniform(0.5, 1.5))
        self.redis_down_s = round(time.monotonic() - started, 2)
        self.redis_restarts += 1


@dataclass
class Verification:
    """What the store and the queue say after the run; ``ok`` when every check holds."""

    committed: int = 0
    records_per_product: dict[str, int] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    missing_assets: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    objects_checked: int = 0
    work_objects: int = 0

    @property
    def ok(self) -> bool:
        return (
            bool(self.records_per_product)
            and all(n == 1 for n in self.records_per_product.values())
            and set(self.states.values()) == {"committed"}
            and not self.orphans
            and not self.missing_assets
            and not self.unreadable
        )

    def as_dict(self) -> dict[str, Any]:
        """A summary: products without exactly one record, states counted, problems listed."""
        out = asdict(self)
        out["records_not_one"] = {p: n for p, n in out.pop("records_per_product").items() if n != 1}
        out["states"] = dict(Counter(self.states.values()))
        return {**out, "ok": self.ok}


def _read_fully(store: ObjectStore, key: str) -> None:
    """Open an output as its readers do and read all of it (raises when partial).

    GDAL's cache of remote files is bypassed, so what is checked is what is stored now.
    """
    import pyogrio.raw
    import rasterio

    from earthsignature.storage.gdal import gdal_env

    path = store.gdal_path(key)
    fresh = {**store.gdal_config(), "CPL_VSIL_CURL_NON_CACHED": path}
    if key.endswith(".tif"):
        with gdal_env(fresh), rasterio.open(path) as ds:
            for index in ds.indexes:
                ds.read(index)
    elif key.endswith(".fgb"):
        with gdal_env(fresh):
            pyogrio.raw.read(path)
    elif key.endswith(".pmtiles"):
        from pmtiles.reader import MemorySource, Reader, all_tiles

        source = MemorySource(store.get_bytes(key))
        Reader(source).header()
        for _ in all_tiles(source):
            pass
    elif key.endswith(".json"):
        json.loads(store.get_bytes(key))


def verify(
    store: ObjectStore, model: str, version: int, expected: list[str], states: dict[str, str]
) -> Verification:
    """Check a run's outcome (``states``: product -> state from the queue) against the store.

    Read it without faults: every record, asset and raw band is opened and read to the end.
    """
    out = Verification()
    out.states = {pid: states.get(pid, "missing") for pid in expected}
    entries = list(catalog.iter_entries(store, model, version))
    counts = Counter(e.product_id for e in entries)
    out.records_per_product = {pid: counts.get(pid, 0) for pid in expected}
    out.records_per_product.update({pid: n for pid, n in counts.items() if pid not in expected})
    out.committed = sum(1 for n in out.records_per_product.values() if n)
    keys = {info.key for info in store.list_keys("")}
    explained = set()
    for entry in entries:
        explained.add(entry.key)
        for name, key in entry.assets.items():
            if key not in keys:
                out.missing_assets.append(f"{entry.product_id}:{name}")
            explained.add(key)
        raw = layout.raw_prefix(
            entry.date, entry.properties.get(catalog.PROP_TILE, ""), entry.product_id
        )
        explained.update(k for k in keys if k.startswith(raw))
    out.work_objects = sum(1 for k in keys if k.startswith(layout.WORK + "/"))
    out.orphans = sorted(k for k in keys - explained if not k.startswith(layout.WORK + "/"))
    for key in sorted(explained & keys):
        try:
            _read_fully(store, key)
        except Exception as exc:
            out.unreadable.append(f"{key}: {type(exc).__name__}: {exc}")
        out.objects_checked += 1
    return out


def _generate(directory: Path, plan: FaultPlan) -> list[dict[str, Any]]:
    from earthsignature.generator import generate_product

    items = []
    for index in range(plan.products):
        day = FIRST_DAY + dt.timedelta(days=index // len(TILES))
        product = generate_product(
            directory,
            size=plan.size,
            seed=plan.seed + index,
            date=day.isoformat(),
            tile=TILES[index % len(TILES)],
            cloud_fraction=0.1,
        )
        items.append(json.loads(product.item.read_text()))
    return items


def _drained(conn: redis.Redis) -> bool:
    depths = status.queue_depths(conn)
    return not any(d.queued or d.started or d.scheduled or d.claimed for d in depths)


def _retries(conn: redis.Redis, run: str) -> dict[str, Any]:
    products = status.products(conn, run)
    reasons: Counter[str] = Counter()
    for p in products:
        for failure in p.failures:
            text = failure["reason"]
            reasons["worker lost" if "worker lost" in text else text.split(":", 1)[0]] += 1
    failed = sum(d.failed for d in status.queue_depths(conn))
    return {
        "job_retries": sum(p.retries for p in products),
        "failed_attempts": dict(reasons),
        "jobs_failed_for_good": failed,
    }


def fault_run(plan: FaultPlan, s3_server: Any, bucket: str, work_dir: Path) -> dict[str, Any]:
    """Run ``plan`` against ``s3_server`` (a :class:`SeaweedS3`); returns figures and checks."""
    from earthsignature.testing.faultproxy import FaultProxy
    from earthsignature.testing.stac_server import StacServer

    work_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"chaos-{plan.seed}-{int(time.time() * 1000) % 10**9}"
    begin = time.monotonic()
    items = _generate(work_dir / "scenes", plan)
    generated_s = time.monotonic() - begin
    expected = sorted(item["id"] for item in items)
    days = sorted({item["properties"]["datetime"][:10] for item in items})
    with (
        EmbeddedRedis(work_dir / "redis", appendonly=True, fsync="always") as server,
        StacServer(items) as stac,
        FaultProxy("127.0.0.1", s3_server.port, rate=plan.fault_rate, seed=plan.seed) as proxy,
    ):
        settings = load_settings(
            store=f"s3://{bucket}/{prefix}",
            s3_endpoint=proxy.endpoint_url,
            s3_access_key=s3_server.access_key,
            s3_secret_key=s3_server.secret_key,
            stac_api_url=stac.url,
            aoi_wkt=EUROPE_WKT,
            redis_url=server.url,
            retry_backoff_scale=0,
            shard_megabytes=plan.shard_megabytes,
            inference_threads=1,
        )
        env = settings_env(settings, server.url)
        conn = redis.Redis.from_url(server.url, socket_timeout=10)
        run = f"chaos-{plan.seed}"
        started = time.monotonic()
        supervisor = Supervisor(plan.workers, server.url, env, work_dir / "logs")
        controller = Controller(plan, supervisor, server, plan.seed)
        try:
            payload = discover_payload(
                start=dt.date.fromisoformat(days[0]),
                end=dt.date.fromisoformat(days[-1]),
                run=run,
                model=settings.model_name,
                version=settings.model_version,
                aoi_wkt=EUROPE_WKT,
            )
            enqueue_discover(conn, settings, payload)
            controller.start()
            finished = _wait(conn, run, len(expected), started + plan.timeout)
            processed_s = time.monotonic() - started
        finally:
            controller.stop()
            supervisor.stop()
        direct = s3_server.store(bucket, prefix)
        states = {p.product_id: p.state for p in status.products(conn, run)}
        checks = verify(direct, settings.model_name, settings.model_version, expected, states)
        figures = {
            "products": len(expected),
            "store": {"bucket": bucket, "prefix": prefix},
            "size_px": plan.size,
            "workers": plan.workers,
            "finished_in_time": finished,
            "kills": sum(controller.kills.values()),
            "kills_per_stage": {s: controller.kills[s] for s in STAGES if controller.kills[s]},
            "worker_respawns": supervisor.spawned - plan.workers,
            "worker_crashes_not_killed": supervisor.crashed,
            "redis_restarts": controller.redis_restarts,
            "redis_down_s": controller.redis_down_s,
            "redis_restart_at_s": controller.redis_restart_at_s,
            "proxy": {**proxy.counts.as_dict(), "fault_rate": plan.fault_rate},
            **_retries(conn, run),
            "generate_s": round(generated_s, 1),
            "wall_s": round(processed_s, 1),
            "verification": checks.as_dict(),
            "controller_errors": controller.errors[:5],
        }
        conn.close()
    figures["ok"] = bool(
        finished
        and checks.ok
        and figures["kills"] >= plan.kills
        and figures["redis_restarts"] >= plan.redis_restarts
    )
    return figures


def _wait(conn: redis.Redis, run: str, count: int, deadline: float) -> bool:
    """Until every product is terminal and the queues are drained (retries included)."""
    while time.monotonic() < deadline:
        try:
            found = status.products(conn, run)
            if (
                status.run_discovered(conn, run)
                and len(found) == count
                and all(p.terminal for p in found)
                and _drained(conn)
            ):
                return True
        except redis.RedisError:
            pass  # Redis is restarting
        time.sleep(0.5)
    return False
