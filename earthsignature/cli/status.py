"""``earthsig status``: products (stage, retries, failures), queue depths and workers."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict

import click

from earthsignature.queue import status
from earthsignature.queue.redis_conn import redis_connection
from earthsignature.queue.stages import PRODUCT_STAGES
from earthsignature.settings import Settings, load_settings
from earthsignature.storage import open_store
from earthsignature.storage.catalog import iter_entries
from earthsignature.storage.records import iter_records, record_model_versions


@click.command("status")
@click.option("--run", help="Only the products of this run.")
@click.option("--limit", default=50, show_default=True, help="Most recently updated products.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(run: str | None, limit: int, as_json: bool) -> None:
    """Show where every product stands, the queues, and the live workers."""
    settings = load_settings()
    if not settings.redis_url:
        _from_store(settings, limit, as_json)
        return
    with redis_connection(settings.redis_url) as (conn, _url):
        products = status.products(conn, run, limit=limit)
        queues = status.queue_depths(conn)
        workers = status.workers(conn)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "products": [asdict(p) for p in products],
                    "queues": [asdict(q) for q in queues],
                    "workers": [asdict(w) for w in workers],
                },
                indent=2,
            )
        )
        return
    click.echo(f"{'product':<40} {'stage':<10} {'state':<9} {'shards':>7} {'retries':>7}  updated")
    for p in products:
        shards = f"{p.shards_done}/{p.shards}" if p.shards else ""
        when = dt.datetime.fromtimestamp(p.updated, dt.UTC).strftime("%m-%d %H:%M:%S")
        click.echo(
            f"{p.product_id[-40:]:<40} {p.stage:<10} {p.state:<9} {shards:>7} {p.retries:>7}"
            f"  {when}"
        )
        for failure in p.failures[-3:]:
            click.echo(f"{'':<4}! {failure['stage']}: {failure['reason']}")
    click.echo("")
    click.echo(f"{'queue':<10} {'queued':>7} {'running':>7} {'retry':>7} {'failed':>7} {'done':>7}")
    for q in queues:
        click.echo(
            f"{q.name:<10} {q.queued:>7} {q.started:>7} {q.scheduled:>7} {q.failed:>7}"
            f" {q.finished:>7}"
        )
    click.echo("")
    click.echo(f"{len(workers)} workers")
    for w in workers:
        job = f" job {w.current_job}" if w.current_job else ""
        click.echo(f"  {w.name} [{','.join(w.queues)}] {w.state}{job}")


def _from_store(settings: Settings, limit: int, as_json: bool) -> None:
    """Without Redis: committed products (catalog) and outcome records, newest last."""
    store = open_store(settings, create=False)
    click.echo(
        f"REDIS_URL is not set: reporting from the store {store.url} (committed products and"
        " failure/skip records; queues, retries and workers need REDIS_URL)",
        err=True,
    )
    rows: list[dict[str, str]] = [
        {
            "product_id": e.product_id,
            "model": f"{e.model} v{e.version}",
            "date": e.date.isoformat(),
            "state": "committed",
            "stage": PRODUCT_STAGES[-1],  # the chain's last stage commits (publish is in it)
            "reason": "",
        }
        for e in iter_entries(store)
    ]
    rows += [
        {
            "product_id": r.product_id,
            "model": f"{r.model} v{r.version}",
            "date": r.date,
            "state": r.status,
            "stage": r.stage,
            "reason": r.reason,
        }
        for m, v in record_model_versions(store)
        for r in iter_records(store, m, v)
    ]
    rows = sorted(rows, key=lambda row: (row["date"], row["product_id"]))[-limit:]
    if as_json:
        click.echo(json.dumps({"source": "store", "store": store.url, "products": rows}, indent=2))
        return
    click.echo(f"{'product':<40} {'model':<18} {'date':<10} {'state':<9} {'stage':<9}  reason")
    for row in rows:
        click.echo(
            f"{row['product_id'][-40:]:<40} {row['model'][-18:]:<18} {row['date']:<10}"
            f" {row['state']:<9} {row['stage']:<9}  {row['reason']}"
        )
    if not rows:
        click.echo("(no committed product and no record in the store)")
