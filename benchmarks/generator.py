"""Benchmark of the scene generator: wall time and peak memory, and how models score on it.

    python benchmarks/generator.py --size 10980          # a full Sentinel-2 tile
    python benchmarks/generator.py --seasonal --size 10980
    python -m benchmarks generator --quality --size 510 --scenes 3
    python -m benchmarks generator --composite --size 510 --seed 21 --cloud-fraction 0.2

Peak RSS is the process's high-water mark (``ru_maxrss``), reported beside the RSS after
imports and the size a whole-tile in-memory approach would need (all bands as uint16), to show
that the generator streams windows rather than holding the tile.

``--quality``: the shipped models (``--models``) labelled ``--scenes`` generated scenes of each
generator (``simple``: one hand-written spectrum per class; ``seasonal``: real library spectra
and textures on a summer date and on a winter date) and are scored against the generator's
truth on clear pixels (SCL not cloud, shadow or cirrus) at CORINE level 1 and 2, with the
level-2 confusion (truth group -> predicted groups). The same scenes are also cut into
BigEarthNet-sized 120 px patches (wholly clear ones, labels = the truth codes on them) and
scored with the code that scores real patches (:mod:`earthsignature.models.patch_eval`: the
dominant class among the labels, per-class recall) plus the share of pixels whose code is
among the patch's labels; ``--real`` scores the held-out real patches
(:func:`earthsignature.generator.library.held_out`, never in the generator's library) the
same way, so generated and real data are compared on one metric.

``--composite``: one seasonal tile on six dates of a year labelled by each model, cloud
masked by SCL, folded with the composite rules; agreement with the truth of each date and of
the year composite.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from earthsignature.generator import GeneratedProduct, generate_product, library
from earthsignature.generator.product import reflectance_offset
from earthsignature.generator.spectra import BANDS
from earthsignature.models import bigearthnet, patch_eval

#: Scenes of --quality: generator style, seasonal flag and date.
QUALITY_STYLES = (
    ("simple", False, "2024-06-20"),
    ("seasonal summer", True, "2024-06-20"),
    ("seasonal winter", True, "2024-01-15"),
)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_labels(product: GeneratedProduct, model: str, threads: int) -> tuple[np.ndarray, ...]:
    """(truth, predicted codes, clear) of a generated product labelled by a shipped model."""
    from earthsignature.models import evaluate
    from earthsignature.models.repository import SHIPPED, ModelRepository
    from earthsignature.models.train import load_scene

    name, version = model.split(":")
    repo = ModelRepository(SHIPPED)
    spec = repo.spec(name, int(version))
    predict = evaluate.session_predict(repo.onnx_path(name, int(version)), spec, threads)
    scene = load_scene(
        product.bands, product.truth, list(spec.bands), offset=reflectance_offset("05.10")
    )
    pred = evaluate.predict_codes(lambda c: predict(c)[0], spec, scene.reflectance)
    cloud = evaluate.scl_cloud(product.bands["SCL"], (scene.codes.shape[0], scene.codes.shape[1]))
    clear = scene.codes != 0 if cloud is None else (scene.codes != 0) & ~cloud
    return scene.codes, pred, clear


class Tally:
    """Scores of one model on one kind of data: pixel agreement at CORINE level 1/2, the level-2
    confusion (truth group -> predicted group -> pixels), and BigEarthNet-style patch results."""

    def __init__(self) -> None:
        self.hits = [0, 0, 0]
        self.confusion: dict[int, dict[int, int]] = {}
        self.patches: list[patch_eval.PatchResult] = []
        self.label_px = [0, 0, 0]

    def add_patch(self, patch: bigearthnet.Patch, codes: np.ndarray) -> None:
        """One patch scored as model_quality scores real ones, plus the share of its pixels
        whose code is among its labels at level 1 and 2 (a pixel measure real patches allow)."""
        self.patches.append(patch_eval.score_patch(patch, codes, None))
        pred = codes.astype(np.int64)
        for i, div in enumerate((100, 10)):
            self.label_px[i] += int(np.isin(pred // div, [c // div for c in patch.labels]).sum())
        self.label_px[2] += pred.size

    def add_pixels(self, truth: np.ndarray, pred: np.ndarray) -> None:
        t, p = truth.astype(np.int64), pred.astype(np.int64)
        self.hits[0] += int(np.sum(t // 100 == p // 100))
        self.hits[1] += int(np.sum(t // 10 == p // 10))
        self.hits[2] += t.size
        pairs, counts = np.unique(np.stack([t // 10, p // 10]), axis=1, return_counts=True)
        for (tg, pg), n in zip(pairs.T, counts, strict=True):
            row = self.confusion.setdefault(int(tg), {})
            row[int(pg)] = row.get(int(pg), 0) + int(n)

    def add_patches(
        self, name: str, truth: np.ndarray, pred: np.ndarray, clear: np.ndarray
    ) -> None:
        """Cut a generated scene into BigEarthNet-sized patches and score each as a real one
        (labels: the truth codes on it); only wholly clear patches, as BigEarthNet's clear set."""
        n = bigearthnet.SIZE
        for r in range(0, truth.shape[0] - n + 1, n):
            for c in range(0, truth.shape[1] - n + 1, n):
                win = (slice(r, r + n), slice(c, c + n))
                if not clear[win].all():
                    continue
                labels = frozenset(int(v) for v in np.unique(truth[win]) if v)
                patch = bigearthnet.Patch(f"{name}_{c // n}_{r // n}", "generated",
                                          np.zeros(0), labels, False)  # fmt: skip
                self.add_patch(patch, pred[win])

    def lines(self, tag: str) -> list[str]:
        out = []
        l1, l2, n = self.hits
        if n:
            recall = {g: round(row.get(g, 0) / sum(row.values()), 2)
                      for g, row in sorted(self.confusion.items())}  # fmt: skip
            out.append(f"{tag} pixels " + json.dumps(
                {"clear_px": n, "level1": round(l1 / n, 3), "level2": round(l2 / n, 3),
                 "recall_level2": recall}))  # fmt: skip
            for group, row in sorted(self.confusion.items()):
                total = sum(row.values())
                top = sorted(row.items(), key=lambda kv: -kv[1])[:4]
                out.append(f"{tag} confusion {group} ({total} px) -> " + json.dumps(
                    {str(g): round(v / total, 2) for g, v in top}))  # fmt: skip
        if self.patches:
            s = patch_eval.summary(self.patches)
            a1, a2, m = self.label_px
            out.append(f"{tag} patches " + json.dumps(
                {"patches": s["patches"], "level1": round(s["level1"], 3),
                 "level2": round(s["level2"], 3), "px_in_labels_level1": round(a1 / m, 3),
                 "px_in_labels_level2": round(a2 / m, 3),
                 "recall_level2": {k: [round(v["recall"], 2), v["patches"]]
                                   for k, v in s["recall_level2"].items()}}))  # fmt: skip
        return out


