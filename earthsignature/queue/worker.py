"""Workers: run stage jobs from some queues, on this machine or as local subprocesses.

:class:`PipelineWorker` runs jobs in its own process (RQ's ``SimpleWorker``), so the
runtime's per-process cache (inference sessions, Triton clients) survives from one job to
the next, and a thread keeps the job's heartbeat going while it runs. When a worker dies
(SIGKILL, machine loss) its heartbeat stops; after ``heartbeat + grace`` seconds any other
worker's registry maintenance finds the job abandoned and re-queues it if it has retries
left (RQ's ``StartedJobRegistry.cleanup``), else records it failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from earthsignature.queue.errors import WorkerStartError
from earthsignature.queue.rq_setup import make_queue


@dataclass(frozen=True)
class WorkerTiming:
    """How quickly a lost worker's job is noticed and retried elsewhere."""

    heartbeat: int = 10
    """Seconds between heartbeats of a running job."""
    grace: int = 30
    """Seconds without a heartbeat after which a job counts as abandoned."""
    maintenance: int = 30
    """Seconds between registry clean-ups (where abandoned jobs are re-queued)."""

    def args(self) -> list[str]:
        return [
            "--heartbeat", str(self.heartbeat),
            "--grace", str(self.grace),
            "--maintenance", str(self.maintenance),
        ]  # fmt: skip


#: Short timings for tests and the embedded run: a lost job is retried within seconds.
FAST = WorkerTiming(heartbeat=1, grace=3, maintenance=2)


class PipelineWorker(SimpleWorker):
    """A worker that keeps its process between jobs and heartbeats from a thread."""

    def __init__(self, *args: object, grace: int = 30, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.grace = grace

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """Time until a silent job counts as abandoned: one heartbeat interval plus grace."""
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = max(1, min(int(job.timeout - working_time), interval))
        return int(interval + self.grace)

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.job_monitoring_interval):
                with contextlib.suppress(redis.RedisError):
                    self.maintain_heartbeats(job, execution)

        thread = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        thread.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            thread.join(timeout=5)
        self.set_state(WorkerStatus.IDLE)


def run_worker(
    redis_url: str,
    queues: Sequence[str],
    *,
    timing: WorkerTiming = WorkerTiming(),
    burst: bool = False,
    name: str | None = None,
    with_scheduler: bool = True,
    max_jobs: int | None = None,
) -> bool:
    """Work on ``queues`` until stopped (SIGTERM/SIGINT: finish the job, then exit).

    ``with_scheduler`` also moves retries whose backoff has passed back onto their queues
    (any number of workers may run it; RQ elects one).
    """
    conn = redis.Redis.from_url(redis_url)
    worker = PipelineWorker(
        [make_queue(q, conn) for q in queues],
        connection=conn,
        serializer=JSONSerializer,
        name=name or f"earthsig-{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        job_monitoring_interval=timing.heartbeat,
        maintenance_interval=timing.maintenance,
        worker_ttl=max(timing.maintenance, 1) + 15,
        grace=timing.grace,
    )
    return worker.work(burst=burst, with_scheduler=with_scheduler, max_jobs=max_jobs)


def worker_command(
    redis_url: str,
    queues: Sequence[str],
    *,
    timing: WorkerTiming = WorkerTiming(),
    burst: bool = False,
    name: str | None = None,
) -> list[str]:
    """The command line that starts one worker process (``earthsig worker ...``)."""
    cmd = [
        sys.executable, "-c", "from earthsignature.cli import main; main()",
        "worker", "--url", redis_url, "--queues", ",".join(queues), *timing.args(),
    ]  # fmt: skip
    if burst:
        cmd.append("--burst")
    if name:
        cmd += ["--name", name]
    return cmd


@dataclass
class LocalWorkers:
    """Worker subprocesses spawned on this machine (each its own process group)."""

    procs: list[subprocess.Popen[bytes]]
    log_dir: Path | None = None

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def check(self) -> None:
        """Raise if every worker has exited (nothing could make progress any more)."""
        if self.procs and not self.alive():
            codes = [p.returncode for p in self.procs]
            raise WorkerStartError(f"all workers exited (codes {codes}); see {self.log_dir}")

    def stop(self, timeout: float = 15.0) -> None:
        """Warm shutdown (SIGTERM: finish the current job), then kill what is left."""
        for proc in self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def spawn_workers(
    count: int,
    redis_url: str,
    queues: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timing: WorkerTiming = WorkerTiming(),
    log_dir: Path | None = None,
    cwd: Path | None = None,
) -> LocalWorkers:
    """Start ``count`` worker processes with ``env`` (the settings travel as EARTHSIG_*)."""
    procs = []
    for index in range(count):
        out: int | object = subprocess.DEVNULL
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            out = open(log_dir / f"worker-{index}.log", "ab")  # noqa: SIM115 - owned by Popen
        procs.append(
            subprocess.Popen(
                worker_command(redis_url, queues, timing=timing),
                env=dict(env) if env is not None else None,
                stdout=out,  # type: ignore[arg-type]
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
            )
        )
        if log_dir is not None:
            out.close()  # type: ignore[union-attr]
    return LocalWorkers(procs, log_dir)


@contextlib.contextmanager
def local_workers(*args: object, **kwargs: object) -> Iterator[LocalWorkers]:
    """:func:`spawn_workers` as a context that stops them on exit."""
    workers = spawn_workers(*args, **kwargs)  # type: ignore[arg-type]
    try:
        yield workers
    finally:
        workers.stop()
