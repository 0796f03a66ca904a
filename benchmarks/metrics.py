"""Benchmark of the observability code: what metrics and JSON logs cost per job and per call.

    python benchmarks/metrics.py --jobs 20000 --calls 300

- stage timer: ``metrics.stage_run`` around an empty job, microseconds per job;
- JSON log line: ``JsonFormatter.format`` of a record inside a ``log_context``;
- API: median latency of a cheap unary gRPC call (health Check) through ``ApiServer`` with the
  metrics interceptor, beside the same call on a bare grpc server with no interceptor;
- scrape: time to render ``/metrics`` over HTTP with every stage and outcome populated.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
import urllib.request
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from earthsignature import metrics
from earthsignature.grpc_api.server import ApiServer
from earthsignature.logs import JsonFormatter, log_context
from earthsignature.queue.stages import QUEUES
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore


def _per_job_us(jobs: int) -> float:
    started = time.perf_counter()
    for i in range(jobs):
        with metrics.stage_run(QUEUES[i % len(QUEUES)]) as run:
            run.outcome = "ok"
    return (time.perf_counter() - started) / jobs * 1e6


def _log_line_us(lines: int) -> float:
    formatter = JsonFormatter()
    record = logging.makeLogRecord({"msg": "shard %d done", "args": (3,), "levelname": "INFO"})
    with log_context("S2A_MSIL2A_20260301T105031_N0510_R051_T31TCJ_20260301T140001", "infer"):
        started = time.perf_counter()
        for _ in range(lines):
            formatter.format(record)
    return (time.perf_counter() - started) / lines * 1e6


def _median_call_ms(port: int, calls: int) -> float:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stub.Check(health_pb2.HealthCheckRequest())  # connect
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            stub.Check(health_pb2.HealthCheckRequest())
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    out: dict[str, float] = {
        "stage_timer_us_per_job": _per_job_us(args.jobs),
        "json_log_us_per_line": _log_line_us(args.jobs),
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(api_host="127.0.0.1", api_port=0, metrics_port=0)
        api = ApiServer(settings, LocalStore(tmp))
        api.start()
        bare = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), bare)
        bare_port = bare.add_insecure_port("127.0.0.1:0")
        bare.start()
        try:
            out["api_call_ms_with_metrics"] = _median_call_ms(api.port, args.calls)
            out["api_call_ms_bare_server"] = _median_call_ms(bare_port, args.calls)
            assert api.metrics is not None
            url = f"http://127.0.0.1:{api.metrics.port}/metrics"
            started = time.perf_counter()
            for _ in range(20):
                with urllib.request.urlopen(url) as response:
                    size = len(response.read())
            out["scrape_ms"] = (time.perf_counter() - started) / 20 * 1e3
            out["scrape_bytes"] = size
        finally:
            api.stop(grace=0.5)
            bare.stop(0)
    print(json.dumps({k: round(v, 3) for k, v in out.items()}, indent=2))


if __name__ == "__main__":
    main()
