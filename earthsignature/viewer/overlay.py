"""A product's cloud mask or confidence map as a small translucent PNG, and its corners in
lon/lat, for the viewer's image overlays."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.warp import transform

from earthsignature.storage.base import ObjectStore

#: Longest side of the overlay image (the mask is read decimated, from its overviews).
MAX_PX = 1024


#: No-data value of the confidence COG (values are 0..100 percent).
CONFIDENCE_NODATA = 255


def _read_decimated(store: ObjectStore, key: str) -> tuple[np.ndarray, list[list[float]]]:
    """Band 1 read at most MAX_PX a side (nearest), and the corners (UL, UR, LR, LL) in
    lon/lat."""
    with store.gdal_env(), rasterio.open(store.gdal_path(key)) as src:
        scale = max(1.0, max(src.width, src.height) / MAX_PX)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        data = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        left, bottom, right, top = src.bounds
        xs, ys = transform(
            src.crs, "EPSG:4326", [left, right, right, left], [top, top, bottom, bottom]
        )
    return data, [[x, y] for x, y in zip(xs, ys, strict=True)]


def cloud_png(store: ObjectStore, key: str) -> tuple[bytes, list[list[float]]]:
    """PNG bytes (cloud white, clear transparent) and corners (UL, UR, LR, LL) in lon/lat."""
    data, corners = _read_decimated(store, key)
    cloud = data.astype(bool)
    rgba = np.zeros((4, *cloud.shape), dtype=np.uint8)
    rgba[:3] = 255
    rgba[3] = np.where(cloud, 200, 0)
    return _png(rgba), corners


def confidence_png(store: ObjectStore, key: str) -> tuple[bytes, list[list[float]]]:
    """The per-pixel confidence (uint8 percent, 255 no data) as a greyscale PNG: black is
    0 %, white 100 %, no data transparent; and its corners in lon/lat."""
    data, corners = _read_decimated(store, key)
    valid = data != CONFIDENCE_NODATA
    grey = np.clip(data.astype(np.float32), 0, 100) * 2.55
    rgba = np.zeros((4, *data.shape), dtype=np.uint8)
    rgba[:3] = np.where(valid, np.round(grey), 0).astype(np.uint8)
    rgba[3] = np.where(valid, 255, 0)  # opaque: read as is, not mixed with the classes
    return _png(rgba), corners


def _png(rgba: np.ndarray) -> bytes:
    shape = rgba.shape[1:]
    profile: dict[str, Any] = {
        "driver": "PNG",
        "width": shape[1],
        "height": shape[0],
        "count": 4,
        "dtype": "uint8",
    }
    with warnings.catch_warnings():  # a PNG overlay has no georeferencing, by design
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(rgba)
            png = bytes(mem.read())
    return png
