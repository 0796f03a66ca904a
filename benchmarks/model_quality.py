"""Model quality on real labelled data, models side by side: BigEarthNet patches (dominant class
right at CORINE level 1/2/3, clear and snow/cloud/shadow apart), Boadella water IoU on both
dates with the mean confidence (haze), and the 29RKH desert tile.

    python -m benchmarks model_quality [--models dynamicworld-clc:1,clc-baseline:1]

Data: the BigEarthNet samples of the configilm==0.7.1 wheel (EARTHSIG_BIGEARTHNET, see
earthsignature/models/bigearthnet.py; BigEarthNet, TU Berlin, CDLA-Permissive-1.0) and
../shared/data (Boadella: earthpulse/eotdl, MIT; 29RKH: Copernicus Sentinel data 2020).
The CORINE rules of dynamicworld-clc were set from BigEarthNet v1 only; v2 is held out. A model
declaring post-processing (``sea``, models/seamask.py) is scored with it and, on BigEarthNet,
also without it on the same predictions ("without sea" lines), so its effect reads directly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
from rasterio.enums import Resampling
from rasterio.transform import Affine

from earthsignature.models import bigearthnet, evaluate, patch_eval, seamask
from earthsignature.models.chips import ChipGrid, predict_tiled_outputs
from earthsignature.models.repository import SHIPPED, ModelRepository
from earthsignature.models.spec import ModelSpec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "s2"
BOADELLA_ORDER = [
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
]  # fmt: skip
BOADELLA = [("2020-01-13", "2020-01-13"), ("2020-01-28", "2020-02-02")]


def scene_outputs(
    predict: patch_eval.Predict,
    spec: ModelSpec,
    reflectance: np.ndarray,
    crs: object,
    transform: Affine,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes (post-processed as the model declares) and (when the model has it) confidence
    over a whole in-memory scene."""
    _, h, w = reflectance.shape
    image = spec.normalise(reflectance)
    outs = predict_tiled_outputs(predict, image, ChipGrid.for_spec(spec, h, w))
    codes = seamask.postprocess(spec.postprocess, spec.code_lut()[outs[0]], crs, transform)
    return codes, (outs[1] if len(outs) > 1 else None)


def boadella(predict: patch_eval.Predict, spec: ModelSpec) -> dict[str, object]:
    out: dict[str, object] = {}
    for image, labels in BOADELLA:
        folder = SHARED / "boadella"
        with rasterio.open(folder / f"Boadella_{image}.tif") as ds:
            stack = ds.read().astype(np.float32) * np.float32(1e-4)
            shape, transform, crs = (ds.height, ds.width), ds.transform, ds.crs
        reflectance = np.stack([stack[BOADELLA_ORDER.index(b)] for b in spec.bands])
        polygons = json.loads((folder / f"Boadella_{labels}_labels.geojson").read_text())
        water = rasterio.features.rasterize(
            [(f["geometry"], 1) for f in polygons["features"]], out_shape=shape, transform=transform
        ).astype(bool)
        codes, confidence = scene_outputs(predict, spec, reflectance, crs, transform)
        wet = codes // 100 == 5
        iou = float((wet & water).sum() / (wet | water).sum())
        entry: dict[str, object] = {"water_iou": round(iou, 3)}
        entry["water_codes"] = {
            int(c): int(n) for c, n in zip(*np.unique(codes[wet], return_counts=True), strict=True)
        }
        values, counts = np.unique(codes[~water], return_counts=True)
        top = sorted(zip(values, counts, strict=True), key=lambda vc: -vc[1])[:3]
        entry["land_top"] = {int(v): round(float(c) / (~water).sum(), 3) for v, c in top}
        if confidence is not None:
            entry["mean_confidence"] = round(float(confidence.mean()), 1)
            entry["share_below_50"] = round(float((confidence < 50).mean()), 3)
        out[image] = entry
    return out


def desert(predict: patch_eval.Predict, spec: ModelSpec) -> dict[str, object]:
    folder = SHARED / "S2A_29RKH_20200219_L2A"
    layers = []
    for band in spec.bands:
        with rasterio.open(folder / f"{band}.tif") as ds:
            data = ds.read(1, out_shape=(1098, 1098), resampling=Resampling.bilinear)
            layers.append(data.astype(np.float32) * np.float32(1e-4))
            crs = ds.crs
            transform = ds.transform @ Affine.scale(ds.width / 1098, ds.height / 1098)
    codes, confidence = scene_outputs(predict, spec, np.stack(layers), crs, transform)
    entry: dict[str, object] = {
        "share_33x": round(float((codes // 10 == 33).mean()), 3),
        "share_523": round(float((codes == seamask.SEA).mean()), 3),
    }
    if confidence is not None:
        entry["mean_confidence"] = round(float(confidence.mean()), 1)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="dynamicworld-clc:1,clc-baseline:1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="Write every patch's result here.")
    args = parser.parse_args()
    repo = ModelRepository(SHIPPED)
    full = {}
    for item in args.models.split(","):
        name, version = item.split(":")
        spec = repo.spec(name, int(version))
        predict = evaluate.session_predict(repo.onnx_path(name, int(version)), spec, args.threads)
        raw, post = [], []
        for patch in bigearthnet.patches(spec.bands):
            codes, *rest = patch_eval.predict_patch(predict, spec, patch.reflectance)
            confidence = rest[0] if rest else None
            raw.append(patch_eval.score_patch(patch, codes, confidence))
            codes = patch_eval.postprocess_patch(spec, patch, codes)
            post.append(patch_eval.score_patch(patch, codes, confidence))
        report = patch_eval.report(post)
        full[item] = report
        runs = [("", report)]
        if spec.postprocess:  # the same predictions without the post-processing, for comparison
            runs.insert(0, (" without " + "+".join(spec.postprocess), patch_eval.report(raw)))
        for tag, rep in runs:
            for group, part in [("all clear", rep["clear"]), *rep["groups"].items()]:
                if part["patches"]:
                    print(f"{item}{tag} BigEarthNet {group}", json.dumps({
                        k: (round(v, 3) if isinstance(v, float) else v)
                        for k, v in part.items() if k != "recall_level2"
                    }))  # fmt: skip
        recall = {k: v["recall"] for k, v in report["clear"]["recall_level2"].items()}
        print(
            f"{item} recall_level2 (clear)", json.dumps({k: round(v, 2) for k, v in recall.items()})
        )
        for date, entry in boadella(predict, spec).items():
            print(f"{item} Boadella {date}", json.dumps(entry))
        print(f"{item} 29RKH", json.dumps(desert(predict, spec)))
    if args.json:
        args.json.write_text(json.dumps(full, indent=1) + "\n")


if __name__ == "__main__":
    main()
