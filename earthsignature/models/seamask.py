"""Sea and ocean (CORINE 523) apart from inland water (511/512) by an authoritative land/sea
boundary, not by the pixel's spectrum: water looks the same in a lake and in the sea.

CORINE defines 523 as the zone seaward of the lowest tide limit and 51x as water bodies on land.
A model with ``postprocess: ["sea"]`` in its metadata gets its inland-water codes (511, 512)
turned into 523 wherever the pixel centre lies outside the land polygons of Natural Earth 1:10m
(public domain; lakes are part of the land there, so lakes and reservoirs stay 512). No buffer:
the boundary is used as published, since shrinking or growing it would trade one error for the
other. Pixels outside :data:`COVERAGE` are left as they are (no boundary known there).

Positional accuracy: Natural Earth 1:10m is generalised for 1:10,000,000 maps, and the
``world-atlas`` TopoJSON it comes from is quantised to 0.0036 deg x 0.0017 deg (about 230 x 190 m
at 50 N), so the coast can be off by a few hundred metres, more in skerries and fjords, where
small islands and narrow inlets are missing. Coastal lagoons (521) and estuaries (522) lie
outside the land and become 523; CORINE would call them 521/522.

The polygons (``landsea/land-10m-europe.fgb``, built by :mod:`~earthsignature.models.landsea_build`)
are read once per process; :class:`LandMask` projects those near one raster grid once and
rasterises them per window, only for windows that hold inland water.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyogrio
import rasterio.features
import shapely
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import Affine, array_bounds
from rasterio.warp import transform_bounds

from earthsignature.models.spec import SEA_CODE

#: What ``postprocess`` in a model's metadata may name.
Postprocess = Literal["sea"]
SEA = SEA_CODE
INLAND_WATER = (511, 512)  # consecutive: tested as a range
#: lon/lat box the shipped land polygons cover (Europe's Sentinel-2 extent with the Azores,
#: Canaries, Iceland, North Africa's and Turkey's coasts).
COVERAGE = (-32.0, 26.0, 45.0, 72.0)
LAND_FILE = Path(__file__).with_name("landsea") / "land-10m-europe.fgb"
#: Degrees around a grid's lon/lat bounds kept when clipping the polygons for it.
_MARGIN = 0.05
_OUTSIDE, _WATER, _LAND = 0, 1, 2


@functools.cache
def land_polygons() -> tuple[np.ndarray, shapely.STRtree]:
    """The shipped land polygons (EPSG:4326) and their spatial index, read once."""
    _meta, _fids, wkb, _fields = pyogrio.raw.read(LAND_FILE)
    polygons = shapely.from_wkb(wkb)
    return polygons, shapely.STRtree(polygons)


def _project(geoms: np.ndarray, crs: CRS) -> np.ndarray:
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = to_crs.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, move)


class LandMask:
    """The land polygons near one grid (a tile or a patch) in its CRS, rasterised per window."""

    def __init__(self, crs: Any, bounds: Sequence[float]) -> None:
        self.crs = CRS.from_user_input(crs)
        west, south, east, north = transform_bounds(self.crs, "EPSG:4326", *bounds, densify_pts=21)
        box = (
            max(west - _MARGIN, COVERAGE[0]),
            max(south - _MARGIN, COVERAGE[1]),
            min(east + _MARGIN, COVERAGE[2]),
            min(north + _MARGIN, COVERAGE[3]),
        )
        self.covered = box[0] < box[2] and box[1] < box[3]
        self._coverage = shapely.Polygon()
        self._land = np.empty(0, dtype=object)
        if not self.covered:
            return
        polygons, tree = land_polygons()
        near = polygons[tree.query(shapely.box(*box))]
        clipped = shapely.clip_by_rect(near, *box)
        self._land = _project(clipped[~shapely.is_empty(clipped)], self.crs)
        self._tree = shapely.STRtree(self._land)
        self._coverage = _project(np.asarray([shapely.box(*box)], dtype=object), self.crs)[0]
        shapely.prepare(self._coverage)
        shapely.prepare(self._land)

    def zones(self, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
        """uint8 per pixel centre: 0 outside the coverage, 1 water, 2 land. A window wholly
        at sea or wholly inside one land polygon is answered without rasterising."""
        if not self.covered:
            return np.zeros(shape, dtype=np.uint8)
        window = shapely.box(*array_bounds(shape[0], shape[1], transform))
        inside = bool(self._coverage.contains(window))
        land = self._land[self._tree.query(window)]
        if inside and not len(land):
            return np.full(shape, _WATER, dtype=np.uint8)
        if inside and shapely.contains(land, window).any():
            return np.full(shape, _LAND, dtype=np.uint8)
        # only the parts near the window: a continent has tens of thousands of vertices
        x0, y0, x1, y1 = window.buffer(max(abs(transform.a), abs(transform.e))).bounds
        parts = shapely.clip_by_rect(land, x0, y0, x1, y1)
        shapes = [(self._coverage, _WATER), *((g, _LAND) for g in parts if not g.is_empty)]
        return rasterio.features.rasterize(
            shapes, out_shape=shape, transform=transform, fill=_OUTSIDE, dtype="uint8"
        )

    def apply(self, codes: np.ndarray, transform: Affine) -> np.ndarray:
        """``codes`` with inland-water codes outside the land turned into 523 (a new array
        when anything changes, else ``codes`` itself)."""
        inland = (codes >= INLAND_WATER[0]) & (codes <= INLAND_WATER[-1])
        if not self.covered or not inland.any():
            return codes
        height, width = codes.shape
        sea = inland & (self.zones(transform, (height, width)) == _WATER)
        return np.where(sea, np.uint16(SEA), codes).astype(codes.dtype) if sea.any() else codes


def apply_sea(codes: np.ndarray, crs: Any, transform: Affine) -> np.ndarray:
    """One raster's inland-water codes outside the land -> 523 (see :class:`LandMask`)."""
    bounds = array_bounds(codes.shape[0], codes.shape[1], transform)
    return LandMask(crs, (bounds[0], bounds[1], bounds[2], bounds[3])).apply(codes, transform)


def postprocess(
    steps: Sequence[str], codes: np.ndarray, crs: Any | None, transform: Affine | None
) -> np.ndarray:
    """A model's declared post-inference steps on a georeferenced code raster; without a
    georeference (``crs`` None) nothing can be placed, and ``codes`` is returned as it is."""
    if "sea" in steps and crs is not None and transform is not None:
        return apply_sea(codes, crs, transform)
    return codes
