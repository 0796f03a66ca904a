"""Evaluate a model on Sentinel-2 image + CORINE label rasters: per-class precision, recall,
IoU, a confusion matrix in CORINE codes, and a validation panel (true colour, truth,
prediction in CLC colours, cloud in grey). matplotlib (extra "evaluate") is imported only for the
panel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import Affine

from earthsignature import corine
from earthsignature.models import seamask
from earthsignature.models.chips import ChipGrid, predict_tiled
from earthsignature.models.spec import ModelSpec

#: Scene classification (SCL) values that are cloud or cloud shadow.
SCL_CLOUD = (3, 8, 9, 10)
CLOUD_RGB = (190, 190, 190)


def _rgb(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """0..255 RGB as matplotlib's 0..1 floats."""
    return (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)


def predict_codes(
    predict: Callable[[np.ndarray], np.ndarray],
    spec: ModelSpec,
    reflectance: np.ndarray,
    crs: Any | None = None,
    transform: Affine | None = None,
) -> np.ndarray:
    """Overlap-tiled prediction of an in-memory reflectance image ``[bands, H, W]`` as codes,
    with the model's declared post-processing (``sea``) when the image's georeference
    (``crs``, ``transform``) is given, as the pipeline's stitch stage does."""
    _, h, w = reflectance.shape
    valid = (reflectance > 0).all(axis=0)
    image = spec.normalise(reflectance)
    image[:, ~valid] = 0.0
    classes = predict_tiled(predict, image, ChipGrid.for_spec(spec, h, w))
    codes = np.where(valid, spec.code_lut()[classes], np.uint16(corine.NODATA))
    return seamask.postprocess(spec.postprocess, codes, crs, transform)


def session_predict(
    onnx_file: Path, spec: ModelSpec, threads: int
) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Every declared output (``spec.outputs``: classes, then confidence) of a model's graph on
    normalised chips, through onnxruntime (evaluation; the pipeline uses the runners)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def predict(chips: np.ndarray) -> list[np.ndarray]:
        return list(session.run(spec.outputs, {input_name: chips.astype(np.float32)}))

    return predict


def scl_cloud(scl: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """Cloud and cloud-shadow mask from a scene classification raster on ``shape`` (None when
    the scene has no SCL.tif)."""
    if not scl.is_file():
        return None
    with rasterio.open(scl) as ds:
        values = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    return np.isin(values, SCL_CLOUD)


def summary_line(result: dict[str, Any]) -> str:
    """One line: model, accuracy and the three largest classes' IoU."""
    classes = sorted(result["classes"].items(), key=lambda kv: -kv[1]["pixels"])[:3]
    ious = ", ".join(f"{code} IoU {c['iou']:.2f}" for code, c in classes)
    return (
        f"{result['model']} v{result['version']}: pixel accuracy {result['accuracy']:.2f} "
        f"(offset {result.get('offset', 0.0):g}); {ious}"
    )


def confusion(truth: np.ndarray, pred: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Codes present (truth or prediction, 0 excluded) and the matrix [truth, prediction]."""
    keep = (truth != corine.NODATA) & (pred != corine.NODATA)
    codes = sorted(
        {int(c) for c in np.unique(truth[keep])} | {int(c) for c in np.unique(pred[keep])}
    )
    index = {c: i for i, c in enumerate(codes)}
    lut = np.zeros(65536, dtype=np.int64)
    for c, i in index.items():
        lut[c] = i
    flat = lut[truth[keep]] * len(codes) + lut[pred[keep]]
    matrix = np.bincount(flat, minlength=len(codes) ** 2).reshape(len(codes), len(codes))
    return codes, matrix


def scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Per-class precision, recall and IoU plus the confusion matrix (rows: truth)."""
    codes, matrix = confusion(truth, pred)
    tp = np.diag(matrix).astype(float)
    per_class = {}
    for i, code in enumerate(codes):
        fp, fn = matrix[:, i].sum() - tp[i], matrix[i, :].sum() - tp[i]
        per_class[code] = {
            "label": corine.clc_class(code).label,
            "precision": tp[i] / (tp[i] + fp) if tp[i] + fp else 0.0,
            "recall": tp[i] / (tp[i] + fn) if tp[i] + fn else 0.0,
            "iou": tp[i] / (tp[i] + fp + fn) if tp[i] + fp + fn else 0.0,
            "pixels": int(matrix[i, :].sum()),
        }
    accuracy = float(tp.sum() / matrix.sum()) if matrix.sum() else 0.0
    return {
        "codes": codes,
        "confusion": matrix.tolist(),
        "classes": per_class,
        "accuracy": accuracy,
    }


def clc_rgb(codes: np.ndarray) -> np.ndarray:
    """CORINE codes -> RGB uint8 in the official CLC colours (no data white)."""
    palette = np.full((65536, 3), 255, dtype=np.uint8)
    for code, cls in corine.CLASSES.items():
        palette[code] = cls.rgb
    return palette[codes]


def panel(
    true_colour: np.ndarray,
    truth: np.ndarray,
    pred: np.ndarray,
    path: Path,
    title: str = "",
    cloud: np.ndarray | None = None,
) -> None:
    """PNG: true colour input, ground truth and prediction side by side, with a legend below
    the images (never over them); ``cloud`` pixels are drawn grey in the prediction."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "the panel needs matplotlib: pip install 'earthsignature[evaluate]'"
        ) from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    present = sorted(
        {int(c) for c in np.unique(np.concatenate([truth.ravel(), pred.ravel()]))} - {0}
    )
    rows = -(-(len(present) + 1) // 3)
    legend_inches = 0.25 * rows + 0.3
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.0 + legend_inches))
    predicted = clc_rgb(pred)
    if cloud is not None:
        predicted[cloud] = CLOUD_RGB
    for ax, img, name in zip(
        axes,
        (true_colour, clc_rgb(truth), predicted),
        ("Sentinel-2 (true colour)", "Ground truth", "Prediction"),
        strict=True,
    ):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    handles = [
        Patch(
            color=corine.clc_class(c).hex,
            label=f"{c} {corine.clc_class(c).label[:40]}",
        )
        for c in present
    ]
    if cloud is not None and cloud.any():
        handles.append(Patch(color=_rgb(CLOUD_RGB), label="cloud or shadow (SCL)"))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, legend_inches / (5.0 + legend_inches), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def true_colour(reflectance: np.ndarray, band_ids: list[str]) -> np.ndarray:
    """RGB uint8 from B04/B03/B02 reflectance, stretched to 0..0.3."""
    rgb = np.stack([reflectance[band_ids.index(b)] for b in ("B04", "B03", "B02")], axis=-1)
    return (np.clip(rgb / 0.3, 0, 1) * 255).astype(np.uint8)