def held_out_patches() -> list[bigearthnet.Patch]:
    """The real patches the generator's library leaves out (:data:`library.HELD_OUT`), clear."""
    band_ids = [b.id for b in BANDS]
    return [p for p in bigearthnet.patches(band_ids) if library.held_out(p) and not p.disturbed]


def real_tally(model: str, threads: int) -> Tally:
    """A model on the held-out real patches, scored as model_quality scores them."""
    from earthsignature.models import evaluate
    from earthsignature.models.repository import SHIPPED, ModelRepository

    name, version = model.split(":")
    repo = ModelRepository(SHIPPED)
    spec = repo.spec(name, int(version))
    predict = evaluate.session_predict(repo.onnx_path(name, int(version)), spec, threads)
    tally = Tally()
    order = [b.id for b in BANDS]
    for patch in held_out_patches():
        reflectance = np.stack([patch.reflectance[order.index(b)] for b in spec.bands])
        codes, *_ = patch_eval.predict_patch(predict, spec, reflectance)
        codes = patch_eval.postprocess_patch(spec, patch, codes)
        tally.add_patch(patch, codes)
    return tally


def quality(args: argparse.Namespace) -> None:
    """Per generator style and model: pixel agreement at CORINE level 1 and 2 with the level-2
    confusion, and the same scenes cut into 120 px patches scored as real BigEarthNet patches,
    beside the held-out real patches (``--real``)."""
    out = Path(tempfile.mkdtemp(prefix="earthsig-bench-"))
    models = args.models.split(",")
    try:
        for style, seasonal, date in QUALITY_STYLES:
            if args.styles and style not in args.styles.split(","):
                continue
            tallies = {m: Tally() for m in models}
            for seed in range(args.scenes):
                product = generate_product(
                    out / f"{style}-{seed}",
                    size=args.size,
                    seed=100 + seed,
                    date=date,
                    cloud_fraction=args.cloud_fraction,
                    seasonal=seasonal,
                )
                for model in models:
                    truth, pred, clear = model_labels(product, model, args.threads)
                    tallies[model].add_pixels(truth[clear], pred[clear])
                    tallies[model].add_patches(f"{style}-{seed}", truth, pred, clear)
            for model, tally in tallies.items():
                print("\n".join(tally.lines(f"{style} {date} {model}")), flush=True)
        if args.real:
            for model in models:
                print("\n".join(real_tally(model, args.threads).lines(f"real held-out {model}")))
    finally:
        shutil.rmtree(out)


