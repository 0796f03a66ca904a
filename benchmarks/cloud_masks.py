"""Cloud masks compared on real data: SCL, ukis-csmask's learned U-Net, and their union.

    pip install -e ".[cloudbench]"      # ukis-csmask, lmdb, pyarrow
    pip download --no-deps configilm==0.7.1 -d /tmp/cfg   # BigEarthNet mock patches (no deps!)
    python -m benchmarks cloud_masks --configilm /tmp/cfg/configilm-0.7.1-py3-none-any.whl

1. 29RKH 2020-02-19 (../shared/data/s2, cirrus) and Boadella 2020-01-13 / 01-28 (hazy):
   cloud percent of valid pixels by each method, and agreement of the learned mask with SCL.
2. configilm's BigEarthNet v2 patches (120 x 120 px, real L2A): patches flagged cloud or shadow
   against clear ones. A patch is *detected* when the learned mask covers >= ``--patch-min``
   percent of it (fixed before looking at the results). BigEarthNet has no SCL, so only the
   learned mask is scored there. The 40 x 40 px patch (30 m) is mirrored out to one chip.
3. Cost: seconds per 256 x 256 chip through the embedded runner, extrapolated to a full
   10980 x 10980 tile at 30 m and 60 m with the chip geometry the cloud stage uses.

The mask is the one the cloud stage makes: chips of the model's geometry (:mod:`chips`),
reflectance averaged onto the coarse grid, normalised by the model's spec. The BigEarthNet
reader here is private to the benchmark; once the package has one
(earthsignature/models/bigearthnet.py, issue 15a) this should use it.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from scipy import ndimage

from earthsignature.functions import cloudlearned, cloudmask
from earthsignature.functions.chips import ChipGrid, centre
from earthsignature.models.csmask import import_csmask
from earthsignature.models.repository import ModelRepository
from earthsignature.models.runners import EmbeddedRunner
from earthsignature.models.spec import CANONICAL_BANDS

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "s2"
BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
#: Pixels (of the scene's grid) beyond which a learned-only cloud is not an SCL cloud's edge.
FAR_PX = 20


def learned(runner: EmbeddedRunner, reflectance: np.ndarray) -> np.ndarray:
    """Class map (0 clear, 1 cloud, 2 shadow) of reflectance ``[6, H, W]`` on its own grid,
    chipped as the cloud stage does (:func:`cloudlearned.write_classes`): overlapping chips,
    the image mirrored past its edges."""
    spec = runner.spec
    image = spec.normalise(reflectance)
    _, height, width = image.shape
    grid = ChipGrid.for_spec(spec, height, width)
    step, margin, size = grid.step, grid.margin, grid.chip_size
    rows, cols = grid.n_rows * step, grid.n_cols * step
    pad = ((0, 0), (margin, rows + margin - height), (margin, cols + margin - width))
    padded = np.pad(image, pad, mode="symmetric")
    out = np.zeros((rows, cols), dtype=np.uint8)
    for r in range(grid.n_rows):
        chips = np.stack(
            [
                padded[:, r * step : r * step + size, c * step : c * step + size]
                for c in range(grid.n_cols)
            ]
        )
        batch = spec.max_batch_size
        classes = np.concatenate(
            [
                cloudlearned.predict_classes(runner, chips[i : i + batch])
                for i in range(0, len(chips), batch)
            ]
        )
        out[r * step : (r + 1) * step] = np.concatenate(list(centre(classes, margin)), axis=1)
    return out[:height, :width]


def upsample_to(classes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    factor = -(-shape[0] // classes.shape[0])
    return cloudmask.upsample(classes, factor)[: shape[0], : shape[1]]


def scene_29rkh(runner: EmbeddedRunner, metres: int) -> dict[str, Any]:
    """The shared copy of 29RKH is the whole tile at 100 m: the mask runs at max(metres, 100)."""
    folder = DATA / "S2A_29RKH_20200219_L2A"
    item = json.loads(next(folder.glob("*.json")).read_text())
    assets = item.get("assets", {})
    with rasterio.open(folder / "SCL.tif") as scl_ds, rasterio.open(folder / "B02.tif") as ref:
        height, width = ref.height, ref.width
        factor = max(1, round(metres / ref.res[0]))
        scl = scl_ds.read(1, out_shape=(height, width), resampling=Resampling.nearest)
    coarse = (-(-height // factor), -(-width // factor))
    bands = []
    for band in BANDS:
        with rasterio.open(folder / f"{band}.tif") as ds:
            dn = ds.read(1, out_shape=coarse, resampling=Resampling.average).astype(np.float32)
        meta = assets.get(band) or {}
        bands.append(dn * float(meta.get("scale") or 1e-4) + float(meta.get("offset") or 0.0))
    start = time.perf_counter()
    classes = learned(runner, np.stack(bands))
    seconds = time.perf_counter() - start
    return compare("29RKH 2020-02-19", scl, upsample_to(classes, (height, width)), seconds)


def compare(
    label: str, scl: np.ndarray | None, classes: np.ndarray, seconds: float
) -> dict[str, Any]:
    valid = cloudmask.valid_mask(scl) if scl is not None else np.ones(classes.shape, bool)
    learned_cloud = cloudlearned.cloud_of(classes) & valid
    row: dict[str, Any] = {
        "scene": label,
        "pixels": int(valid.sum()),
        "learned_cloud_pct": round(100 * learned_cloud.sum() / max(valid.sum(), 1), 2),
        "learned_shadow_pct": round(100 * ((classes == 2) & valid).sum() / max(valid.sum(), 1), 2),
        "learned_seconds": round(seconds, 1),
    }
    if scl is not None:
        scl_cloud = np.isin(scl, cloudmask.CLOUD_CLASSES) & valid
        only = learned_cloud & ~scl_cloud
        n = max(valid.sum(), 1)
        row |= {
            "scl_cloud_pct": round(100 * scl_cloud.sum() / n, 2),
            "scl_cirrus_pct": round(100 * (scl == 10).sum() / n, 2),
            "both_pct": round(100 * (scl_cloud | learned_cloud).sum() / n, 2),
            "agree_pct": round(100 * ((scl_cloud == learned_cloud) & valid).sum() / n, 2),
            "scl_cloud_also_learned_pct": round(
                100 * (scl_cloud & learned_cloud).sum() / max(scl_cloud.sum(), 1), 1
            ),
            "learned_outside_scl_pct": round(100 * (learned_cloud & ~scl_cloud).sum() / n, 2),
            # of those, the share farther than FAR_PX from any SCL cloud (not a cloud's edge)
            "of_which_far_pct": round(
                100
                * (only & ~ndimage.binary_dilation(scl_cloud, iterations=FAR_PX)).sum()
                / max(only.sum(), 1),
                1,
            ),
            "of_which_on_scl_bare_soil_pct": round(
                100 * (only & (scl == 5)).sum() / max(only.sum(), 1), 1
            ),
        }
    return row


#: Band order of the Boadella GeoTIFFs (they carry no band descriptions; no SCL either).
BOADELLA_ORDER = CANONICAL_BANDS


def boadella(runner: EmbeddedRunner, path: Path, factor: int) -> dict[str, Any]:
    with rasterio.open(path) as ds:
        coarse = (-(-ds.height // factor), -(-ds.width // factor))
        dn = ds.read(
            [BOADELLA_ORDER.index(b) + 1 for b in BANDS],
            out_shape=(len(BANDS), *coarse),
            resampling=Resampling.average,
        ).astype(np.float32)
        shape = (ds.height, ds.width)
    start = time.perf_counter()
    classes = learned(runner, dn * np.float32(1e-4))
    seconds = time.perf_counter() - start
    return compare(f"Boadella {path.stem[-10:]}", None, upsample_to(classes, shape), seconds)


def mirrored(runner: EmbeddedRunner, reflectance: np.ndarray) -> np.ndarray:
    """Classes of a patch smaller than a chip, mirrored out to the chip size: padding with
    the band means (what a tile border gets) would put a bright, cloud-like frame around
    a 40 x 40 patch and the U-Net calls dark forest cloud (9 of 18 clear patches)."""
    spec = runner.spec
    image = spec.normalise(reflectance)
    h, w = image.shape[1:]
    top, left = (spec.chip_size - h) // 2, (spec.chip_size - w) // 2
    pad = ((0, 0), (top, spec.chip_size - h - top), (left, spec.chip_size - w - left))
    chip = np.pad(image, pad, mode="symmetric")[None]
    return cloudlearned.predict_classes(runner, chip)[0, top : top + h, left : left + w]


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of one safetensors blob (8-byte header length, JSON header, raw data)."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    dtypes = {
        "U16": np.uint16,
        "I16": np.int16,
        "F32": np.float32,
        "U8": np.uint8,
        "F64": np.float64,
    }
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[8 + length + start : 8 + length + end]
        out[name] = np.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def bigearthnet(
    runner: EmbeddedRunner, wheel: Path, factor: int, patch_min: float
) -> list[dict[str, Any]]:
    import lmdb
    import pyarrow.parquet as pq

    prefix = "configilm/extra/mock_data/BENv2/"
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(prefix):
                zf.extract(name, tmp)
        root = Path(tmp) / prefix
        meta = pq.read_table(root / "metadata.parquet").to_pylist()
        extra = pq.read_table(
            root / "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
        ).to_pylist()
        env = lmdb.open(str(root / "BigEarthNet-V2-LMDB"), readonly=True, lock=False)
        patches = [(m["patch_id"], "clear") for m in meta]
        patches += [
            (m["patch_id"], "cloud/shadow" if m.get("contains_cloud_or_shadow") else "snow")
            for m in extra
        ]
        rows = []
        with env.begin() as txn:
            for patch_id, truth in patches:
                blob = txn.get(patch_id.encode())
                if blob is None:
                    continue
                arrays = read_safetensors(bytes(blob))
                size = 120 // factor
                bands = []
                for band in BANDS:
                    a = arrays[band].astype(np.float32)
                    up = 120 // a.shape[0]  # 20 m bands are 60 x 60: onto 10 m first
                    a = np.repeat(np.repeat(a, up, 0), up, 1)
                    bands.append(a.reshape(size, factor, size, factor).mean(axis=(1, 3)) * 1e-4)
                classes = mirrored(runner, np.stack(bands))
                pct = 100 * float(cloudlearned.cloud_of(classes).mean())
                rows.append(
                    {
                        "patch": patch_id,
                        "truth": truth,
                        "learned_cloud_pct": round(pct, 1),
                        "detected": pct >= patch_min,
                    }
                )
        env.close()
    return rows


def cost(runner: EmbeddedRunner, repeats: int) -> dict[str, Any]:
    spec = runner.spec
    x = np.random.default_rng(0).normal(size=(1, 6, spec.chip_size, spec.chip_size))
    runner.predict(x.astype(np.float32))
    start = time.perf_counter()
    for _ in range(repeats):
        runner.predict(x.astype(np.float32))
    per_chip = (time.perf_counter() - start) / repeats
    row: dict[str, Any] = {"seconds_per_chip": round(per_chip, 2)}
    for metres in (30, 60):
        side = -(-10980 // (metres // 10))
        chips = len(ChipGrid.for_spec(spec, side, side))
        row[f"chips_{metres}m"] = chips
        row[f"tile_minutes_{metres}m"] = round(chips * per_chip / 60, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configilm", type=Path, help="configilm 0.7.1 wheel (BigEarthNet)")
    parser.add_argument("--metres", type=int, default=30, help="grid of the learned mask")
    parser.add_argument("--patch-min", type=float, default=5.0, help="percent for 'detected'")
    parser.add_argument("--no-scenes", action="store_true", help="BigEarthNet only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    factor = args.metres // 10
    with tempfile.TemporaryDirectory() as tmp:
        repo = ModelRepository(tmp)
        spec = import_csmask(repo, "l2a")
        runner = EmbeddedRunner(repo, spec.name, spec.version, threads=args.threads)
        if not args.no_scenes:
            print("cost", json.dumps(cost(runner, args.repeats)), flush=True)
            print("scene", json.dumps(scene_29rkh(runner, args.metres)), flush=True)
            for date in ("2020-01-13", "2020-01-28"):
                row = boadella(runner, DATA / "boadella" / f"Boadella_{date}.tif", factor)
                print("scene", json.dumps(row), flush=True)
        if args.configilm:
            rows = bigearthnet(runner, args.configilm, factor, args.patch_min)
            for row in rows:
                print("patch", json.dumps(row), flush=True)
            for truth in ("cloud/shadow", "clear", "snow"):
                group = [r for r in rows if r["truth"] == truth]
                hits = sum(r["detected"] for r in group)
                print(
                    "patches",
                    json.dumps({"truth": truth, "n": len(group), "flagged": hits}),
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
