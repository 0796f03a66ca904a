"""AOI-clipped land-cover polygons for V2: FlatGeobuf read by bounding box, clipped, filtered.

pyogrio reads only the features whose boxes meet the area's bounding box (FlatGeobuf's spatial
index, range requests on ``/vsis3/``) and only the requested categories (an attribute filter);
shapely clips them to the area and keeps their polygonal parts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyogrio.raw
import shapely
from pyproj import Geod
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from earthsignature.storage.base import ObjectStore


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (the geobuf encoder knows only the latter)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


_GEOD = Geod(ellps="WGS84")


def geodesic_area_m2(geometry: BaseGeometry) -> float:
    """Area in m² of a lon/lat geometry on the WGS84 ellipsoid."""
    area, _perimeter = _GEOD.geometry_area_perimeter(geometry)
    return abs(float(area))


def _polygonal(geometry: BaseGeometry) -> BaseGeometry | None:
    if geometry.is_empty:
        return None
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    if geometry.geom_type == "GeometryCollection":
        parts = [g for g in geometry.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        if parts:
            return shapely.union_all(parts)
    return None


def read_polygons(
    store: ObjectStore,
    key: str,
    aoi: BaseGeometry | None,
    categories: frozenset[int] = frozenset(),
) -> Iterator[dict[str, Any]]:
    """GeoJSON features of ``key`` inside ``aoi`` (all when None), of the given codes (all)."""
    where = f"code IN ({','.join(str(int(c)) for c in sorted(categories))})" if categories else None
    with store.gdal_env():
        meta, _fids, wkb, columns = pyogrio.raw.read(
            store.gdal_path(key), bbox=aoi.bounds if aoi is not None else None, where=where
        )
    if wkb is None or len(wkb) == 0:
        return
    geometries = shapely.from_wkb(wkb)
    if aoi is not None:
        shapely.prepare(aoi)
        keep = shapely.intersects(aoi, geometries)
        geometries = shapely.intersection(geometries, aoi)
    else:
        keep = np.ones(len(geometries), dtype=bool)
    names = list(meta["fields"])
    for i in np.flatnonzero(keep):
        geometry = _polygonal(geometries[i])
        if geometry is None:
            continue
        properties = {name: _plain(column[i]) for name, column in zip(names, columns, strict=True)}
        if aoi is not None and "area_m2" in properties:
            properties["area_m2"] = round(geodesic_area_m2(geometry), 1)  # of the clipped part
        yield {"type": "Feature", "geometry": mapping(geometry), "properties": properties}
