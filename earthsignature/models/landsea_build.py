"""Builds the shipped land polygons (:data:`earthsignature.models.seamask.LAND_FILE`) from
Natural Earth's 1:10m land (public domain), as redistributed in TopoJSON by npm ``world-atlas``.

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python -m earthsignature.models.landsea_build package/land-10m.json

Steps: read the TopoJSON with GDAL, unwrap rings across the antimeridian, keep the polygons
whose envelope meets the coverage box (:data:`~earthsignature.models.seamask.COVERAGE`), repair
them (quantised TopoJSON rings touch themselves), clip to the box, dissolve, and write one
polygon per feature as FlatGeobuf with a spatial index (EPSG:4326). The output is byte-for-byte
reproducible from the same input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyogrio
import shapely

from earthsignature.models.seamask import COVERAGE, LAND_FILE

_POLYGON = 3
_COLLECTIONS = (4, 5, 6, 7)  # multi-point/line/polygon, geometry collection


def _explode(geoms: np.ndarray) -> np.ndarray:
    """Every polygon inside ``geoms``, collections opened recursively; other types dropped."""
    parts = shapely.get_parts(geoms)
    while (nested := np.isin(shapely.get_type_id(parts), _COLLECTIONS)).any():
        parts = np.concatenate([parts[~nested], shapely.get_parts(parts[nested])])
    return parts[shapely.get_type_id(parts) == _POLYGON]


def _unwrap_ring(ring: np.ndarray) -> np.ndarray:
    """Longitudes made continuous along a ring: a ring that crosses the antimeridian (Eurasia
    through Chukotka) comes as one ring jumping from 180 to -180, which cuts a band across
    the whole map in planar geometry; past the jump it goes on beyond 180 instead."""
    out = ring.copy()
    out[1:, 0] -= 360.0 * np.cumsum(np.round(np.diff(ring[:, 0]) / 360.0))
    out[:, 0] -= 360.0 * np.round(np.median(out[:, 0]) / 360.0)  # most of it in -180..180
    return out


def _unwrap(polygon: shapely.Polygon) -> shapely.Polygon:
    rings = [
        np.asarray(polygon.exterior.coords),
        *map(np.asarray, (r.coords for r in polygon.interiors)),
    ]
    exterior, *holes = (_unwrap_ring(r) for r in rings)
    return shapely.Polygon(exterior, holes)


def land_polygons(topojson: Path) -> np.ndarray:
    """The land polygons of a ``world-atlas`` TopoJSON inside :data:`COVERAGE`, dissolved."""
    _meta, _fids, wkb, _fields = pyogrio.raw.read(topojson)
    polygons = np.asarray([_unwrap(p) for p in _explode(shapely.from_wkb(wkb))], dtype=object)
    box = shapely.box(*COVERAGE)
    polygons = polygons[shapely.intersects(shapely.envelope(polygons), box)]
    clipped = shapely.clip_by_rect(shapely.make_valid(polygons), *COVERAGE)
    return _explode(np.asarray([shapely.union_all(clipped)], dtype=object))


def write(polygons: np.ndarray, out: Path) -> None:
    out.unlink(missing_ok=True)
    pyogrio.raw.write(
        out,
        shapely.to_wkb(polygons),
        geometry_type="Polygon",
        crs="EPSG:4326",
        driver="FlatGeobuf",
        fields=[],
        field_data=[],
        layer="land",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topojson", type=Path, help="world-atlas@2 land-10m.json")
    parser.add_argument("--out", type=Path, default=LAND_FILE)
    args = parser.parse_args()
    polygons = land_polygons(args.topojson)
    write(polygons, args.out)
    vertices = int(shapely.get_num_coordinates(polygons).sum())
    print(f"{args.out}: {len(polygons)} polygons, {vertices} vertices")


if __name__ == "__main__":
    main()
