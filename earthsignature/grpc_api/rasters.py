"""AOI-clipped rasters for the API: windowed range reads of stored COGs to GeoTIFF bytes.

Only the window covering the area (reprojected to the raster's CRS) is read, through
``store.gdal_path`` (``/vsis3/`` range requests on S3); pixels outside the area are set to 0.
A window larger than ``max_pixels`` is read decimated (GDAL picks the COG overview), so one
response stays within the message size limit. The area is first cut to the raster's
neighbourhood in lon/lat, so a whole-world or far-away area never reprojects to infinities.

Masks are rasterized under one lock: rasterio's ``_rasterize`` hides the
NotGeoreferencedWarning of its in-memory dataset with ``warnings.catch_warnings``, which swaps
the process-wide filter list, so two overlapping calls on different threads could restore each
other's filters and let that warning (and others) through. The answers were right; the warning
was not.

Segmentation clips carry the CLC palette (a colour table) and the class names (band
description and one ``CLC_<code>`` tag per class), as the published COGs do, so QGIS/GDAL draw
and label them without the client knowing the CLC table. A uint16 colour table has 65536
entries (384 KiB in the file) whatever the area's size. A stored raster that exists but cannot
be read (truncated, corrupt) is a :class:`~earthsignature.storage.errors.CorruptObject`.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from earthsignature import corine
from earthsignature.grpc_api.errors import unreadable
from earthsignature.storage.base import ObjectStore

_EPS = 1e-6

#: Serialises rasterio's rasterize (see the module docstring).
_RASTERIZE_LOCK = threading.Lock()

#: Band description of a segmentation clip.
SEGMENTATION_DESCRIPTION = "CORINE Land Cover level-3 code (0 = no data)"


def class_tags() -> dict[str, str]:
    """``CLC_<code>`` -> class name, for every CORINE level-3 class (band metadata)."""
    return {f"CLC_{code}": cls.label for code, cls in corine.CLASSES.items()}


def _near_raster(src: rasterio.DatasetReader, aoi: BaseGeometry) -> BaseGeometry:
    """The part of ``aoi`` (lon/lat) within a margin around the raster's lon/lat bounds."""
    west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    margin = max(0.01, 0.05 * max(abs(north - south), 0.0))
    south, north = max(-90.0, south - margin), min(90.0, north + margin)
    if west > east:  # the raster crosses the antimeridian: keep every longitude
        west, east = -180.0, 180.0
    else:
        west, east = max(-180.0, west - margin), min(180.0, east + margin)
    return aoi.intersection(box(west, south, east, north))


def _window_for(src: rasterio.DatasetReader, aoi_src: dict[str, Any]) -> Window | None:
    """Pixel window of the area's bounds, rounded outwards, clipped to the raster."""
    minx, miny, maxx, maxy = shape(aoi_src).bounds
    inverse = ~src.transform
    cols, rows = zip(
        *(inverse * (x, y) for x, y in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy))),
        strict=True,
    )
    # a micro-pixel tolerance, so reprojection noise never adds a whole row or column
    col0, col1 = max(0, math.floor(min(cols) + _EPS)), min(src.width, math.ceil(max(cols) - _EPS))
    row0, row1 = max(0, math.floor(min(rows) + _EPS)), min(src.height, math.ceil(max(rows) - _EPS))
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _open(store: ObjectStore, key: str) -> rasterio.DatasetReader:
    """Open a stored raster; a committed raster that cannot be read is the store's failure."""
    try:
        return rasterio.open(store.gdal_path(key))
    except RasterioIOError as exc:
        raise unreadable(store, key, exc) from None


def clip_to_geotiff(
    store: ObjectStore,
    key: str,
    aoi: BaseGeometry | None,
    *,
    max_pixels: int,
    nbits: int | None = None,
    classes: bool = False,
) -> bytes | None:
    """GeoTIFF bytes of band 1 of ``key`` inside ``aoi`` (EPSG:4326).

    None when the area misses the raster. ``aoi=None`` returns the whole raster.
    ``classes``: add the CLC colour table and class names (segmentations).
    """
    with store.gdal_env():
        try:
            return _clip(store, key, aoi, max_pixels=max_pixels, nbits=nbits, classes=classes)
        except RasterioIOError as exc:  # opened, then a tile read failed (e.g. truncated)
            raise unreadable(store, key, exc) from None


def _clip(
    store: ObjectStore,
    key: str,
    aoi: BaseGeometry | None,
    *,
    max_pixels: int,
    nbits: int | None,
    classes: bool,
) -> bytes | None:
    with _open(store, key) as src:
        if aoi is not None:
            aoi = _near_raster(src, aoi)
            if aoi.is_empty:
                return None
        aoi_src = transform_geom("EPSG:4326", src.crs, mapping(aoi)) if aoi is not None else None
        window = (
            _window_for(src, aoi_src)
            if aoi_src is not None
            else Window(0, 0, src.width, src.height)
        )
        if window is None:
            return None
        scale = max(1.0, math.sqrt(window.width * window.height / max_pixels))
        out_w = max(1, math.ceil(window.width / scale))
        out_h = max(1, math.ceil(window.height / scale))
        data = src.read(1, window=window, out_shape=(out_h, out_w), resampling=Resampling.nearest)
        transform = src.window_transform(window) * Affine.scale(
            window.width / out_w, window.height / out_h
        )
        if aoi_src is not None:
            with _RASTERIZE_LOCK:
                outside = geometry_mask([aoi_src], (out_h, out_w), transform, all_touched=True)
            if outside.all():
                return None  # the bounding window meets the raster, the area does not
            data[outside] = 0
        profile = {
            "driver": "GTiff",
            "width": out_w,
            "height": out_h,
            "count": 1,
            "dtype": data.dtype,
            "crs": src.crs,
            "transform": transform,
            "compress": "deflate",
            "tiled": out_w >= 256 and out_h >= 256,
        }
        if src.nodata is not None:
            profile["nodata"] = src.nodata
    if nbits is not None:
        profile["nbits"] = nbits
    return _geotiff_bytes(data, profile, classes)


def _geotiff_bytes(data: np.ndarray, profile: dict[str, Any], classes: bool) -> bytes:
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data, 1)
            if classes:
                dst.write_colormap(1, corine.colormap())
                dst.set_band_description(1, SEGMENTATION_DESCRIPTION)
                dst.update_tags(1, **class_tags())
        return bytes(memfile.read())
