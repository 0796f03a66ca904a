"""One strip of a class raster to polygons, fast: GDAL's sieve and polygonize read back as
WKB arrays.

GDAL's ``GDALSieveFilter`` and ``GDALPolygonize`` are run in pyogrio's GDAL (3.12+) through a
GDALG pipeline (``gdal pipeline read strip ! sieve ! ... ! polygonize``) and read back with
``pyogrio.raw.read``: WKB and codes come back as numpy arrays, with no GeoJSON dict per
polygon in Python (what ``rasterio.features.shapes`` builds). The strip reaches GDAL as a raw
file with a tiny VRT header (GDALG paths are files; pyogrio's and rasterio's GDALs share no
in-memory files).

:func:`coverage_vertices` makes the polygons an exact coverage (T-junctions and strip borders
get their missing vertices) with numpy over the ragged coordinate arrays.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
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


def polygonize_strip(
    block: np.ndarray,
    top: int,
    *,
    rows: tuple[int, int] | None = None,
    sieve_sizes: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons (pixel coordinates) and codes of every 4-connected region of a 2-D integer
    array whose first row is raster row ``top``, zero included (no mask).

    With ``sieve_sizes``, the block is first sieved by GDAL (``gdal raster sieve``, one pass
    per size, 4-connected; zero is no data: never filled, never grown), so that a strip can
    bring a halo of rows that only the sieve sees: ``rows`` (first, end), raster rows, are
    the ones polygonized (default: the whole block). Sieve and polygonize run in one GDALG
    pipeline in pyogrio's GDAL, which holds the GIL for at most ~50 ms at a time on a
    full-tile strip (a Python thread beside it measured); a pass of rasterio's sieve holds it
    for ~0.55 s, so strips in threads sieved one at a time and stalled the merging thread.
    """
    height, width = block.shape
    first, end = (top, top + height) if rows is None else rows
    if not 0 <= first - top <= end - top <= height:
        raise ValueError(f"rows {first}..{end} are not within the block's {top}..{top + height}")
    if first == end or not width:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    if sieve_sizes and top == 0:
        # GDAL's sieve drops an identity geotransform (read as "none"), and a clip after it
        # would then put the rows at 0: a row of no data above keeps the transform real
        block = np.concatenate([np.zeros((1, width), dtype=block.dtype), block])
        top, height = -1, height + 1
    steps = ["read strip.vrt"]
    steps += [f"sieve --size-threshold {size} --mask mask.vrt" for size in sieve_sizes]
    if (first, end) != (top, top + height):
        steps.append(f"clip --window 0,{first - top},{width},{end - first}")
    steps.append(f"polygonize --attribute-name {CODE_FIELD}")
    _gdal_temporary_files_in_tmp()
    with tempfile.TemporaryDirectory(prefix="earthsig-strip-") as tmp:
        folder = Path(tmp)
        _write_raw(folder, "strip", block.astype("<u2", copy=False), top)
        if sieve_sizes:
            _write_raw(folder, "mask", np.not_equal(block, 0).astype(np.uint8), top)
        pipeline = {
            "type": "gdal_streamed_alg",
            "command_line": "gdal pipeline " + " ! ".join(steps),
        }
        (folder / "strip.gdalg.json").write_text(json.dumps(pipeline))
        _meta, _fids, wkb, fields = pyogrio.raw.read(folder / "strip.gdalg.json")
    if wkb is None or not len(wkb):
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    return shapely.from_wkb(wkb), fields[0].astype(np.int64)


def _gdal_temporary_files_in_tmp() -> None:
    """Point GDAL's temporary files at the system's temp folder unless ``CPL_TMPDIR`` is set.

    The pipeline's polygonize step writes its polygons to a temporary GeoPackage first, in
    ``CPL_TMPDIR`` or else the current directory: a worker started in a read-only or removed
    directory failed every product's polygons (sqlite3_open ... unable to open database file).
    """
    if pyogrio.get_gdal_config_option("CPL_TMPDIR") is None:  # the environment's counts
        pyogrio.set_gdal_config_options({"CPL_TMPDIR": tempfile.gettempdir()})


#: GDAL's names of the raw arrays' types.
_GDAL_TYPES = {np.dtype(np.uint8): "Byte", np.dtype("<u2"): "UInt16"}


def _write_raw(folder: Path, name: str, array: np.ndarray, top: int) -> None:
    """``name``.bin (the 2-D array's bytes, row-major) and ``name``.vrt, GDAL's view of it:
    x = column, y = top + row."""
    height, width = array.shape
    np.ascontiguousarray(array).tofile(folder / f"{name}.bin")
    (folder / f"{name}.vrt").write_text(
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<GeoTransform>0, 1, 0, {top}, 0, 1</GeoTransform>"
        f'<VRTRasterBand dataType="{_GDAL_TYPES[array.dtype]}" band="1" '
        'subClass="VRTRawRasterBand">'
        f'<SourceFilename relativetoVRT="1">{name}.bin</SourceFilename>'
        f"<ImageOffset>0</ImageOffset><PixelOffset>{array.itemsize}</PixelOffset>"
        f"<LineOffset>{array.itemsize * width}</LineOffset><ByteOrder>LSB</ByteOrder>"
        "</VRTRasterBand></VRTDataset>"
    )


