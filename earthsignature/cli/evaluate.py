"""``earthsig evaluate``: how good a model's maps are on real labelled data.

* ``earthsig evaluate BANDS_DIR LABELS``: per-class precision, recall, IoU and the confusion
  matrix on an image + CORINE label raster pair, and a validation panel PNG. The reflectance
  offset comes from the scene (``--item`` STAC item, or an ``MTD_MSIL2A.xml`` / ``*.json`` item
  in BANDS_DIR); ``--offset`` overrides; with none of them the command refuses, because a wrong
  offset halves the accuracy silently.
* ``earthsig evaluate --bigearthnet``: patch-level accuracy on the BigEarthNet samples of
  ``configilm`` (extra "eval"): is the dominant predicted class among the patch's CORINE labels
  at levels 1, 2 and 3; per-class recall; clear and snow/cloud/shadow patches apart.

Both print a short summary; ``--json`` writes the full result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from earthsignature.errors import EarthSignatureError
from earthsignature.settings import load_settings


class EvaluationError(EarthSignatureError):
    """Bad input to ``earthsig evaluate`` (one line on the CLI)."""


def _scene_offset(bands_dir: Path, item: Path | None, bands: list[str]) -> float | None:
    """The reflectance offset the scene states (STAC item or MTD_MSIL2A.xml), else None."""
    from earthsignature.functions.stac import boa_add_offsets, from_stac_item

    items = [item] if item is not None else sorted(bands_dir.glob("*.json"))
    for path in items:
        try:
            product = from_stac_item(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            if item is not None:
                raise EvaluationError(f"{path}: not a Sentinel-2 L2A STAC item ({exc})") from exc
            continue
        offsets = {product.assets[b].offset for b in bands if b in product.assets}
        if len(offsets) > 1:
            raise EvaluationError(f"{path}: bands have different offsets {sorted(offsets)}")
        if offsets:
            return offsets.pop()
    mtd = bands_dir / "MTD_MSIL2A.xml"
    if mtd.is_file():
        found = set(boa_add_offsets(mtd.read_bytes()).values())
        if len(found) > 1:
            raise EvaluationError(f"{mtd}: bands have different BOA_ADD_OFFSET {sorted(found)}")
        return found.pop() * 1e-4 if found else 0.0
    return None


def _scene(
    bands_dir: Path,
    labels: Path,
    offset: float | None,
    item: Path | None,
    panel_path: Path | None,
    as_json: Path | None,
) -> None:
    import rasterio

    from earthsignature.models import evaluate
    from earthsignature.models.repository import repository_for
    from earthsignature.models.runners import EmbeddedRunner
    from earthsignature.models.train import load_scene

    settings = load_settings()
    runner = EmbeddedRunner(
        repository_for(settings.model_repository),
        settings.model_name,
        settings.model_version,
        threads=settings.inference_threads,
    )
    spec = runner.spec
    if offset is None:
        offset = _scene_offset(bands_dir, item, spec.bands)
    if offset is None:
        raise EvaluationError(
            f"no reflectance offset for {bands_dir}: give --item (STAC item), put "
            "MTD_MSIL2A.xml beside the bands, or pass --offset (-0.1 from baseline 04.00, else 0)"
        )
    missing = [b for b in spec.bands if not (bands_dir / f"{b}.tif").is_file()]
    if missing:
        raise EvaluationError(f"{bands_dir} lacks {', '.join(f'{b}.tif' for b in missing)}")
    scene = load_scene(
        {b: bands_dir / f"{b}.tif" for b in spec.bands}, labels, spec.bands, offset=offset
    )
    with rasterio.open(labels) as ds:
        crs, transform = ds.crs, ds.transform
    pred = evaluate.predict_codes(
        lambda c: runner.predict(c).classes, spec, scene.reflectance, crs, transform
    )
    cloud = evaluate.scl_cloud(bands_dir / "SCL.tif", (pred.shape[0], pred.shape[1]))
    if cloud is not None:
        pred = np.where(cloud, np.uint16(0), pred)
    result: dict[str, Any] = {"model": spec.name, "version": spec.version, "offset": offset}
    result |= evaluate.scores(scene.codes, pred)
    click.echo(evaluate.summary_line(result))
    if as_json is not None:
        as_json.write_text(json.dumps(result, indent=2) + "\n")
    if panel_path is not None:
        rgb_bands = [b for b in ("B04", "B03", "B02") if b in spec.bands]
        rgb = (
            evaluate.true_colour(scene.reflectance, spec.bands)
            if len(rgb_bands) == 3
            else np.zeros((*pred.shape, 3), np.uint8)
        )
        try:
            evaluate.panel(
                rgb, scene.codes, pred, panel_path, title=f"{spec.name} v{spec.version}",
                cloud=cloud,
            )  # fmt: skip
        except ImportError as exc:
            raise EvaluationError(str(exc)) from exc


def _bigearthnet(as_json: Path | None) -> None:
    from earthsignature.models import bigearthnet, evaluate, patch_eval
    from earthsignature.models.repository import repository_for

    settings = load_settings()
    repo = repository_for(settings.model_repository)
    spec = repo.spec(settings.model_name, settings.model_version)
    predict = evaluate.session_predict(
        repo.onnx_path(spec.name, spec.version), spec, settings.inference_threads
    )
    try:
        patches = bigearthnet.patches(spec.bands)
    except FileNotFoundError as exc:
        raise EvaluationError(str(exc)) from exc
    except ImportError as exc:
        raise EvaluationError(
            f"{exc.name}: BigEarthNet needs pip install 'earthsignature[eval]'"
        ) from exc
    results = [patch_eval.evaluate_patch(predict, spec, p) for p in patches]
    result: dict[str, Any] = {"model": spec.name, "version": spec.version}
    result |= {"data": bigearthnet.CREDIT} | patch_eval.report(results)
    for group in ("clear", "snow_cloud_shadow"):
        part = result[group]
        if part["patches"]:
            conf = part["mean_confidence"]
            click.echo(
                f"{spec.name} v{spec.version} BigEarthNet {group}: {part['patches']} patches, "
                f"dominant class right at level 1/2/3: {part['level1']:.0%} / "
                f"{part['level2']:.0%} / {part['level3']:.0%}"
                + (f", mean confidence {conf:.0f} %" if conf is not None else "")
            )
    if as_json is not None:
        as_json.write_text(json.dumps(result, indent=2) + "\n")


@click.command("evaluate")
@click.argument(
    "bands_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.argument(
    "labels", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--offset",
    type=float,
    default=None,
    help="Reflectance offset (-0.1 from baseline 04.00); default: the scene's own.",
)
@click.option(
    "--item",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="STAC item of the scene (its raster:bands offset or processing baseline).",
)
@click.option(
    "--panel", "panel_path", type=click.Path(path_type=Path), help="Write the PNG panel here."
)
@click.option(
    "--bigearthnet",
    is_flag=True,
    help="Patch-level evaluation on configilm's BigEarthNet samples instead of a scene.",
)
@click.option("--json", "as_json", type=click.Path(path_type=Path), help="Write the full result.")
def command(
    bands_dir: Path | None,
    labels: Path | None,
    offset: float | None,
    item: Path | None,
    panel_path: Path | None,
    bigearthnet: bool,
    as_json: Path | None,
) -> None:
    """BANDS_DIR holds <band>.tif (any resolution); LABELS is a uint16 CORINE raster. The
    model is EARTHSIG_MODEL_NAME / EARTHSIG_MODEL_VERSION."""
    if bigearthnet:
        if bands_dir is not None:
            raise click.UsageError("--bigearthnet takes no BANDS_DIR or LABELS")
        _bigearthnet(as_json)
        return
    if bands_dir is None or labels is None:
        raise click.UsageError("give BANDS_DIR and LABELS, or --bigearthnet")
    _scene(bands_dir, labels, offset, item, panel_path, as_json)
