"""The cloud mask of a product as a small translucent PNG and its corners in lon/lat."""

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


def cloud_png(store: ObjectStore, key: str) -> tuple[bytes, list[list[float]]]:
    """PNG bytes (cloud white, clear transparent) and corners (UL, UR, LR, LL) in lon/lat."""
    with store.gdal_env(), rasterio.open(store.gdal_path(key)) as src:
        scale = max(1.0, max(src.width, src.height) / MAX_PX)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        cloud = src.read(1, out_shape=shape, resampling=Resampling.nearest).astype(bool)
        left, bottom, right, top = src.bounds
        xs, ys = transform(
            src.crs, "EPSG:4326", [left, right, right, left], [top, top, bottom, bottom]
        )
    rgba = np.zeros((4, *shape), dtype=np.uint8)
    rgba[:3] = 255
    rgba[3] = np.where(cloud, 200, 0)
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
    return png, [[x, y] for x, y in zip(xs, ys, strict=True)]
