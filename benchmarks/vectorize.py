"""Vectorizing one raster: EarthSignature's strip-wise code vs GDAL's ``gdal_polygonize``.

Builds a synthetic CORINE-code raster (smooth random patches of 8 classes, a no-data band,
10 m UTM grid), then vectorizes it with each method in its own process and reports wall time,
peak resident memory (the process's max RSS) and the number of polygons written.

    python benchmarks/vectorize.py --size 5490          # a quarter of a Sentinel-2 tile
    python benchmarks/vectorize.py --size 10980         # a full tile (minutes)

Methods:
- ``gdal_polygonize``: GDAL's own tool (``gdal_polygonize.py -f FlatGeobuf``, from Debian's
  gdal-bin), whole raster at once, output in the raster's CRS, no sieve, no simplification,
  no spatial index.
- ``earthsig-polygonize``: our strips (1024 rows) + border merge + FlatGeobuf with spatial
  index in EPSG:4326, sieve and simplification off, strips in one thread beside the merge
  (as publish runs rasters under 16 Mpx): the like-for-like comparison.
- ``earthsig-polygonize-2``: the same with strips in two threads (as publish runs full tiles).
- ``earthsig-full``: what publish runs for a full tile: sieve to 0.5 ha, coverage
  simplification (10 m), EPSG:4326, FlatGeobuf with spatial index, strips in two processes
  (``publish.POLYGON_WORKERS``).
- ``earthsig-publish`` (with ``--publish``): the whole publish step into a local store:
  segmentation COG, class areas, footprint, polygons, PMTiles, catalog record.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

PUBLISHED_POLYGONS = "polygons/model=bench/version=1/date=2020-02-19/BENCH.fgb"
CODES = np.array([112, 211, 231, 311, 312, 324, 512, 333], dtype=np.uint16)


def make_raster(path: Path, size: int, seed: int = 0) -> None:
    """Smooth random patches (a coarse noise field, upsampled) written block row by row."""
    # here, not at the top: the methods run this file too, and must not pay for scipy.ndimage
    from scipy.ndimage import gaussian_filter, zoom

    rng = np.random.default_rng(seed)
    coarse = gaussian_filter(rng.normal(size=(size // 8 + 1, size // 8 + 1)), 2.0)
    edges = np.quantile(coarse, np.linspace(0, 1, len(CODES) + 1)[1:-1])
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32629",
        "transform": from_origin(300000.0, 3500040.0, 10.0, 10.0),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "DEFLATE",
        "predictor": 2,
    }
    with rasterio.open(path, "w", **profile) as dst:
        step = 512
        for row in range(0, size, step):
            rows = min(step, size - row)
            c0, c1 = row // 8, (row + rows) // 8 + 2
            block = zoom(coarse[c0:c1], 8, order=1)[row - c0 * 8 : row - c0 * 8 + rows, :size]
            block = block + rng.normal(scale=0.05 * coarse.std(), size=block.shape)  # specks
            codes = CODES[np.digitize(block, edges)]
            codes[:, : size // 20] = 0  # a no-data band along the west edge
            dst.write(codes, 1, window=Window(0, row, size, rows))


def run_ours(src: Path, dst: Path, mmu_m2: float, tolerance_m: float, workers: int) -> None:
    from earthsignature.functions.messages import ProductMessage
    from earthsignature.functions.polygon_file import write_polygons

    msg = ProductMessage(
        product_id="BENCH", date="2020-02-19", tile="29RKH", model="bench", version=1, run="b"
    )
    write_polygons(src, dst, msg, mmu_m2=mmu_m2, tolerance_m=tolerance_m, workers=workers)


def run_publish(src: Path, folder: Path) -> None:
    from earthsignature.functions.publish import publish_product

    publish_product(*run_publish_message(src, folder), src)


def run_publish_message(src: Path, folder: Path) -> tuple[Any, Any]:
    """A Runtime on a local store under ``folder`` and a vectorize message for ``src``, its
    cloud mask (no data = cloud) already stored."""
    from earthsignature.functions.cog import to_cog
    from earthsignature.functions.messages import ProductMessage
    from earthsignature.runtime import Runtime
    from earthsignature.settings import load_settings
    from earthsignature.storage import LocalStore, layout

    store = LocalStore(folder / "store")
    mask_key = layout.mask_key("2020-02-19", "29RKH", "BENCH")
    with tempfile.TemporaryDirectory() as tmp:
        mask = Path(tmp) / "mask.tif"
        with rasterio.open(src) as ds:
            profile = {**ds.profile, "dtype": "uint8", "nodata": None}
            with rasterio.open(Path(tmp) / "raw.tif", "w", **profile) as dst:
                for _, window in ds.block_windows(1):
                    dst.write((ds.read(1, window=window) == 0).astype("uint8"), 1, window=window)
        to_cog(Path(tmp) / "raw.tif", mask, nbits=1)
        store.put_file(mask_key, mask)
    msg = ProductMessage(
        product_id="BENCH",
        date="2020-02-19",
        tile="29RKH",
        model="bench",
        version=1,
        run="b",
        cloud_mask=mask_key,
        cloud_fraction=0.0,
    )
    return Runtime(settings=load_settings(store=str(store.root)), store=store), msg


def measure(command: list[str]) -> dict[str, float]:
    """Run command as the only child of this process: wall time and its peak RSS."""
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(peak_kib / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=5490, help="raster side in pixels")
    parser.add_argument("--keep", type=Path, help="keep the raster and outputs in this folder")
    parser.add_argument("--publish", action="store_true", help="also time the whole publish")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the methods this many rounds, one after another in each; report each "
        "method's median wall time (a shared machine's speed drifts by tens of percent)",
    )
    args = parser.parse_args()
    polygonize = shutil.which("gdal_polygonize.py") or shutil.which("gdal_polygonize")
    folder = Path(tempfile.mkdtemp(prefix="earthsig-bench-")) if args.keep is None else args.keep
    folder.mkdir(parents=True, exist_ok=True)
    raster = folder / "codes.tif"
    make_raster(raster, args.size)
    me = [sys.executable, __file__]
    methods: dict[str, list[str]] = {}
    if polygonize:
        methods["gdal_polygonize"] = [
            polygonize, "-q", "-f", "FlatGeobuf", str(raster), str(folder / "gdal.fgb"),
        ]  # fmt: skip
    methods["earthsig-polygonize"] = [
        *me, "_ours", str(raster), str(folder / "ours.fgb"), "0", "0", "1",
    ]  # fmt: skip
    methods["earthsig-polygonize-2"] = [
        *me, "_ours", str(raster), str(folder / "ours2.fgb"), "0", "0", "2",
    ]  # fmt: skip
    methods["earthsig-full"] = [
        *me, "_ours", str(raster), str(folder / "full.fgb"), "5000", "10", "2",
    ]  # fmt: skip
    outputs = {
        "gdal_polygonize": folder / "gdal.fgb",
        "earthsig-polygonize": folder / "ours.fgb",
        "earthsig-polygonize-2": folder / "ours2.fgb",
        "earthsig-full": folder / "full.fgb",
    }
    if args.publish:
        methods["earthsig-publish"] = [*me, "_publish", str(raster), str(folder)]
        outputs["earthsig-publish"] = folder / "store" / PUBLISHED_POLYGONS
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"raster {args.size} x {args.size} px, uint16, {raster.stat().st_size / 2**20:.1f} MiB")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    for _ in range(max(1, args.repeat)):
        for name, command in methods.items():
            # a kept folder's earlier output would be appended to (gdal_polygonize) or replaced
            outputs[name].unlink(missing_ok=True)
            # a fresh measuring process per method, so RUSAGE_CHILDREN is that method's alone
            out = subprocess.run([*me, "_measure", "--", *command], check=True, capture_output=True)
            result = json.loads(out.stdout.decode().strip().splitlines()[-1])
            result["polygons"] = pyogrio.read_info(outputs[name])["features"]
            runs[name].append(result)
            print(f"{name:22s} {result}")
    results = {}
    for name, measured in runs.items():
        results[name] = {
            "wall_s": float(np.median([r["wall_s"] for r in measured])),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in measured),
            "polygons": measured[-1]["polygons"],
        }
        if len(measured) > 1:
            results[name]["wall_s_runs"] = [r["wall_s"] for r in measured]
            print(f"{name:22s} median {results[name]}")
    if polygonize:
        gdal = results["gdal_polygonize"]["wall_s"]
        ratios = {
            "ours_over_gdal_polygonize_wall": results["earthsig-polygonize"]["wall_s"] / gdal,
            "ours_2_threads_over_gdal_polygonize_wall": (
                results["earthsig-polygonize-2"]["wall_s"] / gdal
            ),
        }
        print(f"ratio {json.dumps({k: round(v, 2) for k, v in ratios.items()})}")
    else:
        print("gdal_polygonize not found, skipped: apt-get install gdal-bin (Debian)")
    if args.keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        print(json.dumps(measure(sys.argv[3:])))
    elif len(sys.argv) > 1 and sys.argv[1] == "_publish":
        run_publish(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_ours":
        run_ours(
            Path(sys.argv[2]),
            Path(sys.argv[3]),
            float(sys.argv[4]),
            float(sys.argv[5]),
            int(sys.argv[6]),
        )
    else:
        main()
