"""``earthsig generate``: write a synthetic Sentinel-2 L2A product with known land-cover truth."""

from __future__ import annotations

from pathlib import Path

import click

from earthsignature.generator import generate_product


@click.command("generate")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--size",
    default=1098,
    show_default=True,
    help="Side in 10 m pixels, a multiple of 6 (10980 = a full tile).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the land-cover pattern.")
@click.option("--date", default="2024-06-01", show_default=True, help="Acquisition date.")
@click.option("--tile", default="31TCJ", show_default=True, help="MGRS tile whose grid is used.")
@click.option(
    "--cloud-fraction",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of cloud and shadow pixels.",
)
@click.option(
    "--processing-baseline",
    default="05.10",
    show_default=True,
    help="L2A baseline; >= 04.00 stores DN with BOA_ADD_OFFSET -1000.",
)
@click.option(
    "--seasonal",
    is_flag=True,
    help="Real library spectra and the look of --date (crops, leaves, snow, haze, clouds).",
)
def command(
    out_dir: Path,
    size: int,
    seed: int,
    date: str,
    tile: str,
    cloud_fraction: float,
    processing_baseline: str,
    seasonal: bool,
) -> None:
    """Write a synthetic product under OUT_DIR and print its folder."""
    try:
        product = generate_product(
            out_dir,
            size=size,
            seed=seed,
            date=date,
            tile=tile,
            cloud_fraction=cloud_fraction,
            processing_baseline=processing_baseline,
            seasonal=seasonal,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(str(product.directory))
