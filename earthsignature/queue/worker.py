"""Workers: run stage jobs from some queues, on this machine or as local subprocesses.

:class:`PipelineWorker` runs jobs in its own process (RQ's ``SimpleWorker``), so the
runtime's per-process cache (inference sessions, Triton clients) survives from one job to
the next, and a thread keeps the job's heartbeat going while it runs. When a worker dies
(SIGKILL, machine loss) its heartbeat stops; after ``heartbeat + grace`` seconds any other
worker's registry maintenance finds the job abandoned and re-queues it if it has retries
left (RQ's ``StartedJobRegistry.cleanup``), else records it failed.

A worker that dies between taking a job off a queue and registering it as started would
lose the job: RQ's ``BLPOP`` over several queues leaves it nowhere. :class:`ReliableQueue`
moves each job atomically into the queue's intermediate list instead (as RQ does for
single-queue workers), where registry maintenance finds it and retries it after a minute.
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
from typing import Any

import redis
from rq import SimpleWorker
from rq.callbacks import execute_failure_callback
from rq.exceptions import AbandonedJobError, DequeueTimeout
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import WorkerStatus

from earthsignature.memory import bound_gdal_cache, release_free_memory
from earthsignature.queue.errors import WorkerStartError


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


#: Short timings for tests: a lost job is retried within seconds. Only for small products:
#: a C call that holds the GIL longer than heartbeat + grace silences the heartbeat thread
#: and the job is taken as abandoned while it still runs.
FAST = WorkerTiming(heartbeat=1, grace=3, maintenance=2)

#: The embedded run (``earthsig run``, ``demo``): full tiles, and still a quick retry.
EMBEDDED = WorkerTiming(heartbeat=2, grace=30, maintenance=5)


#: Longest pause between polls of idle queues (a job waits at most this long to start).
IDLE_POLL_MAX = 0.5


class ReliableQueue(Queue):
    """A queue whose jobs are taken with ``LMOVE`` into its intermediate list, never lost.

    RQ does this only for a worker on one queue; a worker on several polls them in order
    (idle polls back off to :data:`IDLE_POLL_MAX`), since Redis has no blocking move from
    several lists. Needs Redis >= 6.2 (``LMOVE``).
    """

    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls,
        queues: Sequence[Queue],
        timeout: int | None,
        connection: redis.Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.02
        while True:
            for queue in queues:
                moved = cls.lmove(connection, queue.key, None)
                if moved is None:
                    continue
                queue_key, job_id = (v.decode() if isinstance(v, bytes) else v for v in moved)
                found = cls._fetch_dequeued_job(
                    connection,
                    queue_key,
                    job_id,
                    job_class=job_class,
                    serializer=serializer,
                    death_penalty_class=death_penalty_class,
                )
                if found is None:  # the job's hash is gone: nothing to run
                    connection.lrem(f"{queue_key}:intermediate", 1, job_id)
                    continue
                return found
            if deadline is None:
                return None
            if time.monotonic() >= deadline:
                raise DequeueTimeout(timeout, [q.key for q in queues])
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, IDLE_POLL_MAX)


class PipelineWorker(SimpleWorker):
    """A worker that keeps its process between jobs and heartbeats from a thread."""

    queue_class = ReliableQueue

    def __init__(self, *args: object, grace: int = 30, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.grace = grace

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Register the job as started and take it off the intermediate list, atomically."""
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def clean_registries(self) -> None:
        """RQ's maintenance, after re-queueing jobs whose worker died before starting them."""
        for queue in self.queues:
            lock = f"earthsig:claimed-lock:{queue.name}"
            expiry = max(1, int(self.maintenance_interval) - 1)  # the next tick may take it
            if self.connection.set(lock, self.name, nx=True, ex=expiry):
                self._recover_claimed(queue)
        super().clean_registries()

    def _recover_claimed(self, queue: Queue) -> None:
        """Retry (or fail) jobs left in the intermediate list for ``heartbeat + grace`` seconds.

        The same rule as RQ's (which waits a minute): a job seen there twice, apart by more
        than that, and not started, belongs to a worker that died after taking it.
        """
        claimed = queue.intermediate_queue
        limit = self.job_monitoring_interval + self.grace
        for job_id in claimed.get_job_ids():
            if job_id in queue.started_job_registry or claimed.set_first_seen(job_id):
                continue
            first = claimed.get_first_seen(job_id)
            if first is None or (now() - first).total_seconds() <= limit:
                continue
            job = queue.fetch_job(job_id)
            if job is not None:
                self.log.warning("job %s was taken by a lost worker; retrying it", job_id)
                with contextlib.suppress(Exception):  # as RQ: a failing callback is logged
                    execute_failure_callback(
                        job, self.death_penalty_class, AbandonedJobError, AbandonedJobError(), None
                    )
                self.handle_job_failure(job, queue, exc_string="worker lost before starting")
            claimed.remove(job_id)
            self.connection.delete(claimed.get_first_seen_key(job_id))

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
            release_free_memory()  # the next job must not stack on this one's freed peak
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
    bound_gdal_cache()
    conn = redis.Redis.from_url(redis_url)
    worker = PipelineWorker(
        [ReliableQueue(q, connection=conn, serializer=JSONSerializer) for q in queues],
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
        stop_processes(self.procs, timeout)


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM each live process group, wait up to ``timeout`` in all, SIGKILL the rest."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
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


#: Seconds running jobs get to finish when the owning command is interrupted (SIGTERM,
#: Ctrl-C): jobs are idempotent and the next run redoes them, so the stop stays quick.
INTERRUPT_GRACE_S = 5.0


@contextlib.contextmanager
def local_workers(*args: object, **kwargs: object) -> Iterator[LocalWorkers]:
    """:func:`spawn_workers` as a context that stops them on exit (sooner when interrupted)."""
    workers = spawn_workers(*args, **kwargs)  # type: ignore[arg-type]
    try:
        yield workers
    except Exception:
        workers.stop()
        raise
    except BaseException:  # KeyboardInterrupt, the CLI's Stopped
        workers.stop(INTERRUPT_GRACE_S)
        raise
    workers.stop()