#: Dates of --composite: one tile through a year.
COMPOSITE_DATES = (
    "2024-01-15", "2024-03-20", "2024-05-10", "2024-06-20", "2024-08-15", "2024-10-05",
)  # fmt: skip


def _share(labels: np.ndarray, truth: np.ndarray, level: int) -> float:
    div = 10 ** (3 - level)
    return float(np.mean(labels // div == truth // div))


def composite(args: argparse.Namespace) -> None:
    """Year composite of a model's labels of seasonal dates vs each single date, against the
    generator's land-use truth (share of all truth pixels, levels 1-3)."""
    from earthsignature.composites import rules

    out = Path(tempfile.mkdtemp(prefix="earthsig-bench-"))
    try:
        for model in args.models.split(","):
            counts: np.ndarray | None = None
            codes: list[int] = []
            singles: dict[str, list[float]] = {}
            truth = np.zeros(0)
            for date in COMPOSITE_DATES:
                product = generate_product(
                    out / date, size=args.size, seed=args.seed, date=date,
                    cloud_fraction=args.cloud_fraction, seasonal=True,
                )  # fmt: skip
                truth, pred, clear = model_labels(product, model, args.threads)
                if counts is None:
                    from earthsignature.models.repository import SHIPPED, ModelRepository

                    name, version = model.split(":")
                    spec = ModelRepository(SHIPPED).spec(name, int(version))
                    codes = sorted(int(c) for c in spec.classes)
                    counts = np.zeros((len(codes), *truth.shape), dtype=np.uint8)
                rules.add_observations(counts, codes, pred, clear & (pred != 0))
                seen = np.where(clear, pred, 0)
                singles[date] = [round(_share(seen, truth, lvl), 3) for lvl in (1, 2, 3)]
            assert counts is not None
            code = rules.compose(counts, codes).code
            for date, shares in singles.items():
                print(json.dumps({"model": model, "view": date, "level1_2_3": shares}))
            print(json.dumps({
                "model": model, "view": "year composite", "size_px": args.size,
                "level1_2_3": [round(_share(code, truth, lvl), 3) for lvl in (1, 2, 3)],
            }))  # fmt: skip
    finally:
        shutil.rmtree(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980, help="10 m pixels per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cloud-fraction", type=float, default=0.1)
    parser.add_argument("--seasonal", action="store_true", help="the seasonal generator")
    parser.add_argument("--date", default="2024-06-01")
    parser.add_argument("--out", type=Path, default=None, help="keep the product here")
    parser.add_argument("--quality", action="store_true", help="score models on scenes")
    parser.add_argument("--composite", action="store_true", help="composite vs single dates")
    parser.add_argument("--scenes", type=int, default=3, help="--quality: scenes per style")
    parser.add_argument("--styles", default="", help="--quality: only these (comma list)")
    parser.add_argument("--models", default="dynamicworld-clc:1,clc-baseline:1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--real", action="store_true", help="--quality: held-out real patches")
    args = parser.parse_args()
    if args.quality:
        quality(args)
        return
    if args.composite:
        composite(args)
        return

    out = args.out or Path(tempfile.mkdtemp(prefix="earthsig-bench-"))
    rss_before = _rss_mib()
    start = time.perf_counter()
    product = generate_product(
        out,
        size=args.size,
        seed=args.seed,
        date=args.date,
        cloud_fraction=args.cloud_fraction,
        seasonal=args.seasonal,
    )
    seconds = time.perf_counter() - start
    peak = _rss_mib()
    pixels = sum((args.size * 10 // band.resolution) ** 2 for band in BANDS)
    on_disk = sum(p.stat().st_size for p in product.directory.iterdir())
    result = {
        "size_px": args.size,
        "seconds": round(seconds, 2),
        "megapixels_per_s": round(pixels / seconds / 1e6, 1),
        "peak_rss_mib": round(peak, 1),
        "rss_after_imports_mib": round(rss_before, 1),
        "whole_tile_bands_in_memory_mib": round(pixels * 2 / 2**20, 1),
        "output_mib": round(on_disk / 2**20, 1),
    }
    print(json.dumps(result))
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
