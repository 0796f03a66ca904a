"""``earthsig config``: the effective settings, secrets masked."""

from __future__ import annotations

import json

import click

from earthsignature.settings import ENV_PREFIX, Settings, load_settings


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--describe", is_flag=True, help="List every option with its description.")
def command(as_json: bool, describe: bool) -> None:
    """Show the effective settings (environment EARTHSIG_*), secrets masked."""
    if describe:
        names = {name: f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
        width = max(map(len, names.values()))
        for name, field in Settings.model_fields.items():
            click.echo(f"{names[name]:<{width}}  {field.description or ''}")
        return
    values = load_settings().redacted()
    if as_json:
        click.echo(json.dumps(values, indent=2, default=str))
        return
    width = max(map(len, values), default=0)
    for name, value in values.items():
        click.echo(f"{name:<{width}}  {value}")
