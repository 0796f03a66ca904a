"""``earthsig composites``: rebuild or catch up a model version's tile-period composites."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import click

from earthsignature.cli._params import ISO_DATE

T = TypeVar("T")


@click.group("composites")
def command() -> None:
    """Tile-period composites (month, season, rolling 12 months) of committed products."""
    from earthsignature.memory import bound_gdal_cache

    bound_gdal_cache()  # a whole tile's composite, like the worker's stage


@command.command("rebuild")
@click.option("--model", required=True, help="Model name.")
@click.option("--version", "version", required=True, type=int, help="Model version.")
@click.option("--tile", help="Only this MGRS tile (e.g. 31TCJ).")
@click.option("--period", help="Only this period: 2024-05, 2024-JJA or R12-2024-05.")
@click.option(
    "--vectors/--no-vectors",
    default=None,
    help="Polygons and vector tiles for every period (default: rolling periods only).",
)
def rebuild(
    model: str, version: int, tile: str | None, period: str | None, vectors: bool | None
) -> None:
    """Recompute composites from the committed products, from a clean state (stop the
    workers of this model version first: a rebuild outside the queue holds no lock)."""
    from earthsignature.composites import stage
    from earthsignature.runtime import Runtime
    from earthsignature.settings import load_settings
    from earthsignature.storage import layout

    model, version = _model(model, version)
    if tile is not None:
        tile = _checked(layout.tile_id, tile, "--tile")
    if period is not None:
        period = _checked(layout.period_id, period, "--period")
    rt = Runtime.from_settings(load_settings())
    done = stage.rebuild_all(rt, model, version, tile=tile, period=period, vectors=vectors)
    if not done:
        raise click.ClickException(
            f"no committed product of {model} v{version}"
            + (f" on tile {tile}" if tile else "")
            + (f" in {period}" if period else "")
        )
    for row in done:
        click.echo(f"{row.tile} {row.period}: {row.products} products")


@command.command("update")
@click.option("--model", required=True, help="Model name.")
@click.option("--version", "version", required=True, type=int, help="Model version.")
@click.option("--from", "start", type=ISO_DATE, help="First acquisition day.")
@click.option("--to", "end", type=ISO_DATE, help="Last acquisition day.")
def update(model: str, version: int, start: dt.date | None, end: dt.date | None) -> None:
    """Fold the committed products not yet in their composites (idempotent)."""
    from earthsignature.composites import stage
    from earthsignature.runtime import Runtime
    from earthsignature.settings import load_settings

    model, version = _model(model, version)
    rt = Runtime.from_settings(load_settings())
    reports = stage.fold_committed(rt, model, version, start, end)
    folded = [r for r in reports if r.folded]
    click.echo(f"{len(folded)} composite updates ({len(reports) - len(folded)} already up to date)")


def _model(model: str, version: int) -> tuple[str, int]:
    from earthsignature.storage import layout

    return (
        _checked(layout.model_name, model, "--model"),
        _checked(layout.model_version, version, "--version"),
    )


def _checked(parse: Callable[[Any], T], value: object, hint: str) -> T:
    """``parse(value)``, a bad value as click's one-line usage error."""
    from earthsignature.storage.errors import InvalidKey

    try:
        return parse(value)
    except InvalidKey as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None
