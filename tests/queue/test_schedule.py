"""The daily trigger: the CronScheduler fires discover for the previous day, at most once."""

from __future__ import annotations

import datetime as dt

from rq.utils import now

from earthsignature.queue import status
from earthsignature.queue.rq_setup import make_queue
from earthsignature.queue.schedule import daily_run_id, make_scheduler
from earthsignature.storage import catalog
from tests.queue.conftest import Pipeline, product, write_products

TODAY = dt.date(2026, 3, 2)
YESTERDAY = dt.date(2026, 3, 1)


def _fire(scheduler, daily) -> None:  # type: ignore[no-untyped-def]
    daily.next_enqueue_time = now() - dt.timedelta(seconds=1)  # the cron time has come
    assert scheduler.enqueue_jobs() == [daily]


def test_firing_twice_for_a_day_does_no_work_twice(pipeline: Pipeline) -> None:
    write_products(
        pipeline.store,
        [product("S2A_Y1", date="2026-03-01", n_shards=2), product("S2A_T1", date="2026-03-02")],
    )
    settings = pipeline.settings
    scheduler, daily = make_scheduler(pipeline.conn, settings, today=lambda: TODAY)
    discover_queue = make_queue("discover", pipeline.conn)

    _fire(scheduler, daily)
    assert daily.last_job is not None
    _fire(scheduler, daily)
    assert daily.last_job is None  # same day: nothing new
    assert discover_queue.count == 1

    run = daily_run_id(YESTERDAY)
    pipeline.start_workers(2)
    pipeline.wait(
        lambda: (found := status.products(pipeline.conn, run)) and all(p.terminal for p in found),
        what="yesterday's product committed",
    )
    _fire(scheduler, daily)  # after the work is done, firing again still adds nothing
    assert daily.last_job is None
    v = settings.model_version
    assert pipeline.count(f"test:runs:fetch:S2A_Y1:v{v}") == 1
    assert pipeline.count(f"test:runs:vectorize:S2A_Y1:v{v}") == 1
    assert pipeline.count(f"test:runs:fetch:S2A_T1:v{v}") == 0  # only the previous day
    assert [e.product_id for e in catalog.iter_entries(pipeline.store)] == ["S2A_Y1"]


def test_next_day_fires_again(pipeline: Pipeline) -> None:
    days = iter([TODAY, TODAY + dt.timedelta(days=1)])
    scheduler, daily = make_scheduler(pipeline.conn, pipeline.settings, today=lambda: next(days))
    _fire(scheduler, daily)
    _fire(scheduler, daily)
    assert daily.last_job is not None
    assert make_queue("discover", pipeline.conn).count == 2


def test_manual_fire_from_the_command_line_is_idempotent(pipeline: Pipeline) -> None:
    from click.testing import CliRunner

    from earthsignature.cli import cli

    env = {**pipeline.env}
    args = ["schedule", "--fire-now", "--day", "2026-03-01"]
    first = CliRunner().invoke(cli, args, env=env)
    second = CliRunner().invoke(cli, args, env=env)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "enqueued discover for 2026-03-01" in first.output
    assert "already triggered; nothing to do" in second.output
    assert make_queue("discover", pipeline.conn).count == 1
