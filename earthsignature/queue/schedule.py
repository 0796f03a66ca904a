"""The daily trigger: RQ's CronScheduler enqueues discover for the previous day.

Each firing computes its day (UTC today minus ``days_back``) and enqueues discover under a
job id derived from (model, version, day, run ``daily-<day>``) with RQ's unique enqueue. A
second firing for the same day - a restarted scheduler, two schedulers, a manual re-fire -
finds that job and adds nothing; and discover itself skips products already committed, so
even after the job record expires no product is processed twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import redis
from rq.cron import CronJob, CronScheduler
from rq.job import Job

from earthsignature.queue.enqueue import discover_payload, enqueue_discover
from earthsignature.settings import Settings

log = logging.getLogger(__name__)

#: Default firing time: every day at 06:00 (scheduler host's local time, as cron reads it).
DEFAULT_CRON = "0 6 * * *"


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def daily_run_id(day: dt.date) -> str:
    return f"daily-{day.isoformat()}"


def fire(
    conn: redis.Redis,
    settings: Settings,
    *,
    day: dt.date,
    aoi_wkt: str | None = None,
    max_cloud: float | None = None,
) -> Job | None:
    """Enqueue discover for ``day``; None when that day was already triggered."""
    payload = discover_payload(
        start=day,
        end=day,
        run=daily_run_id(day),
        model=settings.model_name,
        version=settings.model_version,
        aoi_wkt=aoi_wkt or settings.aoi_wkt,
        max_cloud=max_cloud,
    )
    job = enqueue_discover(conn, settings, payload)
    if job is None:
        log.info("discover for %s already triggered; nothing to do", day)
    else:
        log.info("enqueued discover for %s (job %s)", day, job.id)
    return job


class DailyDiscover(CronJob):
    """A cron job that triggers discover for ``days_back`` days before the firing day."""

    def __init__(
        self,
        settings: Settings,
        *,
        cron: str = DEFAULT_CRON,
        days_back: int = 1,
        today: Callable[[], dt.date] = utc_today,
    ) -> None:
        super().__init__(
            queue_name="discover", func=fire, cron=cron, name="earthsig-daily-discover"
        )
        self.settings = settings
        self.days_back = days_back
        self.today = today
        self.last_job: Job | None = None

    def target_day(self) -> dt.date:
        return self.today() - dt.timedelta(days=self.days_back)

    def enqueue(self, connection: redis.Redis) -> Job:  # type: ignore[override]
        """Fire: enqueue discover for the target day (JSON payload, deduplicated by day)."""
        job = fire(connection, self.settings, day=self.target_day())
        self.last_job = job
        if job is not None:
            with connection.pipeline() as pipe:
                assert job.enqueued_at is not None
                pipe.zadd(self.job_history_key, {job.id: job.enqueued_at.timestamp()})
                pipe.execute()
        return job  # type: ignore[return-value]


def make_scheduler(
    conn: redis.Redis,
    settings: Settings,
    *,
    cron: str = DEFAULT_CRON,
    days_back: int = 1,
    today: Callable[[], dt.date] = utc_today,
) -> tuple[CronScheduler, DailyDiscover]:
    """A CronScheduler with the daily discover registered; ``scheduler.start()`` runs it."""
    scheduler = CronScheduler(connection=conn)
    daily = DailyDiscover(settings, cron=cron, days_back=days_back, today=today)
    scheduler.get_jobs().append(daily)  # register() would build a plain (pickling) CronJob
    return scheduler, daily
