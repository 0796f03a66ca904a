"""``earthsig stac``: (re)write the root STAC Catalog and the per-model-version Collections."""

from __future__ import annotations

import click

from earthsignature.settings import load_settings
from earthsignature.storage import open_store


@click.command("stac")
def command() -> None:
    """Write stac/catalog.json and one Collection per model version, linking every committed
    item (run and demo do this after each run; use it after ingesting through the API)."""
    from earthsignature.storage.stac_catalog import write_stac_catalog

    store = open_store(load_settings(), create=False)
    for key in write_stac_catalog(store):
        click.echo(key)
