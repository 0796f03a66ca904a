"""Fixtures for orchestration tests: worker subprocesses on the test Redis and store."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from earthsignature.queue import EmbeddedRedis, status
from earthsignature.queue.enqueue import discover_payload, enqueue_discover
from earthsignature.queue.worker import FAST, LocalWorkers, spawn_workers
from earthsignature.settings import Settings, load_settings
from earthsignature.storage import LocalStore, ObjectStore, S3Store
from tests.queue import fake_stages

ROOT = Path(__file__).resolve().parents[2]


def store_env(store: ObjectStore) -> dict[str, str]:
    """The EARTHSIG_* variables that make another process open the same store."""
    if isinstance(store, S3Store):
        return {
            "EARTHSIG_STORE": f"s3://{store.bucket}/{store.prefix}".rstrip("/"),
            "EARTHSIG_S3_ENDPOINT": str(store.endpoint_url),
            "EARTHSIG_S3_ACCESS_KEY": str(store._access_key),
            "EARTHSIG_S3_SECRET_KEY": str(store._secret_key),
        }
    assert isinstance(store, LocalStore)
    return {"EARTHSIG_STORE": str(store.root)}


@dataclass
class Pipeline:
    """A test's pipeline deployment: Redis, store, environment, and the workers it started."""

    conn: redis.Redis
    url: str
    store: ObjectStore
    env: dict[str, str]
    log_dir: Path
    workers: list[LocalWorkers] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        overrides = {
            k[len("EARTHSIG_") :].lower(): v
            for k, v in self.env.items()
            if k.startswith("EARTHSIG_")
        }
        if "stage_handlers" in overrides:
            overrides["stage_handlers"] = json.loads(overrides["stage_handlers"])
        return load_settings(**overrides)

    def start_workers(
        self, count: int, queues: tuple[str, ...] | list[str] = ("all",)
    ) -> LocalWorkers:
        from earthsignature.queue.stages import parse_queues

        workers = spawn_workers(
            count,
            self.url,
            parse_queues(",".join(queues)),
            env=self.env,
            timing=FAST,
            log_dir=self.log_dir,
            cwd=ROOT,
        )
        self.workers.append(workers)
        return workers

    def wait(self, predicate: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            for workers in self.workers:
                workers.check()
            time.sleep(0.2)
        logs = "\n".join(p.read_text()[-3000:] for p in sorted(self.log_dir.glob("*.log")))
        raise AssertionError(f"timed out waiting for {what or predicate}\n{logs}")

    def count(self, key: str) -> int:
        return int(self.conn.get(key) or 0)


def make_pipeline(
    conn: redis.Redis, server: EmbeddedRedis, store: ObjectStore, tmp_path: Path, **extra: str
) -> Iterator[Pipeline]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARTHSIG_")}
    env.update(store_env(store))
    env.update(
        {
            "REDIS_URL": server.url,
            "EARTHSIG_STAGE_HANDLERS": json.dumps(fake_stages.HANDLERS),
            "EARTHSIG_RETRY_BACKOFF_SCALE": "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        }
    )
    env.update(extra)
    pipe = Pipeline(conn, server.url, store, env, tmp_path / "logs")
    try:
        yield pipe
    finally:
        for workers in pipe.workers:
            workers.stop(timeout=10)


@pytest.fixture
def pipeline(
    redis_conn: redis.Redis, redis_server: EmbeddedRedis, s3_store: S3Store, tmp_path: Path
) -> Iterator[Pipeline]:
    """Fake-stage pipeline on the test Redis and a fresh S3 prefix; workers started on demand."""
    yield from make_pipeline(redis_conn, redis_server, s3_store, tmp_path)


def write_products(store: ObjectStore, entries: list[dict[str, Any]]) -> None:
    """What the fake discover finds."""
    store.put_bytes(fake_stages.PRODUCTS_KEY, json.dumps(entries).encode())


def product(
    pid: str, date: str = "2026-03-01", tile: str = "31TCJ", **steer: Any
) -> dict[str, Any]:
    """A fixtures-file entry; ``steer`` says how the fake stages treat it (see fake_stages)."""
    return {"product_id": pid, "date": date, "tile": tile, "steer": steer}


#: The day of the fake products (``product``'s default date).
DAY = dt.date(2026, 3, 1)


def start_day(pipeline: Pipeline, run: str = "r1") -> None:
    """Enqueue discover for :data:`DAY`."""
    settings = pipeline.settings
    payload = discover_payload(
        start=DAY, end=DAY, run=run, model=settings.model_name, version=settings.model_version
    )
    assert enqueue_discover(pipeline.conn, settings, payload) is not None


def terminal(pipeline: Pipeline, run: str, expected: int) -> Callable[[], Any]:
    """A ``Pipeline.wait`` predicate: the run's products by id once all are terminal."""

    def check() -> dict[str, status.ProductStatus] | None:
        found = status.products(pipeline.conn, run)
        done = status.run_discovered(pipeline.conn, run)
        if done and len(found) == expected and all(p.terminal for p in found):
            return {p.product_id: p for p in found}
        return None

    return check


def embedded_env(store: Path, **extra: str) -> dict[str, str | None]:
    """CLI environment for an embedded run (own Redis, local store at ``store``, fake stages),
    with ``extra`` variables on top."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EARTHSIG_")}
    env.update(
        {
            "REDIS_URL": None,
            "TRITON_URL": None,
            "EARTHSIG_STORE": str(store),
            "EARTHSIG_STAGE_HANDLERS": json.dumps(fake_stages.HANDLERS),
            "EARTHSIG_RETRY_BACKOFF_SCALE": "0",
            # fake stages: the model only names the outputs; the suite's fast model
            "EARTHSIG_MODEL_NAME": "clc-baseline",
            # fake stages commit placeholder files, not rasters: composites only where asked
            "EARTHSIG_COMPOSITES": "false",
            "PYTHONPATH": str(ROOT),
            **extra,
        }
    )
    return env


def repository_with_two_versions(root: Path) -> Path:
    """The shipped clc-baseline model as versions 1 and 2 (reprocessing needs both)."""
    shipped = ROOT / "earthsignature/models/repository"
    shutil.copytree(shipped / "clc-baseline", root / "clc-baseline")
    shutil.copytree(root / "clc-baseline/1", root / "clc-baseline/2")
    spec = root / "clc-baseline/2/earthsig.json"
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "version": 2}))
    return root
