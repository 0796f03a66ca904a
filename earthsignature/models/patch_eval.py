"""Patch-level evaluation against CORINE multi-labels (BigEarthNet): is the dominant predicted
class among a patch's labels at CORINE level 1, 2 and 3, per-class recall, mean confidence;
clear patches and snow/cloud/shadow patches reported apart.

A patch is predicted the way the pipeline predicts a tile (overlap-tiled chips), after
mirroring ``margin`` pixels around it so that its border pixels see land, not the zero fill a
tile's outer edge gets. The model's declared post-processing (``sea``: inland water outside
the land polygons -> 523) runs on it as in the pipeline, placed by the patch's georeference
(:func:`~earthsignature.models.bigearthnet.georeference`). Per-class recall (level 2): among
the patches labelled with a level-2 class, the share whose prediction covers at least
:data:`PRESENT` of the patch with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from earthsignature import corine
from earthsignature.models import seamask
from earthsignature.models.bigearthnet import Patch
from earthsignature.models.chips import ChipGrid, predict_tiled_outputs
from earthsignature.models.spec import ModelSpec

#: Share of a patch a predicted level-2 class must cover to count as found (per-class recall).
PRESENT = 0.10
LEVELS = (1, 2, 3)
_DIVISOR = {1: 100, 2: 10, 3: 1}

Predict = Callable[[np.ndarray], Sequence[np.ndarray]]


@dataclass(frozen=True)
class PatchResult:
    """The prediction summarised for one patch."""

    name: str
    dataset: str
    disturbed: bool
    labels: frozenset[int]
    dominant: int
    right: dict[int, bool]  # level -> dominant class among the labels at that level
    level2_shares: dict[int, float]
    confidence: float | None  # mean winning-class probability (percent), if the model has it
    georeferenced: bool = False  # whether post-processing could place the patch


def in_labels(code: int, labels: Iterable[int], level: int) -> bool:
    """Whether ``code`` agrees with one of ``labels`` at CORINE ``level`` (1, 2 or 3)."""
    div = _DIVISOR[level]
    return code // div in {c // div for c in labels}


def predict_patch(predict: Predict, spec: ModelSpec, reflectance: np.ndarray) -> list[np.ndarray]:
    """Outputs (codes first, then any further output such as confidence) over one patch."""
    pad = spec.margin
    mirrored = np.pad(reflectance, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    image = spec.normalise(mirrored)
    _, h, w = image.shape
    # One chip just large enough for the patch (the model takes any size that is a multiple of
    # its stride): a 512 px chip would spend most of its time on padding around 120 px.
    fitted = -(-(max(h, w) + 2 * pad) // spec.stride_multiple) * spec.stride_multiple
    grid = ChipGrid(h, w, min(spec.chip_size, fitted), pad)
    outs = predict_tiled_outputs(predict, image, grid)
    outs = [o[pad : pad + reflectance.shape[1], pad : pad + reflectance.shape[2]] for o in outs]
    return [spec.code_lut()[outs[0]], *outs[1:]]


def postprocess_patch(spec: ModelSpec, patch: Patch, codes: np.ndarray) -> np.ndarray:
    """The model's declared post-processing (``sea``) on a patch's codes, placed by the
    patch's georeference; unchanged for a patch without one."""
    return seamask.postprocess(spec.postprocess, codes, patch.crs, patch.transform)


def evaluate_patch(predict: Predict, spec: ModelSpec, patch: Patch) -> PatchResult:
    """One patch predicted as the pipeline would, post-processing included, and scored."""
    codes, *rest = predict_patch(predict, spec, patch.reflectance)
    return score_patch(patch, postprocess_patch(spec, patch, codes), rest[0] if rest else None)


def score_patch(patch: Patch, codes: np.ndarray, confidence: np.ndarray | None) -> PatchResult:
    """The dominant class of ``codes`` against the patch's labels, and level-2 shares."""
    values, counts = np.unique(codes, return_counts=True)
    dominant = int(values[np.argmax(counts)])
    level2, counts2 = np.unique(codes // 10, return_counts=True)
    shares = {int(c): float(n) / codes.size for c, n in zip(level2, counts2, strict=True)}
    return PatchResult(
        patch.name,
        patch.dataset,
        patch.disturbed,
        patch.labels,
        dominant,
        {level: in_labels(dominant, patch.labels, level) for level in LEVELS},
        shares,
        float(confidence.mean()) if confidence is not None else None,
        patch.crs is not None,
    )


def summary(results: Sequence[PatchResult]) -> dict[str, Any]:
    """Accuracy of the dominant class per level, mean confidence and per-class recall."""
    if not results:
        return {"patches": 0}
    out: dict[str, Any] = {
        "patches": len(results),
        "georeferenced": sum(r.georeferenced for r in results),
    }
    for level in LEVELS:
        out[f"level{level}"] = float(np.mean([r.right[level] for r in results]))
    confidences = [r.confidence for r in results if r.confidence is not None]
    out["mean_confidence"] = float(np.mean(confidences)) if confidences else None
    recall: dict[str, dict[str, float | int]] = {}
    for cls in sorted({c // 10 for r in results for c in r.labels}):
        labelled = [r for r in results if cls in {c // 10 for c in r.labels}]
        found = [r.level2_shares.get(cls, 0.0) >= PRESENT for r in labelled]
        recall[str(cls)] = {"patches": len(labelled), "recall": float(np.mean(found))}
    out["recall_level2"] = recall
    return out


def report(results: Sequence[PatchResult]) -> dict[str, Any]:
    """:func:`summary` of the clear and of the snow/cloud/shadow patches, overall and per
    dataset, plus one line per patch."""
    groups: dict[str, Any] = {}
    for dataset in sorted({r.dataset for r in results}):
        for disturbed, tag in ((False, "clear"), (True, "snow_cloud_shadow")):
            part = [r for r in results if r.dataset == dataset and r.disturbed == disturbed]
            if part:
                groups[f"{dataset} {tag}"] = summary(part)
    return {
        "clear": summary([r for r in results if not r.disturbed]),
        "snow_cloud_shadow": summary([r for r in results if r.disturbed]),
        "groups": groups,
        "patches": [
            {
                "name": r.name,
                "dataset": r.dataset,
                "disturbed": r.disturbed,
                "labels": sorted(r.labels),
                "dominant": r.dominant,
                "dominant_label": corine.clc_class(r.dominant).label
                if corine.is_code(r.dominant)
                else "no data",
                **{f"level{level}": r.right[level] for level in LEVELS},
                "confidence": r.confidence,
                "georeferenced": r.georeferenced,
            }
            for r in results
        ],
    }
