"""Cloud masks from the Sentinel-2 scene classification (SCL): pure array code."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: SCL classes counted as cloud: cloud shadow, cloud medium/high probability, thin cirrus.
CLOUD_CLASSES = (3, 8, 9, 10)
#: SCL classes without usable data: no data, saturated or defective.
INVALID_CLASSES = (0, 1)


def upsample(scl: NDArray[np.uint8], factor: int) -> NDArray[np.uint8]:
    """Nearest-neighbour upsampling of a 20 m SCL window onto the 10 m grid."""
    return np.repeat(np.repeat(scl, factor, axis=0), factor, axis=1)


def cloud_mask(scl: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """1 where SCL says cloud or shadow, else 0."""
    return np.isin(scl, CLOUD_CLASSES).astype(np.uint8)


def valid_mask(scl: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """True where SCL has usable data."""
    return ~np.isin(scl, INVALID_CLASSES)


def counts(scl: NDArray[np.uint8], inside: NDArray[np.bool_] | None = None) -> tuple[int, int, int]:
    """(cloud pixels, valid pixels) inside the area, and valid pixels anywhere."""
    return mask_counts(np.isin(scl, CLOUD_CLASSES), valid_mask(scl), inside)


def mask_counts(
    cloud: NDArray[np.bool_], valid: NDArray[np.bool_], inside: NDArray[np.bool_] | None = None
) -> tuple[int, int, int]:
    """(cloud pixels, valid pixels) inside the area, and valid pixels anywhere, of any mask."""
    area = valid if inside is None else valid & inside
    return int((cloud & area).sum()), int(area.sum()), int(valid.sum())


def cloud_percent(cloud: int, valid: int) -> float:
    """Cloud share of valid pixels in percent (0 when there are none)."""
    return 100.0 * cloud / valid if valid else 0.0
