"""The embedded Redis is a real server that other processes reach by URL; RQ uses JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from earthsignature.queue import EmbeddedRedis, RedisUnavailable, make_queue, redis_connection

ROOT = Path(__file__).resolve().parents[2]


def test_job_runs_in_a_separate_burst_worker_process(redis_conn: redis.Redis) -> None:
    queue = make_queue("unit", redis_conn)
    job = queue.enqueue("tests.queue.jobs.add_and_report_pid", 2, 3)
    url = f"redis://127.0.0.1:{redis_conn.connection_pool.connection_kwargs['port']}/0"
    result = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", url,
         "--serializer", "rq.serializers.JSONSerializer", "--path", str(ROOT), "unit"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    done = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    assert done.is_finished
    value = done.return_value()
    assert value["sum"] == 5
    assert value["pid"] != os.getpid()


def test_payloads_are_stored_as_json_not_pickle(redis_conn: redis.Redis) -> None:
    queue = make_queue("unit", redis_conn)
    job = queue.enqueue("tests.queue.jobs.add_and_report_pid", 4, 5)
    raw = redis_conn.hget(f"rq:job:{job.id}", "data")
    assert raw is not None
    func, _instance, args, kwargs = json.loads(zlib.decompress(raw))  # RQ zlib-compresses data
    assert (func, args, kwargs) == ("tests.queue.jobs.add_and_report_pid", [4, 5], {})


def test_embedded_server_stops_and_cleans_up() -> None:
    server = EmbeddedRedis()
    conn = server.connection()
    conn.set("k", "v")
    directory = server.directory
    server.stop()
    assert not server.running
    assert not directory.exists()
    with pytest.raises(redis.ConnectionError):
        conn.ping()
    server.stop()  # idempotent


def test_redis_connection_embeds_when_no_url() -> None:
    with redis_connection(None) as (conn, url):
        assert url.startswith("redis://127.0.0.1:")
        assert conn.ping()
        other = redis.Redis.from_url(url)
        assert other.ping()
        other.close()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()


def test_unreachable_redis_url_is_a_clear_error() -> None:
    from earthsignature.testing.ports import free_port

    with (
        pytest.raises(RedisUnavailable, match="cannot reach Redis"),
        redis_connection(f"redis://127.0.0.1:{free_port()}/0"),
    ):
        pass
