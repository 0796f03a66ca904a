"""A query area as a request's polygon reads use it: prepared, and a grid of its edge's cells.

Built once per request (:class:`Area`) and shared by the reads of all its products, so the
per-product work of sorting polygon boxes into inside / edge / outside (:func:`classify`) is a
few array operations on the boxes alone.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from earthsignature.polygons.table import rectangle

#: Grid cells along the area's longer side (the edge's pieces are at most one cell long).
GRID = 64
#: Degrees added around each boundary piece's extent (about 0.1 mm): the pieces of a
#: segmentized edge follow it to rounding, this keeps the test on the safe side.
_PAD = 1e-9


class Area:
    """A query area, prepared, with the cells of a grid over its bounds that its edge meets.

    The geometry is prepared (GEOS prepared predicates are not safe across threads): use an
    :class:`Area` from one thread; :attr:`wkb` lets a worker thread make its own copy. The
    boundary is cut into pieces of at most one cell (a long slanted edge's one extent would
    cover much of the area) and every cell a piece's extent meets is marked; ``_counts`` is
    the marked cells' summed-area table, so a box's test costs four look-ups.
    """

    def __init__(self, geometry: BaseGeometry) -> None:
        shapely.prepare(geometry)
        self.geometry = geometry
        xmin, ymin, xmax, ymax = geometry.bounds
        self.bounds: tuple[float, float, float, float] = (xmin, ymin, xmax, ymax)
        self.cell = max(xmax - xmin, ymax - ymin) / GRID or 1.0
        self.shape = (int((ymax - ymin) // self.cell) + 1, int((xmax - xmin) // self.cell) + 1)
        rings = shapely.segmentize(shapely.get_rings(shapely.get_parts(geometry)), self.cell)
        coords, ring = shapely.get_coordinates(rings, return_index=True)
        same = ring[1:] == ring[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        lo, hi = np.minimum(a, b) - _PAD, np.maximum(a, b) + _PAD
        x0, x1 = self._cells(lo[:, 0], hi[:, 0], 1)
        y0, y1 = self._cells(lo[:, 1], hi[:, 1], 0)
        marked = np.zeros(self.shape, dtype=np.int32)
        for dy in range(int((y1 - y0).max(initial=0)) + 1):
            for dx in range(int((x1 - x0).max(initial=0)) + 1):
                sel = (y0 + dy <= y1) & (x0 + dx <= x1)
                marked[y0[sel] + dy, x0[sel] + dx] = 1
        self._counts = np.zeros((self.shape[0] + 1, self.shape[1] + 1), dtype=np.int32)
        self._counts[1:, 1:] = marked.cumsum(0).cumsum(1)
        self._wkb: bytes | None = None
        #: Its bounds when it is an axis-aligned rectangle (clipped by GEOS's fast rectangle cut)
        self.rectangle = rectangle(geometry)

    def _cells(self, lo: np.ndarray, hi: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Grid columns (axis 1) or rows (axis 0) of [lo, hi], clamped to the grid: monotonic,
        so two overlapping intervals always get overlapping cell ranges."""
        origin, last = self.bounds[1 - axis], self.shape[axis] - 1
        first = np.clip(np.floor((lo - origin) / self.cell), 0, last).astype(np.int64)
        end = np.clip(np.floor((hi - origin) / self.cell), 0, last).astype(np.int64)
        return first, end

    @property
    def wkb(self) -> bytes:
        """The geometry's WKB (a worker thread's own copy comes from it: same coordinates)."""
        if self._wkb is None:
            self._wkb = shapely.to_wkb(self.geometry)
        return self._wkb

    @classmethod
    def of(cls, aoi: BaseGeometry | Area) -> Area:
        return aoi if isinstance(aoi, Area) else cls(aoi)

    def classify(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which boxes (xmin, ymin, xmax, ymax rows) lie inside the area without touching its
        edge, and which may cross it.

        A box meeting no marked cell meets no extent of the boundary's pieces, so it is wholly
        inside or wholly outside: its centre tells. The others may cross the edge (a superset
        of those that do: cells are coarser than the pieces), to be clipped by GEOS, which
        keeps those the area contains as they are.
        """
        x0, x1 = self._cells(boxes[:, 0], boxes[:, 2], 1)
        y0, y1 = self._cells(boxes[:, 1], boxes[:, 3], 0)
        c = self._counts
        edge = (c[y1 + 1, x1 + 1] - c[y0, x1 + 1] - c[y1 + 1, x0] + c[y0, x0]) > 0
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = ~edge & shapely.contains_xy(self.geometry, centres[:, 0], centres[:, 1])
        return inside, edge
