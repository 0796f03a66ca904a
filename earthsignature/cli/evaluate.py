"""``earthsig evaluate``: per-class precision, recall, IoU and confusion matrix of a model on
an image + CORINE label raster pair, and a validation panel PNG."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from earthsignature.settings import load_settings


@click.command("evaluate")
@click.argument("bands_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("labels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--offset",
    default=0.0,
    show_default=True,
    help="Reflectance offset (-0.1 from baseline 04.00).",
)
@click.option(
    "--panel", "panel_path", type=click.Path(path_type=Path), help="Write the PNG panel here."
)
def command(bands_dir: Path, labels: Path, offset: float, panel_path: Path | None) -> None:
    """BANDS_DIR holds <band>.tif (any resolution); LABELS is a uint16 CORINE raster."""
    from earthsignature.models import evaluate
    from earthsignature.models.repository import repository_for
    from earthsignature.models.runners import EmbeddedRunner
    from earthsignature.models.train import load_scene

    settings = load_settings()
    repo = repository_for(settings.model_repository)
    runner = EmbeddedRunner(
        repo, settings.model_name, settings.model_version, threads=settings.inference_threads
    )
    spec = runner.spec
    scene = load_scene(
        {b: bands_dir / f"{b}.tif" for b in spec.bands}, labels, spec.bands, offset=offset
    )
    pred = evaluate.predict_codes(lambda c: runner.predict(c).classes, spec, scene.reflectance)
    result = evaluate.scores(scene.codes, pred)
    click.echo(json.dumps({"model": spec.name, "version": spec.version, **result}, indent=2))
    if panel_path is not None:
        rgb_bands = [b for b in ("B04", "B03", "B02") if b in spec.bands]
        rgb = (
            evaluate.true_colour(scene.reflectance, spec.bands)
            if len(rgb_bands) == 3
            else np.zeros((*pred.shape, 3), np.uint8)
        )
        evaluate.panel(rgb, scene.codes, pred, panel_path, title=f"{spec.name} v{spec.version}")
