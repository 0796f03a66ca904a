"""``earthsig demo``: generated scenes processed end to end, offline, on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from earthsignature.cli._signals import stop_on_signals
from earthsignature.queue.demo import run_demo
from earthsignature.storage import LocalStore, catalog


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("earthsig-demo"),
    show_default=True,
    help="Directory for the scenes, the store and the logs.",
)
@click.option("--products", default=3, show_default=True, help="Scenes to generate.")
@click.option(
    "--size",
    default=1098,
    show_default=True,
    help="Scene side in 10 m pixels (multiple of 6; 10980 = a whole tile).",
)
@click.option("--workers", default=2, show_default=True, help="Local worker processes.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def command(out: Path, products: int, size: int, workers: int, no_progress: bool) -> None:
    """Generate a few scenes and run them through the whole pipeline, offline.

    Needs no server: Redis is embedded, the store is a local directory, inference uses the
    embedded onnxruntime runner, and a loopback STAC API serves the generated scenes.
    """
    with stop_on_signals("demo"):
        result = run_demo(
            out, products=products, size=size, workers=workers, progress=not no_progress
        )
    for line in result.summary.lines():
        click.echo(line)
    store = LocalStore(result.store, create=False)
    click.echo("")
    click.echo(f"scenes:  {result.scenes}")
    click.echo(f"outputs: {result.store}")
    for entry in catalog.iter_entries(store):
        click.echo(f"  {entry.product_id} ({entry.model} v{entry.version})")
        for name, key in sorted(entry.assets.items()):
            click.echo(f"    {name:<13} {result.store / key}")
    click.echo("")
    click.echo("serve them over the SnapEarth gRPC API:")
    click.echo(f"  EARTHSIG_STORE={result.store} earthsig serve")
    click.echo("or open the .tif/.fgb files in QGIS, or list them with")
    click.echo(f"  EARTHSIG_STORE={result.store} earthsig store ls catalog/")
    if not result.summary.ok:
        sys.exit(1)
