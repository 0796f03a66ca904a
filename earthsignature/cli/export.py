"""``earthsig export``: the committed polygons as one GeoParquet file (DuckDB, GeoPandas...)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from earthsignature.cli._params import ISO_DATE
from earthsignature.settings import load_settings
from earthsignature.storage import open_store


@click.command("export")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="GeoParquet file to write (e.g. polygons.parquet).",
)
@click.option("--model", default=None, help="Model name (default EARTHSIG_MODEL_NAME).")
@click.option("--version", type=int, default=None, help="Model version (default configured).")
@click.option("--from", "start", type=ISO_DATE, default=None, help="First acquisition date.")
@click.option("--to", "end", type=ISO_DATE, default=None, help="Last acquisition date.")
def command(
    out: Path, model: str | None, version: int | None, start: dt.date | None, end: dt.date | None
) -> None:
    """Write the polygons of one model version (code, label, product_id, date, model, version,
    area_m2, WKB geometry in lon/lat) to a GeoParquet 1.1 file."""
    from earthsignature.storage.geoparquet import export_polygons

    if start is not None and end is not None and end < start:
        raise click.BadParameter(f"--to {end} is before --from {start}", param_hint="--to")
    settings = load_settings()
    store = open_store(settings, create=False)
    model = model or settings.model_name
    version = version or settings.model_version
    result = export_polygons(store, out, model=model, version=version, start=start, end=end)
    if not result.products:
        raise click.ClickException(f"no committed product of {model} v{version} to export")
    click.echo(f"{result.polygons} polygons of {result.products} products -> {out}")
