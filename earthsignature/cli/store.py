"""``earthsig store``: look into the object store the settings name."""

from __future__ import annotations

import click

from earthsignature.settings import load_settings
from earthsignature.storage import open_store


@click.group("store")
def command() -> None:
    """Inspect the object store (local directory or S3 bucket)."""


@command.command("ls")
@click.argument("prefix", default="")
@click.option("--dirs", is_flag=True, help="List partitions one level down instead of objects.")
def ls(prefix: str, dirs: bool) -> None:
    """List objects (key and size) under PREFIX, e.g. catalog/model=clc-baseline/."""
    store = open_store(load_settings(), create=False)
    if dirs:
        for key in store.list_dirs(prefix):
            click.echo(key)
        return
    for info in store.list_keys(prefix):
        click.echo(f"{info.size:>12}  {info.key}")


@command.command("cat")
@click.argument("key")
def cat(key: str) -> None:
    """Write one object to standard output."""
    store = open_store(load_settings(), create=False)
    click.echo(store.get_bytes(key), nl=False)
