"""Small in-memory rasters for tests and benchmarks."""

from __future__ import annotations

import numpy as np
from affine import Affine
from rasterio.io import MemoryFile


def geotiff_bytes(array: np.ndarray, transform: Affine, crs: str, **extra: object) -> bytes:
    """The bytes of a one-band GeoTIFF of ``array`` on the given grid."""
    with MemoryFile() as memfile:
        with memfile.open(
            driver="GTiff",
            width=array.shape[1],
            height=array.shape[0],
            count=1,
            dtype=array.dtype,
            crs=crs,
            transform=transform,
            **extra,
        ) as dst:
            dst.write(array, 1)
        return bytes(memfile.read())
