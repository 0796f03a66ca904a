"""Raster classes to polygons in bounded strips: sieve, polygonize, merge, simplify, reproject.

A full Sentinel-2 tile (10980 x 10980 px) is never held as one array or as one set of
polygons. The raster is read in horizontal strips of at most ``strip_rows`` rows (an even
number of near-equal strips, :func:`strip_bounds`):

1. Sieve: each strip is read with a halo of rows above and below and sieved with GDAL in
   passes of growing size up to ``mmu_px`` (4-connectivity, no-data never filled; see
   :func:`sieve_thresholds`). A region smaller than a pass's size spans fewer rows than it,
   so whether a region is removed is decided as on the whole raster; only which neighbour
   absorbs it may differ when that neighbour is cut by the halo.
2. Polygonize the strip's own rows with GDAL in pixel coordinates (integers, so edges on
   both sides of a strip border are bit-identical). Steps 1 and 2 are one GDALG pipeline in
   pyogrio's GDAL (:mod:`strip_polygonize`, WKB arrays back, the GIL mostly released).
   Then insert every pixel corner along the strip's borders, and, when simplifying, the
   vertices missing at T-junctions (numpy), so the polygons form an exact coverage.
3. Simplify the strip's polygons together with ``shapely.coverage_simplify``
   (Visvalingam-Whyatt on shared edges, topology kept). The strip's outline is kept as it
   is (``simplify_boundary=False``): an edge crossing a strip border keeps its vertex on the
   border, and the border itself keeps its vertex at every pixel corner, so the pieces of a
   polygon cut by the border still match exactly. Steps 1-3 need nothing but the strip, so
   the next strips run ahead in threads (``workers``), which also take step 5 for the
   strip's polygons that touch neither border.
4. Merge: polygons touching the border with the previous strip are unioned with the
   same-code pending polygons they share an edge with (4-connectivity; groups are the
   connected components of the shared-edge graph, scipy). A merged polygon
   that still touches the next border stays pending; every other polygon is complete, so
   only border-touching polygons are ever kept between strips.
5. Measure areas (pixels times a pixel's area in the raster CRS, in m²) and map pixel
   coordinates through the raster CRS to EPSG:4326. No-data (code 0) regions take part in
   steps 2-3, so edges along clouds are simplified too, and are dropped before the merge.

With a confidence raster (uint8 percent on the same grid), each polygon also gets the mean
confidence of its pixels (after sieving, before simplification): step 2 burns the strip's
polygon indices back onto the strip (``rasterio.features.rasterize``; pixel-aligned polygons
cover exactly their pixels) and sums confidence per polygon; step 4 adds the sums and pixel
counts of the polygons it merges; step 5 divides.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice, pairwise
from typing import Any, TypeVar

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.features import rasterize
from rasterio.io import DatasetReader
from rasterio.windows import Window
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from earthsignature.corine import NODATA
from earthsignature.functions.strip_polygonize import (
    check_gdal,
    coverage_vertices,
    polygonize_strip,
)

#: Held around rasterio's work on arrays (rasterize) in strip threads: rasterio wraps its
#: in-memory datasets in ``warnings.catch_warnings``, which is not thread-safe, so two strips
#: rasterizing at once leak its NotGeoreferencedWarning (an error under pytest's filter).
_RASTERIO_ARRAYS = threading.Lock()
#: Rows polygonized at a time: bounds memory to a strip of the tile (plus its halo). On a
#: speckled 5490 px wide map (benchmarks/vectorize.py) the whole publish-path vectorization
#: peaked at 0.5 / 0.6 / 0.8 GiB RSS with 256 / 512 / 1024 rows, taking 47 / 37 / 33 s.
DEFAULT_STRIP_ROWS = 1024
WGS84 = CRS.from_epsg(4326)
_T = TypeVar("_T")


@dataclass(frozen=True)
class PolygonBatch:
    """Complete polygons of one or more strips, ready to write."""

    geometries: np.ndarray  # shapely polygons, EPSG:4326
    codes: np.ndarray  # CORINE code per polygon (int)
    areas_m2: np.ndarray  # area in the raster's projected CRS, after simplification
    #: Mean confidence (percent, float64) of each polygon's pixels; None without a confidence
    #: raster.
    confidence: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.codes)


def mmu_pixels(mmu_m2: float, transform: Affine) -> int:
    """The minimum mapping unit in whole pixels (at least 1: no sieving)."""
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    return max(1, math.ceil(mmu_m2 / pixel_area - 1e-9))


def iter_polygon_batches(
    src: DatasetReader,
    *,
    mmu_px: int,
    tolerance_px: float,
    strip_rows: int = DEFAULT_STRIP_ROWS,
    confidence: DatasetReader | None = None,
    workers: int = 1,
) -> Iterator[PolygonBatch]:
    """Polygons of band 1 of src (nonzero codes), strip by strip, merged across strip borders;
    with ``confidence`` (band 1, same grid), each polygon's mean confidence too.

    Strips are sieved, polygonized and simplified (:func:`strip_polygons`) ahead of the merge:
    in one thread, or with ``workers`` > 1 in that many threads (a full tile on two cores).
    At most ``workers + 1`` strips are in flight, so memory stays bounded by a few
    strips plus the polygons pending across a border.
    """
    if strip_rows < 1:
        raise ValueError("strip_rows must be positive")
    check_gdal()
    height = src.height
    to_crs = src.transform
    to_wgs84 = Transformer.from_crs(src.crs, WGS84, always_xy=True)
    pending_geoms = np.empty(0, dtype=object)
    pending_codes = np.empty(0, dtype=np.int64)
    # per polygon: confidence sum and pixel count (zeros without a confidence raster)
    pending_stats = np.zeros((0, 2), dtype=np.float64)
    rows = strip_bounds(height, strip_rows)
    conf_name = None if confidence is None else str(confidence.name)
    jobs = [(str(src.name), conf_name, row0, row1, mmu_px, tolerance_px) for row0, row1 in rows]
    with _strip_executor(workers) as pool:
        for (row0, row1), (inner, geoms, codes, stats) in zip(
            rows, _in_order(pool, strip_polygons, jobs, ahead=max(1, workers) + 1), strict=True
        ):
            if len(inner):
                yield inner
            touches_top, touches_bottom = _touching_borders(geoms, row0, row1, height)
            merged, merged_codes, merged_bottom, merged_stats = _merge_across_border(
                pending_geoms,
                pending_codes,
                geoms,
                codes,
                touches_top,
                touches_bottom,
                np.concatenate([pending_stats, stats]),
                row0,
            )
            done = ~merged_bottom
            pending_geoms, pending_codes = merged[merged_bottom], merged_codes[merged_bottom]
            pending_stats = merged_stats[merged_bottom]
            batch = _finish(
                merged[done],
                merged_codes[done],
                to_crs,
                to_wgs84,
                merged_stats[done] if confidence is not None else None,
            )
            if len(batch):
                yield batch
    # The last strip has no next border, so nothing can still be pending here.
    assert not len(pending_geoms)


def strip_bounds(height: int, strip_rows: int) -> list[tuple[int, int]]:
    """Rows (first, end) of each strip: at most ``strip_rows`` rows, as equal as can be, and
    an even number of strips (one strip alone has none to pair with).

    Two strip threads (publish's full tiles) then finish their last strips together: 11
    strips of 1024 rows left the 11th alone on one core for 4.4 s of a full tile's ~35 s;
    12 of 915 rows do not. The strips depend on the raster and ``strip_rows`` only, so the
    polygons never depend on the number of threads.
    """
    count = math.ceil(height / strip_rows)
    count += count % 2 if count > 1 else 0
    edges = [height * i // count for i in range(count + 1)] if count else [0]
    return list(pairwise(edges))


def strip_polygons(
    path: str,
    confidence: str | None,
    row0: int,
    row1: int,
    mmu_px: int,
    tolerance_px: float,
) -> tuple[PolygonBatch, np.ndarray, np.ndarray, np.ndarray]:
    """One strip's polygons: steps 1, 2, 3 of the module doc, and step 5 for those touching
    neither border with the other strips (complete already: a batch ready to write).

    The others come back in pixel coordinates (simplified with the strip's outline kept),
    with their codes and, per polygon, (confidence sum, pixel count), for the merge.
    Takes paths, not datasets, so that it runs in another thread (a GDAL dataset is not
    shared between threads).
    """
    sizes = sieve_thresholds(mmu_px)
    with rasterio.open(path) as src:
        # a halo of rows each side, the sum of the passes' sizes: a region below a pass's
        # size spans fewer rows than that size, so each pass sees every region it may remove
        halo = sum(sizes)
        top, bottom = max(0, row0 - halo), min(src.height, row1 + halo)
        block = src.read(1, window=Window(0, top, src.width, bottom - top))
        height, to_crs, crs = src.height, src.transform, src.crs
    geoms, codes = polygonize_strip(block, top, rows=(row0, row1), sieve_sizes=sizes)
    del block
    # an exact coverage for GEOS (simplification, union), whose borders with the
    # neighbouring strips have every pixel corner, for the merge
    borders = [row for row in (row0, row1) if 0 < row < height]
    geoms = coverage_vertices(geoms, dense_rows=borders, junctions=tolerance_px > 0)
    if confidence is None:
        stats = np.zeros((len(geoms), 2), dtype=np.float64)
    else:
        with rasterio.open(confidence) as conf:
            stats = _confidence_sums(conf, geoms, row0, row1)
    if len(geoms) and tolerance_px > 0:
        # the strip's outline (its borders with the next strips and the raster's edges) is
        # kept vertex for vertex, so polygons cut by a border still match across it
        geoms = shapely.coverage_simplify(geoms, tolerance_px, simplify_boundary=False)
    border = np.logical_or(*_touching_borders(geoms, row0, row1, height))
    inner = ~border
    border &= codes != NODATA  # no-data is never written: nothing to merge across a border
    batch = _finish(
        geoms[inner],
        codes[inner],
        to_crs,
        Transformer.from_crs(crs, WGS84, always_xy=True),  # its own: threads share none
        stats[inner] if confidence is not None else None,
    )
    return batch, geoms[border], codes[border], stats[border]


def _touching_borders(
    geoms: np.ndarray, row0: int, row1: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which of a strip's polygons touch its border with the strip above, and below."""
    bounds = shapely.bounds(geoms) if len(geoms) else np.empty((0, 4))
    return (bounds[:, 1] == row0) & (row0 > 0), (bounds[:, 3] == row1) & (row1 < height)


@contextmanager
def _strip_executor(workers: int) -> Iterator[Executor]:
    """``workers`` threads (at least one) that run strips ahead of the merge.

    Threads, not processes: GDAL's polygonize, GEOS and numpy release the GIL for the bulk of
    a strip, and threads spare the spawn and the pickling of every strip's geometries (about a
    tenth less CPU on the baseline full tile than two spawned processes, same output).
    """
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="earthsig-strip")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _in_order(
    pool: Executor, func: Callable[..., _T], jobs: list[tuple[Any, ...]], ahead: int
) -> Iterator[_T]:
    """func over jobs in pool, results in job order, at most ``ahead`` submitted unread."""
    todo = iter(jobs)
    queued: deque[Future[_T]] = deque(pool.submit(func, *args) for args in islice(todo, ahead))
    while queued:
        result = queued.popleft().result()
        upcoming = next(todo, None)
        if upcoming is not None:
            queued.append(pool.submit(func, *upcoming))
        yield result


def sieve_thresholds(mmu_px: int) -> list[int]:
    """Sieve passes: sizes growing fourfold from 3 px, then the MMU (empty without an MMU).

    One GDAL sieve pass merges a small region only when its chain of largest neighbours
    reaches a region of at least the threshold, so speckle (small regions whose largest
    neighbours are small too) survives it: on a model's speckled map one pass at 50 px left
    55,711 regions below 50 px in a 1024-row strip. Growing regions by steps leaves none.
    A step is taken only while it is at most half the MMU, so no pass is spent on a small
    last step: at 50 px, passes of 3, 12, 50 px take a third less time than 2, 8, 32, 50
    for as many pixels changed (833,345 against 833,383 in a strip of the baseline full
    tile, 329,792 against 329,729 in the learned model's).
    """
    if mmu_px <= 1:
        return []
    sizes = []
    size = 3
    while size <= mmu_px / 2:
        sizes.append(size)
        size *= 4
    return [*sizes, mmu_px]


def _confidence_sums(
    confidence: DatasetReader | None, geoms: np.ndarray, row0: int, row1: int
) -> np.ndarray:
    """Per polygon of the strip: (sum of confidence, pixel count); zeros without a raster."""
    stats = np.zeros((len(geoms), 2), dtype=np.float64)
    if confidence is None or not len(geoms):
        return stats
    values = confidence.read(1, window=Window(0, row0, confidence.width, row1 - row0))
    with _RASTERIO_ARRAYS:
        index = rasterize(
            zip(geoms, range(len(geoms)), strict=True),
            out_shape=values.shape,
            transform=Affine.translation(0, row0),
            fill=-1,
            dtype="int32",
        )
    inside = index >= 0
    owner = index[inside]
    stats[:, 0] = np.bincount(owner, weights=values[inside], minlength=len(geoms))
    stats[:, 1] = np.bincount(owner, minlength=len(geoms))
    return stats


def _merge_across_border(
    pending: np.ndarray,
    pending_codes: np.ndarray,
    geoms: np.ndarray,
    codes: np.ndarray,
    touches_top: np.ndarray,
    touches_bottom: np.ndarray,
    stats: np.ndarray,
    row: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Union same-code polygons sharing an edge on the border (pixel row ``row``) between
    pending and new.

    Returns every polygon of the strip plus the pending ones, merged, with their codes,
    whether each still touches the next border, and their summed ``stats`` rows (confidence
    sum, pixel count; ``stats`` has one row per pending polygon, then per new one).
    """
    n_pending = len(pending)
    items = np.empty(n_pending + len(geoms), dtype=object)
    items[:n_pending] = pending
    items[n_pending:] = geoms
    all_codes = np.concatenate([pending_codes, codes])
    bottom = np.concatenate([np.zeros(n_pending, dtype=bool), touches_bottom])
    top_idx = np.flatnonzero(touches_top) + n_pending
    pairs_a = pairs_b = np.empty(0, dtype=np.int64)
    if n_pending and len(top_idx):
        # 4-connected across the border iff they share an edge, not just a corner: the
        # pixel widths of the border each side covers, matched column by column
        old_owner, old_cells = _border_cells(items[:n_pending], row)
        new_owner, new_cells = _border_cells(items[top_idx], row)
        above = np.full(max(old_cells.max(initial=0), new_cells.max(initial=0)) + 1, -1)
        above[old_cells] = old_owner
        old_pos = above[new_cells]
        new_idx = top_idx[new_owner]
        same = (old_pos >= 0) & (all_codes[new_idx] == all_codes[np.maximum(old_pos, 0)])
        pairs = np.unique(np.column_stack([new_idx[same], old_pos[same]]), axis=0)
        pairs_a, pairs_b = pairs[:, 0], pairs[:, 1]
    n = len(items)
    graph = coo_matrix((np.ones(len(pairs_a), dtype=np.int8), (pairs_a, pairs_b)), shape=(n, n))
    _, roots = connected_components(graph, directed=False)
    sizes = np.bincount(roots, minlength=1 if n else 0)
    order = np.argsort(roots, kind="stable")  # members of each group together, in order
    starts = np.cumsum(sizes) - sizes
    firsts = order[starts] if n else np.empty(0, dtype=np.int64)
    out_geoms = items[firsts]
    out_codes = all_codes[firsts]
    out_bottom = np.bincount(roots, weights=bottom, minlength=len(sizes)) > 0
    out_stats = np.zeros((len(sizes), 2), dtype=np.float64)
    if n:
        np.add.at(out_stats, roots, stats)
    groups = np.flatnonzero(sizes > 1)
    if len(groups):
        members = [items[order[starts[g] : starts[g] + sizes[g]]] for g in groups]
        for group, union in zip(groups, _unions_at_row(members, row), strict=True):
            out_geoms[group] = union
    return out_geoms, out_codes, out_bottom, out_stats


def _unions_at_row(groups: list[np.ndarray], row: int) -> list[shapely.Geometry]:
    """Per group, the union of the pieces of one polygon cut by pixel row ``row`` (a coverage:
    GEOS's coverage union, which keeps every vertex).

    Holes that do not reach the row cannot change: they are set aside and put back, so GEOS
    nodes only the shells and the holes the border cuts (on the 2048² stress raster, whose
    large regions are riddled with holes, 0.76 -> 0.22 s of unions). Rings are sorted out for
    all groups at once: per piece in Python it cost more than it saved on a simplified full
    tile.
    """
    lengths = np.array([len(group) for group in groups])
    ends = np.cumsum(lengths)
    starts = ends - lengths
    pieces = np.concatenate(groups)
    rings, owner = shapely.get_rings(pieces, return_index=True)
    exterior = np.ones(len(rings), dtype=bool)  # a piece's rings: its exterior first
    exterior[1:] = owner[1:] != owner[:-1]
    bounds = shapely.bounds(rings) if len(rings) else np.empty((0, 4))
    aside = ~exterior & ((bounds[:, 3] < row) | (bounds[:, 1] > row))
    # a multipolygon's second exterior would pass for a hole: its rings all stay (not expected)
    aside &= (shapely.get_type_id(pieces) == shapely.GeometryType.POLYGON)[owner]
    shells = pieces.copy()
    rebuilt = np.unique(owner[aside])
    if len(rebuilt):
        keep = ~aside & np.isin(owner, rebuilt)
        shells[rebuilt] = shapely.polygons(
            rings[keep], indices=np.searchsorted(rebuilt, owner[keep])
        )
    aside_rings, aside_owner = rings[aside], owner[aside]
    unions = []
    for start, end, first, last in zip(
        starts,
        ends,
        np.searchsorted(aside_owner, starts),
        np.searchsorted(aside_owner, ends),
        strict=True,
    ):
        union = shapely.coverage_union_all(shells[start:end])
        if first < last:
            if isinstance(union, shapely.Polygon):
                holes = [*union.interiors, *aside_rings[first:last]]
                union = shapely.polygons(union.exterior, holes)
            else:  # pieces meeting at corners only: not expected, but then union them all
                union = shapely.coverage_union_all(pieces[start:end])
        unions.append(union)
    return unions


def _border_cells(geoms: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
    """(index in geoms, column) of every pixel-wide piece of the geoms' edges on row ``row``.

    Pixel-aligned polygons of a coverage: a column along the row is edged by one polygon
    above the row and one below, so matching columns finds the polygons sharing an edge
    there (numpy over the coordinates, no GEOS overlay).
    """
    _, coords, (ring_offsets, polygon_offsets) = shapely.to_ragged_array(geoms)
    ring_of = np.repeat(np.arange(len(ring_offsets) - 1), np.diff(ring_offsets))
    owner_of_ring = np.repeat(np.arange(len(geoms)), np.diff(polygon_offsets))
    start, end = coords[:-1], coords[1:]
    on_row = (start[:, 1] == row) & (end[:, 1] == row) & (ring_of[:-1] == ring_of[1:])
    first = np.minimum(start[on_row, 0], end[on_row, 0]).astype(np.int64)
    width = np.abs(end[on_row, 0] - start[on_row, 0]).astype(np.int64)
    owner = np.repeat(owner_of_ring[ring_of[:-1][on_row]], width)
    column = (
        np.repeat(first, width)
        + np.arange(int(width.sum()))
        - np.repeat(np.cumsum(width) - width, width)
    )
    return owner, column


def _finish(
    geoms: np.ndarray,
    codes: np.ndarray,
    to_crs: Affine,
    to_wgs84: Transformer,
    stats: np.ndarray | None = None,
) -> PolygonBatch:
    """Drop no-data from a batch of complete (simplified) polygons, measure them in the CRS,
    go to 4326; ``stats`` (confidence sum, pixel count per polygon) become mean confidences.

    The area in the CRS is the area in pixels times a pixel's (the grid is affine), measured
    on the small pixel coordinates; pixels go to 4326 in one pass over the coordinates.
    """
    keep = codes != NODATA
    geoms, codes = geoms[keep], codes[keep]
    mean = None
    if stats is not None:
        sums, counts = stats[keep, 0], stats[keep, 1]
        mean = np.divide(sums, counts, out=np.full(len(sums), np.nan), where=counts > 0)
    areas = shapely.area(geoms) * abs(to_crs.determinant)
    lonlat = shapely.transform(geoms, lambda xy: _pixels_to_wgs84(to_crs, to_wgs84, xy))
    return PolygonBatch(geometries=lonlat, codes=codes, areas_m2=areas, confidence=mean)


def _pixels_to_wgs84(to_crs: Affine, to_wgs84: Transformer, xy: np.ndarray) -> np.ndarray:
    a, b, c, d, e, f = to_crs[:6]
    x, y = xy[:, 0], xy[:, 1]
    lon, lat = to_wgs84.transform(a * x + b * y + c, d * x + e * y + f)
    return np.column_stack([lon, lat])
