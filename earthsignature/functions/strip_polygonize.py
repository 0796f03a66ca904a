"""One strip of a class raster to polygons, fast: GDAL's polygonize read back as WKB arrays.

GDAL's ``GDALPolygonize`` is run in pyogrio's GDAL (3.11+) through a GDALG pipeline
(``gdal pipeline read strip ! polygonize``) and read back with ``pyogrio.raw.read``: WKB and
codes come back as numpy arrays, with no GeoJSON dict per polygon in Python (what
``rasterio.features.shapes`` builds). The strip reaches GDAL as a raw file with a tiny VRT
header (GDALG paths are files; pyogrio's and rasterio's GDALs share no in-memory files).

:func:`pixel_corners` puts a vertex at every pixel corner along every edge with numpy over
the ragged coordinate arrays (GEOS's segmentize took a third of the polygonize-only time).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import shapely

#: The GDAL bundled with pyogrio must run ``gdal pipeline`` from a GDALG file.
MIN_GDAL = (3, 12, 0)
CODE_FIELD = "code"


def check_gdal() -> None:
    """Raise a clear error when pyogrio's GDAL cannot run the polygonize pipeline."""
    if pyogrio.__gdal_version__ < MIN_GDAL or "GDALG" not in pyogrio.list_drivers():
        raise RuntimeError(
            f"pyogrio's GDAL {pyogrio.__gdal_version_string__} cannot polygonize through a "
            f"GDALG pipeline: GDAL >= {'.'.join(map(str, MIN_GDAL))} is needed "
            "(pip install 'pyogrio>=0.13', whose wheels bundle it)"
        )


def polygonize_strip(strip: np.ndarray, row0: int) -> tuple[np.ndarray, np.ndarray]:
    """Polygons (pixel coordinates, rows offset by row0) and codes of every 4-connected
    region of a 2-D integer array, zero included (no mask)."""
    height, width = strip.shape
    if not strip.size:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="earthsig-strip-") as tmp:
        folder = Path(tmp)
        np.ascontiguousarray(strip, dtype="<u2").tofile(folder / "strip.bin")
        (folder / "strip.vrt").write_text(_raw_vrt(width, height, row0))
        pipeline = {
            "type": "gdal_streamed_alg",
            "command_line": (
                f"gdal pipeline read strip.vrt ! polygonize --attribute-name {CODE_FIELD}"
            ),
        }
        (folder / "strip.gdalg.json").write_text(json.dumps(pipeline))
        _meta, _fids, wkb, fields = pyogrio.raw.read(folder / "strip.gdalg.json")
    if wkb is None or not len(wkb):
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    return shapely.from_wkb(wkb), fields[0].astype(np.int64)


def _raw_vrt(width: int, height: int, row0: int) -> str:
    """A VRT over strip.bin (little-endian uint16, row-major); x = column, y = row0 + row."""
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<GeoTransform>0, 1, 0, {row0}, 0, 1</GeoTransform>"
        '<VRTRasterBand dataType="UInt16" band="1" subClass="VRTRawRasterBand">'
        '<SourceFilename relativetoVRT="1">strip.bin</SourceFilename>'
        f"<ImageOffset>0</ImageOffset><PixelOffset>2</PixelOffset>"
        f"<LineOffset>{2 * width}</LineOffset><ByteOrder>LSB</ByteOrder>"
        "</VRTRasterBand></VRTDataset>"
    )


def pixel_corners(geoms: np.ndarray) -> np.ndarray:
    """Polygons with a vertex at every pixel corner along every (axis-parallel) edge.

    Edges then match vertex for vertex between neighbours (an exact coverage, also after
    reprojection), which the coverage union and simplification need. Coordinates must be
    integers and edges horizontal or vertical, as polygonize makes them.
    """
    if not len(geoms):
        return geoms
    kind, coords, (ring_offsets, polygon_offsets) = shapely.to_ragged_array(geoms)
    if kind != shapely.GeometryType.POLYGON:
        raise ValueError(f"pixel_corners needs polygons, got {kind!r}")
    n = len(coords)
    is_last = np.zeros(n, dtype=bool)
    is_last[ring_offsets[1:] - 1] = True  # each ring's closing vertex starts no edge
    step = np.zeros_like(coords)
    step[:-1] = coords[1:] - coords[:-1]
    step[is_last] = 0
    lengths = np.abs(step).max(axis=1)
    counts = np.where(is_last, 1, lengths).astype(np.int64)  # vertices each one becomes
    nonzero = lengths > 0
    step[nonzero] /= lengths[nonzero, None]
    total = int(counts.sum())
    firsts = np.cumsum(counts) - counts
    k = np.arange(total) - np.repeat(firsts, counts)
    dense = np.repeat(coords, counts, axis=0) + np.repeat(step, counts, axis=0) * k[:, None]
    ends = np.concatenate([[0], np.cumsum(counts)])
    new_ring_offsets = ends[ring_offsets]
    return shapely.from_ragged_array(
        shapely.GeometryType.POLYGON, dense, (new_ring_offsets, polygon_offsets)
    )
