"""``earthsig reprocess``: run committed products again with another model version."""

from __future__ import annotations

import datetime as dt
import sys

import click

from earthsignature.cli._params import ISO_DATE
from earthsignature.errors import ConfigurationError
from earthsignature.queue.enqueue import require_model
from earthsignature.queue.redis_conn import redis_connection
from earthsignature.queue.reprocess import plan_reprocess
from earthsignature.queue.run import enqueue_products, new_run_id, run_products
from earthsignature.runtime import Runtime
from earthsignature.settings import load_settings
from earthsignature.storage import layout


@click.command("reprocess")
@click.option("--model", required=True, help="Model name to run (as in the model repository).")
@click.option("--version", "version", required=True, type=int, help="Model version to run.")
@click.option("--from", "start", required=True, type=ISO_DATE)
@click.option("--to", "end", required=True, type=ISO_DATE)
@click.option("--source-model", help="Only products committed by this model (default: any).")
@click.option("--source-version", type=int, help="Only products committed by this version.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    help="Local worker processes; 0 only enqueues (workers elsewhere, needs REDIS_URL).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def command(
    model: str,
    version: int,
    start: dt.date,
    end: dt.date,
    source_model: str | None,
    source_version: int | None,
    workers: int,
    no_progress: bool,
) -> None:
    """Reprocess the products committed between --from and --to with MODEL version VERSION.

    Outputs go to the new version's partitions; the earlier versions stay available.
    """
    model, version = layout.model_name(model), layout.model_version(version)
    settings = load_settings()
    require_model(settings, model, version)
    if workers <= 0 and not settings.redis_url:
        raise ConfigurationError("--workers 0 only enqueues, which needs REDIS_URL")
    rt = Runtime.from_settings(settings)
    run = new_run_id("reprocess")
    plan = plan_reprocess(
        rt,
        model=model,
        version=version,
        start=start,
        end=end,
        run=run,
        source_model=source_model,
        source_version=source_version,
    )
    click.echo(
        f"{len(plan.messages)} products to reprocess with {model} v{version} (run {run}); "
        f"{len(plan.already_done)} already done, {len(plan.not_found)} not found again"
    )
    if not plan.messages:
        return
    if workers <= 0:
        with redis_connection(settings.redis_url) as (conn, _url):
            jobs = enqueue_products(conn, settings, plan.messages)
        click.echo(f"enqueued {len(jobs)} products; follow with `earthsig status --run {run}`")
        return
    summary = run_products(settings, plan.messages, workers=workers, progress=not no_progress)
    for line in summary.lines():
        click.echo(line)
    if settings.composites:  # catch-up: composite jobs that failed or ran out of retries
        from earthsignature.composites.stage import fold_committed

        try:
            reports = fold_committed(rt, model, version, start, end)
        except Exception as exc:  # the products are committed; only the composites lag
            click.echo(
                f"composites of {model} v{version} not updated: {exc}; retry with `earthsig "
                f"composites update --model {model} --version {version}`"
            )
        else:
            done = sum(r.folded for r in reports)
            click.echo(f"composites of {model} v{version}: {done} updates")
    if not summary.ok:
        sys.exit(1)
