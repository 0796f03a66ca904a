"""Cost of fetch's input checks (grid, CRS, reflectance range) against copying the bands.

    python -m benchmarks fetch_checks --size 10980      # a full Sentinel-2 tile

Generates a product, then times, for the 11 bands fetch copies: the checks run before any copy
(open, grid, a decimated or windowed sample, the reflectance rule) on the generated GeoTIFFs
(no overviews: windowed sample) and on COGs (overviews, as real catalogues serve: decimated
read), and the copy itself (GeoTIFF to COG). The product is generated in a child process, so
this process's peak RSS after the checks shows they hold no whole band.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from earthsignature.functions import fetch
from earthsignature.functions.cog import to_cog
from earthsignature.functions.stac import AssetRef
from earthsignature.mgrs import tile_grid

_GENERATE = (
    "import sys; from pathlib import Path; from earthsignature.generator import generate_product;"
    "print(generate_product(Path(sys.argv[1]), size=int(sys.argv[2]), tile=sys.argv[3]).directory)"
)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _checks(paths: dict[str, Path], epsg: int) -> float:
    start = time.perf_counter()
    grids = {}
    for band, path in paths.items():
        grids[band], sample, nodata = fetch._inspect(band, str(path))
        fetch.check_reflectance(band, sample, nodata, AssetRef(str(path), 1e-4, -0.1))
    fetch.check_grids(grids, epsg)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980, help="10 m pixels per side")
    parser.add_argument("--tile", default="31TCJ")
    args = parser.parse_args(argv)

    out = Path(tempfile.mkdtemp(prefix="earthsig-bench-fetch-"))
    try:
        start = time.perf_counter()
        folder = subprocess.run(
            [sys.executable, "-c", _GENERATE, str(out / "src"), str(args.size), args.tile],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        generate = time.perf_counter() - start
        epsg = tile_grid(args.tile).epsg
        plain = {band: Path(folder) / f"{band}.tif" for band in fetch.DEFAULT_BANDS}
        rss_before = _rss_mib()
        checks_plain = _checks(plain, epsg)
        rss_checks = _rss_mib()
        start = time.perf_counter()
        cogs = {}
        for band, path in plain.items():
            cogs[band] = out / "cog" / f"{band}.tif"
            cogs[band].parent.mkdir(exist_ok=True)
            to_cog(path, cogs[band])
        copy = time.perf_counter() - start
        checks_cog = _checks(cogs, epsg)
        print(
            json.dumps(
                {
                    "size_px": args.size,
                    "generate_s": round(generate, 1),
                    "bands": len(plain),
                    "checks_geotiff_s": round(checks_plain, 3),
                    "checks_cog_s": round(checks_cog, 3),
                    "copy_to_cog_s": round(copy, 2),
                    "checks_share_of_copy_pct": round(100 * checks_plain / copy, 2),
                    "rss_before_checks_mib": round(rss_before, 1),
                    "peak_rss_after_checks_mib": round(rss_checks, 1),
                    "peak_rss_after_copy_mib": round(_rss_mib(), 1),
                }
            )
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