def coverage_vertices(
    geoms: np.ndarray, dense_rows: Sequence[int] = (), *, junctions: bool = True
) -> np.ndarray:
    """Polygons whose shared edges match vertex for vertex: an exact coverage for GEOS.

    Polygonize puts vertices only where a ring turns, so where three regions meet along a
    straight edge (a T-junction) one side has a vertex the other lacks; GEOS's coverage
    simplification and union need both sides to have it. Every vertex of any ring lying
    inside another edge is inserted in that edge (numpy over the ragged coordinate arrays; on
    the baseline full tile 62 % of the vertices that a vertex at every pixel corner made, and
    39 % less simplification time). Along each row of ``dense_rows``
    (the strip's borders with its neighbours) every pixel corner is inserted, so the pieces
    of a polygon cut by the border match whatever the other strip holds. Coordinates must be
    integers and edges horizontal or vertical, as polygonize makes them.

    ``junctions=False`` inserts the dense rows' corners only: enough to union the pieces of
    polygons cut by a border (they share no other edge), and what a strip that will not be
    simplified needs (a 1024-row strip of the 2048² stress raster: 0.9 s of CPU spared).
    """
    if not len(geoms):
        return geoms
    if junctions:
        return _insert_vertices(geoms, dense_rows, junctions=True)
    # only polygons reaching a dense row can gain a vertex: leave the others as they are
    bounds = shapely.bounds(geoms)
    rows = np.asarray(dense_rows, dtype=np.float64)
    reach = ((bounds[:, 1:2] <= rows) & (rows <= bounds[:, 3:4])).any(axis=1)
    out = geoms.copy()
    if reach.any():
        out[reach] = _insert_vertices(geoms[reach], dense_rows, junctions=False)
    return out


def _insert_vertices(
    geoms: np.ndarray, dense_rows: Sequence[int], *, junctions: bool
) -> np.ndarray:
    """:func:`coverage_vertices` over every polygon of geoms (at least one)."""
    kind, coords, (ring_offsets, polygon_offsets) = shapely.to_ragged_array(geoms)
    if kind != shapely.GeometryType.POLYGON:
        raise ValueError(f"coverage_vertices needs polygons, got {kind!r}")
    xy = coords.astype(np.int64)
    n = len(xy)
    origin = xy.min(axis=0)
    local = xy - origin
    span = int(local.max()) + 2
    starts_edge = np.ones(n, dtype=bool)
    starts_edge[ring_offsets[1:] - 1] = False  # each ring's closing vertex starts no edge
    after = np.roll(local, -1, axis=0)
    horizontal = starts_edge & (local[:, 1] == after[:, 1]) & (local[:, 0] != after[:, 0])
    vertical = starts_edge & (local[:, 0] == after[:, 0]) & (local[:, 1] != after[:, 1])
    row_points = [local[:, 1] * span + local[:, 0]] if junctions else []
    columns = np.arange(local[:, 0].max() + 1, dtype=np.int64)
    for row in dense_rows:
        row_points.append((row - origin[1]) * span + columns)
    if not row_points:
        return geoms
    by_row = np.unique(np.concatenate(row_points))
    kinds = [(horizontal, 1, 0, by_row)]  # (edges, their line's axis, along, points to insert)
    if junctions:
        kinds.append((vertical, 0, 1, np.unique(local[:, 0] * span + local[:, 1])))
    extra = np.zeros(n, dtype=np.int64)
    inserted = []  # per kind of edge: its vertices' indices, and the inserted points (x, y)
    for mask, line, along, points in kinds:
        edges = np.flatnonzero(mask)
        if not len(edges):
            continue
        a, b = local[edges, along], after[edges, along]
        base = local[edges, line] * span
        first = base + np.minimum(a, b)
        order = np.argsort(first)  # sorted queries search twice as fast (cache)
        lo, hi = np.empty_like(first), np.empty_like(first)
        lo[order] = np.searchsorted(points, first[order], side="right")
        hi[order] = np.searchsorted(points, (base + np.maximum(a, b))[order], side="left")
        count = hi - lo
        has = count > 0
        edges, lo, hi, count, ascending = edges[has], lo[has], hi[has], count[has], (b > a)[has]
        extra[edges] = count
        nth = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        index = np.where(
            np.repeat(ascending, count), np.repeat(lo, count) + nth, np.repeat(hi, count) - 1 - nth
        )
        point = np.empty((len(index), 2), dtype=np.int64)
        point[:, along] = points[index] % span
        point[:, line] = points[index] // span
        inserted.append((np.repeat(edges, count), nth, point))
    if not inserted:
        return geoms
    shift = np.cumsum(extra) - extra  # vertices inserted before each original vertex
    out = np.empty((n + int(extra.sum()), 2), dtype=np.float64)
    out[np.arange(n) + shift] = xy
    for edges, nth, point in inserted:
        out[edges + shift[edges] + 1 + nth] = point + origin
    ring_ends = np.concatenate([shift, [shift[-1] + extra[-1]]])
    return shapely.from_ragged_array(
        shapely.GeometryType.POLYGON, out, (ring_offsets + ring_ends[ring_offsets], polygon_offsets)
    )
