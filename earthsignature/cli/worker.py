"""``earthsig worker``: run stage jobs from some queues until stopped."""

from __future__ import annotations

import click
import redis

from earthsignature import metrics
from earthsignature.errors import ConfigurationError
from earthsignature.queue.jobs import set_runtime
from earthsignature.queue.stages import GPU_QUEUES, QUEUES, parse_queues
from earthsignature.queue.worker import WorkerTiming, run_worker
from earthsignature.runtime import Runtime
from earthsignature.settings import load_settings


@click.command("worker")
@click.option(
    "--queues",
    "-q",
    default="all",
    show_default=True,
    help="Comma-separated queues (discover,fetch,cloud,split,infer,vectorize) or all/cpu/gpu. "
    "GPU hosts: --queues infer with TRITON_URL set.",
)
@click.option("--url", help="Redis URL (default: REDIS_URL / EARTHSIG_REDIS_URL).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--name", help="Worker name (default: host, pid and a random suffix).")
@click.option("--heartbeat", default=10, show_default=True, help="Seconds between heartbeats.")
@click.option(
    "--grace",
    default=30,
    show_default=True,
    help="Seconds without a heartbeat before a job counts as abandoned and is retried.",
)
@click.option(
    "--maintenance",
    default=30,
    show_default=True,
    help="Seconds between registry clean-ups (re-queueing abandoned jobs).",
)
def command(
    queues: str,
    url: str | None,
    burst: bool,
    name: str | None,
    heartbeat: int,
    grace: int,
    maintenance: int,
) -> None:
    """Work on pipeline jobs. Start more of these (on more hosts) to scale out."""
    settings = load_settings()
    redis_url = url or settings.redis_url
    if not redis_url:
        raise ConfigurationError("a worker needs REDIS_URL (or --url): the queues live there")
    names = parse_queues(queues)
    if any(q in GPU_QUEUES for q in names) and not settings.triton_url:
        click.echo(
            "note: no TRITON_URL; jobs of the GPU queues use the embedded onnxruntime runner",
            err=True,
        )
    set_runtime(Runtime.from_settings(settings))  # one runtime (and cache) per process
    if metrics.serve_metrics(settings.metrics_port, settings.metrics_host) is not None:
        depth_conn = redis.Redis.from_url(redis_url)
        metrics.watch_queues(lambda: metrics.rq_queue_depths(depth_conn, QUEUES))
    timing = WorkerTiming(heartbeat=heartbeat, grace=grace, maintenance=maintenance)
    run_worker(redis_url, names, timing=timing, burst=burst, name=name)
