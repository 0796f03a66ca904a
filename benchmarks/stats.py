"""Land-cover statistics on a full Sentinel-2 tile (10980 x 10980 px): time and peak memory.

Writes two synthetic full-tile segmentation COGs (blocky CORINE codes; date 2 on a grid
shifted by 3 pixels) and cloud masks into a local store, commits them, then times
``area_by_date`` over the whole tile and ``change`` between the dates (WarpedVRT alignment).
Peak RSS shows the windowed reads never hold a whole tile (one uint16 band is 241 MB); run
with ``GDAL_CACHEMAX=64`` to keep GDAL's block cache (default 5% of RAM) out of the figure.

    GDAL_CACHEMAX=64 python benchmarks/stats.py [--size 10980] [--window 1024]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window

from earthsignature import corine, stats
from earthsignature.functions.cog import to_cog
from earthsignature.storage import LocalStore, catalog, layout

CRS = "EPSG:32631"
MODEL, VERSION = "clc-bench", 1
CODES = np.array(corine.CODES, dtype=np.uint16)


def write_raster(path: Path, size: int, transform: Affine, seed: int, cloud: bool) -> None:
    """A size x size GTiff written 1024 rows at a time (blocks of 64 px get one code)."""
    rng = np.random.default_rng(seed)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "crs": CRS,
        "transform": transform,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "dtype": "uint8" if cloud else "uint16",
    }
    if not cloud:
        profile["nodata"] = 0
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 1024):
            h = min(1024, size - row)
            blocks = rng.integers(0, len(CODES), size=(h // 64 + 1, size // 64 + 1))
            codes = CODES[blocks].repeat(64, 0).repeat(64, 1)[:h, :size]
            data = (
                (rng.random((h // 64 + 1, size // 64 + 1)) < 0.1)
                .repeat(64, 0)
                .repeat(64, 1)[:h, :size]
                .astype(np.uint8)
                if cloud
                else codes
            )
            dst.write(data, 1, window=Window(0, row, size, h))


def commit(store: LocalStore, root: Path, day: dt.date, size: int, shift: int) -> None:
    pid = f"S2G_31TEJ_{day:%Y%m%d}_0_L2A"
    transform = Affine(10, 0, 500_000 + 10 * shift, 0, -10, 4_900_000 - 10 * shift)
    keys = {
        "segmentation": layout.segmentation_key(MODEL, VERSION, day, pid),
        "cloud_mask": layout.mask_key(day, "31TEJ", pid),
        "polygons": layout.polygons_key(MODEL, VERSION, day, pid),
        "tiles": layout.tiles_key(MODEL, VERSION, day, pid),
    }
    for name, cloud in (("segmentation", False), ("cloud_mask", True)):
        plain = root / f"{pid}-{name}.tif"
        write_raster(plain, size, transform, seed=day.toordinal() + cloud, cloud=cloud)
        with store.staged_file(keys[name], suffix=".tif") as staged:
            to_cog(plain, staged, nbits=1 if cloud else None)
        plain.unlink()
    for name in ("polygons", "tiles"):  # not read by the statistics
        store.put_bytes(keys[name], b"")
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    x0, y1 = transform * (0, 0)
    x1, y0 = transform * (size, size)
    footprint = shapely.transform(
        shapely.box(x0, y0, x1, y1), lambda xy: np.column_stack(to_ll.transform(*xy.T))
    )
    catalog.commit(
        store,
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": pid,
            "geometry": shapely.geometry.mapping(footprint),
            "bbox": list(footprint.bounds),
            "properties": {
                "datetime": f"{day}T10:30:00Z",
                "created": f"{day}T12:00:00Z",
                catalog.PROP_MODEL: MODEL,
                catalog.PROP_VERSION: VERSION,
            },
            "assets": {n: {"href": k, catalog.ASSET_KEY: k} for n, k in keys.items()},
            "links": [],
        },
    )


def build(root: Path, days: tuple[dt.date, dt.date], size: int) -> None:
    store = LocalStore(root / "store")
    commit(store, root, days[0], size, 0)
    commit(store, root, days[1], size, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--window", type=int, default=1024)
    args = parser.parse_args()
    days = (dt.date(2024, 5, 1), dt.date(2024, 9, 1))
    with tempfile.TemporaryDirectory(prefix="earthsig-bench-stats-") as tmp:
        root = Path(tmp)
        store = LocalStore(root / "store")
        t0 = time.perf_counter()
        # built in a child process, so this process's peak RSS is the statistics' alone
        setup = multiprocessing.Process(target=build, args=(root, days, args.size))
        setup.start()
        setup.join()
        if setup.exitcode:
            raise SystemExit("setup failed")
        print(f"setup (2 full-size COG pairs): {time.perf_counter() - t0:.1f} s")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
        edge = 10 * args.size + 100
        whole = shapely.segmentize(
            shapely.box(499_900, 4_900_100 - edge, 499_900 + edge, 4_900_100), 500
        )
        aoi = shapely.transform(whole, lambda xy: np.column_stack(to_ll.transform(*xy.T)))
        t0 = time.perf_counter()
        areas = stats.area_by_date(
            store, aoi, *days, model=MODEL, version=VERSION, window_px=args.window
        )
        t_area = time.perf_counter() - t0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        result = stats.change(
            store, aoi, *days, model=MODEL, version=VERSION, window_px=args.window
        )
        t_change = time.perf_counter() - t0
        rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        px = args.size * args.size
        print(f"tile {args.size} x {args.size} px, window {args.window}")
        print(
            f"area_by_date, 2 dates: {t_area:.1f} s ({2 * px / t_area / 1e6:.1f} Mpx/s), "
            f"{len(areas[0].class_areas)} classes; peak RSS {rss0:.0f} -> {rss1:.0f} MB"
        )
        print(
            f"change (WarpedVRT, shifted grid): {t_change:.1f} s "
            f"({px / t_change / 1e6:.1f} Mpx/s), "
            f"{len(result.transitions)} transitions; peak RSS -> {rss2:.0f} MB"
        )


if __name__ == "__main__":
    main()
