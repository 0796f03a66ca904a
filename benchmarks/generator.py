"""Benchmark of the scene generator: wall time and peak memory for a scene of a given size.

    python benchmarks/generator.py --size 10980          # a full Sentinel-2 tile

Peak RSS is the process's high-water mark (``ru_maxrss``), reported beside the RSS after
imports and the size a whole-tile in-memory approach would need (all bands as uint16), to show
that the generator streams windows rather than holding the tile.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from earthsignature.generator import generate_product
from earthsignature.generator.spectra import BANDS


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980, help="10 m pixels per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cloud-fraction", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=None, help="keep the product here")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="earthsig-bench-"))
    rss_before = _rss_mib()
    start = time.perf_counter()
    product = generate_product(
        out, size=args.size, seed=args.seed, cloud_fraction=args.cloud_fraction
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
