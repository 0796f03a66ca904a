"""What a confidence output adds to publishing: the same map with and without confidence.

    python -m benchmarks confidence [--size 5490]

Builds the synthetic CORINE map of ``benchmarks/vectorize.py`` (smooth patches of 8 classes,
a no-data band) and a confidence raster on the same grid (smooth 30..100 %, 255 where no
data), then publishes the product into a local store twice, each in its own process: without
confidence (the COG, polygons, PMTiles, record) and with it (plus the confidence COG and the
mean confidence of every polygon). Reports wall time, peak RSS (the largest of the runs so
far: the second, with confidence, is its own only if larger) and publish's part timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from scipy.ndimage import gaussian_filter, zoom

# run as a script (python -m benchmarks runs benchmarks/NAME.py): its folder is on sys.path
from vectorize import make_raster, run_publish_message


def make_confidence(codes: Path, dst: Path, seed: int = 1) -> None:
    """Smooth confidence (30..100 %) on the grid of ``codes``, 255 where codes has no data."""
    with rasterio.open(codes) as src:
        size = src.width
        profile = {**src.profile, "dtype": "uint8", "nodata": 255}
        rng = np.random.default_rng(seed)
        coarse = gaussian_filter(rng.normal(size=(size // 8 + 2, size // 8 + 2)), 2.0)
        coarse = (coarse - coarse.min()) / (np.ptp(coarse) or 1.0)
        with rasterio.open(dst, "w", **profile) as out:
            for row in range(0, size, 512):
                rows = min(512, size - row)
                c0, c1 = row // 8, (row + rows) // 8 + 2
                block = zoom(coarse[c0:c1], 8, order=1)[row - c0 * 8 : row - c0 * 8 + rows, :size]
                conf = (30 + 70 * block).astype(np.uint8)
                window = Window(0, row, size, rows)
                conf[src.read(1, window=window) == 0] = 255
                out.write(conf, 1, window=window)


def publish(codes: Path, confidence: Path | None, folder: Path) -> dict[str, float]:
    """One publish into a fresh local store; returns publish's part timings."""
    from earthsignature.functions.publish import publish_product

    rt, msg = run_publish_message(codes, folder)
    timings: dict[str, float] = {}
    publish_product(rt, msg, codes, confidence=confidence, timings=timings)
    return {k: round(v, 2) for k, v in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=5490, help="raster side in pixels")
    parser.add_argument("--child", nargs=3, metavar=("CODES", "CONFIDENCE", "FOLDER"))
    args = parser.parse_args()
    if args.child:
        codes, conf, folder = args.child
        parts = publish(Path(codes), None if conf == "-" else Path(conf), Path(folder))
        print(json.dumps(parts))
        return
    import resource

    with tempfile.TemporaryDirectory(prefix="earthsig-bench-conf-") as tmp:
        root = Path(tmp)
        make_raster(root / "codes.tif", args.size)
        make_confidence(root / "codes.tif", root / "confidence.tif")
        for label, conf in (("without", "-"), ("with", str(root / "confidence.tif"))):
            folder = root / label
            folder.mkdir()
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(root / "codes.tif"), conf, str(folder)],
                check=True,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            parts = json.loads(done.stdout.strip().splitlines()[-1])
            result = {"size": args.size, "wall_s": round(wall, 1), "peak_rss_mib": round(peak)}
            print(f"publish {label} confidence", json.dumps({**result, **parts}))


if __name__ == "__main__":
    main()
