"""AOI-clipped land-cover polygons for V2: FlatGeobuf read by bounding box, clipped, filtered.

pyogrio reads only the features whose boxes meet the area's bounding box (FlatGeobuf's spatial
index, range requests on ``/vsis3/``) and only the requested categories (an attribute filter).
Everything after the read works on whole arrays: polygons inside the area are kept as they are,
only those crossing its edge are clipped (shapely, prepared area), and the clipped parts' areas
come from equal-area projections (:func:`equal_area_m2`). Products published with pre-encoded
features are answered by :mod:`~earthsignature.polygons.encoded` instead (same answer).
"""

from __future__ import annotations

import numpy as np
import pyogrio.errors
import pyogrio.raw
import shapely
from shapely.geometry.base import BaseGeometry

from earthsignature.grpc_api.errors import unreadable
from earthsignature.polygons.table import PolygonTable, clip, equal_area_m2
from earthsignature.storage.base import ObjectStore


def read_table(
    store: ObjectStore,
    key: str,
    aoi: BaseGeometry | None,
    categories: frozenset[int] = frozenset(),
) -> PolygonTable:
    """Polygons of ``key`` inside ``aoi`` (all when None), of the given codes (all).

    With an area, ``area_m2`` is that of the clipped part (rounded to 0.1 m²).
    """
    where = f"code IN ({','.join(str(int(c)) for c in sorted(categories))})" if categories else None
    with store.gdal_env():
        try:
            meta, _fids, wkb, columns = pyogrio.raw.read(
                store.gdal_path(key), bbox=aoi.bounds if aoi is not None else None, where=where
            )
        # missing, truncated or not FlatGeobuf: the open or a feature fails (pyogrio raises
        # IndexError when a truncated file still opens but lists no layer)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, IndexError) as exc:
            raise unreadable(store, key, exc) from None
    names = tuple(str(n) for n in meta["fields"])
    if wkb is None or len(wkb) == 0:
        return PolygonTable(np.empty(0, dtype=object), names, tuple(c[:0] for c in columns))
    geometries = shapely.from_wkb(wkb)
    if aoi is None:
        return PolygonTable(geometries, names, tuple(columns))
    geometries, rows = clip(geometries, aoi)
    columns = [c[rows] for c in columns]
    if "area_m2" in names:
        columns[names.index("area_m2")] = np.round(equal_area_m2(geometries), 1)
    return PolygonTable(geometries, names, tuple(columns))
