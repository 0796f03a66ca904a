"""``earthsig schedule``: the daily trigger (RQ CronScheduler enqueueing discover)."""

from __future__ import annotations

import datetime as dt

import click

from earthsignature.errors import ConfigurationError
from earthsignature.queue.enqueue import require_model
from earthsignature.queue.redis_conn import redis_connection
from earthsignature.queue.schedule import DEFAULT_CRON, fire, make_scheduler, utc_today
from earthsignature.settings import load_settings


@click.command("schedule")
@click.option(
    "--at",
    "cron",
    default=DEFAULT_CRON,
    show_default=True,
    help="Cron expression of the firing time (local time of this host).",
)
@click.option(
    "--days-back", default=1, show_default=True, help="Process the day this many days before."
)
@click.option(
    "--fire-now",
    is_flag=True,
    help="Fire once now (for the day --days-back before today, or --day) and exit.",
)
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), help="With --fire-now: this day.")
def command(cron: str, days_back: int, fire_now: bool, day: dt.datetime | None) -> None:
    """Enqueue discover every day for the previous day; firing twice does no work twice."""
    settings = load_settings()
    require_model(settings, settings.model_name, settings.model_version)
    if not settings.redis_url:
        raise ConfigurationError("the scheduler needs REDIS_URL: workers read the queues there")
    with redis_connection(settings.redis_url) as (conn, _url):
        if fire_now:
            target = day.date() if day else utc_today() - dt.timedelta(days=days_back)
            job = fire(conn, settings, day=target)
            click.echo(
                f"enqueued discover for {target} (job {job.id})"
                if job
                else f"discover for {target} was already triggered; nothing to do"
            )
            return
        scheduler, daily = make_scheduler(conn, settings, cron=cron, days_back=days_back)
        click.echo(
            f"scheduler {scheduler.name}: discover at '{cron}', next {daily.next_enqueue_time}"
        )
        scheduler.start()
