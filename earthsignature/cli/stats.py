"""``earthsig stats``: class areas per date (and change between two dates) inside an area."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from earthsignature.settings import load_settings
from earthsignature.storage import open_store


def _date(_ctx: click.Context, _param: click.Parameter, value: object) -> object:
    if value is None:
        return None
    values = value if isinstance(value, tuple) else (value,)
    try:
        parsed = tuple(dt.date.fromisoformat(str(v)) for v in values)
    except ValueError as exc:
        raise click.BadParameter(f"dates are YYYY-MM-DD: {exc}") from None
    return parsed if isinstance(value, tuple) else parsed[0]


@click.command("stats")
@click.option("--wkt", required=True, help="Area of interest, WKT polygon in EPSG:4326.")
@click.option("--from", "start", callback=_date, default=None, help="First date (YYYY-MM-DD).")
@click.option("--to", "end", callback=_date, default=None, help="Last date (YYYY-MM-DD).")
@click.option("--model", default=None, help="Model name (default EARTHSIG_MODEL_NAME).")
@click.option("--version", type=int, default=None, help="Model version (default configured).")
@click.option(
    "--change",
    nargs=2,
    callback=_date,
    default=None,
    metavar="D1 D2",
    help="Also give the class-to-class change from D1 to D2.",
)
@click.option(
    "--min-confidence",
    type=click.IntRange(0, 100),
    default=None,
    help="Leave out pixels the model was less sure of (percent; needs a confidence model).",
)
@click.option(
    "--composite",
    "periods",
    multiple=True,
    metavar="PERIOD",
    help="Areas of the tile-period composites of PERIOD (2024-05, 2024-JJA, R12-2024-05) "
    "instead of single dates (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(
    wkt: str,
    start: dt.date | None,
    end: dt.date | None,
    model: str | None,
    version: int | None,
    change: tuple[dt.date, dt.date] | None,
    min_confidence: int | None,
    periods: tuple[str, ...],
    as_json: bool,
) -> None:
    """Per-class area per date inside WKT (hectares in the table, m² with --json), cloud
    counted apart; optionally the change; with --composite, the areas of composites (with
    --min-confidence, the composite's confidence). Exits 1 when nothing matches or a product
    could not be read."""
    from earthsignature import stats
    from earthsignature.functions.errors import BadInput
    from earthsignature.stats.composites import composite_areas
    from earthsignature.stats.convert import change_dict, date_areas_dict, label
    from earthsignature.storage import layout
    from earthsignature.storage.catalog import model_versions
    from earthsignature.storage.errors import InvalidKey

    settings = load_settings()
    if start is not None and end is not None and end < start:
        raise click.BadParameter(f"--to {end} is before --from {start}", param_hint="--to")
    store = open_store(settings, create=False)
    model = model or settings.model_name
    version = version or settings.model_version
    for period in periods:
        try:
            layout.period_id(period)
        except InvalidKey as exc:
            raise click.BadParameter(str(exc), param_hint="--composite") from None
    try:
        aoi = stats.parse_aoi(wkt)
    except BadInput as exc:
        raise click.BadParameter(str(exc), param_hint="--wkt") from None
    known = model_versions(store)
    if (model, version) not in known:
        there = ", ".join(f"{m} v{v}" for m, v in known) or "none"
        raise click.ClickException(
            f"no committed products of model {model} version {version} in {store.url}"
            f" (there: {there})"
        )
    out: dict[str, Any] = {"model": model, "version": version}
    problems: list[str] = []
    for period in periods:
        found = composite_areas(
            store, aoi, period, model=model, version=version, min_confidence=min_confidence
        )
        if found is None:
            problems.append(f"no composite of {model} v{version} for {period} inside the area")
            continue
        out.setdefault("composites", []).append({"period": period, **date_areas_dict(found)})
        problems += [f"left out: {bad}" for bad in found.unreadable]
    if start is not None or end is not None or (change is None and not periods):
        areas = stats.area_by_date(
            store,
            aoi,
            start or dt.date.min,
            end or dt.date.max,
            model=model,
            version=version,
            min_confidence=min_confidence,
        )
        out["dates"] = [date_areas_dict(a) for a in areas]
        problems += [f"left out: {bad}" for a in areas for bad in a.unreadable]
        if not areas:
            window = f"{start or 'the start'} to {end or 'now'}"
            problems.append(
                f"no committed product of {model} v{version} inside the area from {window}"
            )
    if change is not None:
        result = stats.change(
            store,
            aoi,
            change[0],
            change[1],
            model=model,
            version=version,
            min_confidence=min_confidence,
        )
        out["change"] = change_dict(result)
        if not result.product_ids:
            problems.append(
                f"no committed product of {model} v{version} inside the area on"
                f" {change[0]} or {change[1]}"
            )
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        _print_table(out, label, min_confidence)
    for line in problems:
        click.echo(f"earthsig stats: {line}", err=True)
    if problems:
        sys.exit(1)


def _print_table(
    out: dict[str, Any], label: Callable[[int], str], min_confidence: int | None
) -> None:
    for comp in out.get("composites", []):
        click.echo(f"composite {comp['period']}  ({', '.join(comp['product_ids'])})")
        for c in comp["classes"]:
            click.echo(f"  {c['code']:>5}  {c['area_m2'] / 1e4:12.2f} ha  {c['label']}")
        if min_confidence:
            low = comp["low_confidence_m2"] / 1e4
            click.echo(f"  below {min_confidence} % confidence  {low:12.2f} ha")
    for day in out.get("dates", []):
        click.echo(f"{day['date']}  ({len(day['product_ids'])} products)")
        for c in day["classes"]:
            click.echo(f"  {c['code']:>5}  {c['area_m2'] / 1e4:12.2f} ha  {c['label']}")
        click.echo(f"  cloud  {day['cloud_m2'] / 1e4:12.2f} ha")
        if min_confidence:
            low = day["low_confidence_m2"] / 1e4
            click.echo(f"  below {min_confidence} % confidence  {low:12.2f} ha")
    if "change" in out:
        ch = out["change"]
        click.echo(f"change {ch['date_from']} -> {ch['date_to']}")
        for t in ch["transitions"]:
            mark = "" if t["from_code"] == t["to_code"] else "  *"
            click.echo(
                f"  {t['from_code']} -> {t['to_code']}  {t['area_m2'] / 1e4:12.2f} ha"
                f"  {label(t['from_code'])} -> {label(t['to_code'])}{mark}"
            )
        click.echo(f"  cloud on either date  {ch['cloud_m2'] / 1e4:.2f} ha")
