"""``earthsig run``: one day (or window) end to end on this machine."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click

from earthsignature.cli._params import ISO_DATE
from earthsignature.cli._signals import stop_on_signals
from earthsignature.queue.enqueue import require_model
from earthsignature.queue.run import run_window, summary_json
from earthsignature.settings import load_settings


@click.command("run")
@click.option(
    "--date",
    "day",
    required=True,
    type=ISO_DATE,
    help="Acquisition day to process (UTC).",
)
@click.option("--to", "end", type=ISO_DATE, help="Last day (default: --date).")
@click.option("--aoi", help="Area of interest, WKT in EPSG:4326 (default: EARTHSIG_AOI_WKT).")
@click.option("--workers", default=2, show_default=True, help="Local worker processes.")
@click.option("--no-progress", is_flag=True, help="No progress bars (logs, CI).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--logs", type=click.Path(path_type=Path), help="Directory for worker logs.")
@click.option("--timeout", type=float, help="Give up after this many seconds.")
def command(
    day: dt.date,
    end: dt.date | None,
    aoi: str | None,
    workers: int,
    no_progress: bool,
    as_json: bool,
    logs: Path | None,
    timeout: float | None,
) -> None:
    """Discover and process a day with local workers; exit 1 if any product failed.

    Uses REDIS_URL, EARTHSIG_STORE and TRITON_URL when set; otherwise an embedded Redis, the
    local store and the embedded onnxruntime runner.
    """
    settings = load_settings()
    # an unknown model version is refused before Redis or any worker starts
    require_model(settings, settings.model_name, settings.model_version)
    with stop_on_signals("run"):
        summary = run_window(
            settings,
            start=day,
            end=end,
            aoi_wkt=aoi,
            workers=max(1, workers),
            progress=not no_progress,
            log_dir=logs,
            timeout=timeout,
        )
    if as_json:
        click.echo(json.dumps(summary_json(summary), indent=2))
    else:
        for line in summary.lines():
            click.echo(line)
        click.echo(f"outputs in {settings.store} (see `earthsig store ls catalog/`)")
    if not summary.ok:
        sys.exit(1)
