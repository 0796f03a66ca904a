"""``earthsig train``: train a U-Net on image/label pairs and register it as a new version."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from earthsignature.settings import load_settings


@click.command("train")
@click.option(
    "--pair",
    "pairs",
    nargs=2,
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="BANDS_DIR LABEL_TIF: a folder of <band>.tif and a CORINE raster.",
)
@click.option("--name", required=True, help="Model name to add a version to.")
@click.option("--steps", default=200, show_default=True)
@click.option("--width", default=16, show_default=True)
@click.option(
    "--offset",
    default=0.0,
    show_default=True,
    help="Reflectance offset (-0.1 from baseline 04.00).",
)
def command(
    pairs: tuple[tuple[Path, Path], ...], name: str, steps: int, width: int, offset: float
) -> None:
    """Train, export to ONNX (dynamic N/H/W, uint8 classes) and register in the repository."""
    try:
        importlib.import_module("torch")
    except ImportError:
        raise click.ClickException(
            "earthsig train needs PyTorch, from the 'train' extra: pip install -e \".[train]\""
        ) from None
    from earthsignature.models.repository import repository_for
    from earthsignature.models.train import DEFAULT_BANDS, load_scene, train_and_register

    settings = load_settings()
    repo = repository_for(settings.model_repository)
    scenes = [
        load_scene(
            {b: folder / f"{b}.tif" for b in DEFAULT_BANDS}, label, DEFAULT_BANDS, offset=offset
        )
        for folder, label in pairs
    ]
    spec = train_and_register(repo, name, scenes, DEFAULT_BANDS, steps=steps, width=width)
    click.echo(f"registered {spec.name} version {spec.version} in {repo.root}")
