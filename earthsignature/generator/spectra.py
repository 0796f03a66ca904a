"""What the generator draws: Sentinel-2 bands, land-cover classes and their reflectance.

Surface reflectance per class is a typical L2A spectrum (vegetation red edge, water absorbing
in the NIR/SWIR, snow dark in the SWIR, bright sand), so indices such as NDVI/NDWI behave as on
real scenes; SCL classes follow ESA's scene classification (4 vegetation, 5 not vegetated,
6 water, 11 snow, 3 cloud shadow, 8/9 cloud medium/high probability).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    """A Sentinel-2 band: ESA id, Earth Search common-name asset key, native resolution."""

    id: str
    asset_key: str
    resolution: int
    wavelength: float
    title: str


#: The 12 L2A reflectance bands, in ESA order, as Earth Search v1 names their assets.
BANDS: tuple[Band, ...] = (
    Band("B01", "coastal", 60, 0.443, "Coastal aerosol (band 1) - 60m"),
    Band("B02", "blue", 10, 0.490, "Blue (band 2) - 10m"),
    Band("B03", "green", 10, 0.560, "Green (band 3) - 10m"),
    Band("B04", "red", 10, 0.665, "Red (band 4) - 10m"),
    Band("B05", "rededge1", 20, 0.704, "Red edge 1 (band 5) - 20m"),
    Band("B06", "rededge2", 20, 0.740, "Red edge 2 (band 6) - 20m"),
    Band("B07", "rededge3", 20, 0.783, "Red edge 3 (band 7) - 20m"),
    Band("B08", "nir", 10, 0.842, "NIR 1 (band 8) - 10m"),
    Band("B8A", "nir08", 20, 0.865, "NIR 2 (band 8A) - 20m"),
    Band("B09", "nir09", 60, 0.945, "NIR 3 (band 9) - 60m"),
    Band("B11", "swir16", 20, 1.610, "SWIR 1 (band 11) - 20m"),
    Band("B12", "swir22", 20, 2.190, "SWIR 2 (band 12) - 20m"),
)
SCL_RESOLUTION = 20

#: CORINE level-3 codes drawn, with their share of the patches.
RIVER = 511
CLASSES: tuple[int, ...] = (512, 311, 312, 211, 231, 112, 111, 332, 333, 331, 335, RIVER)
CLASS_WEIGHTS = np.array([0.07, 0.12, 0.10, 0.26, 0.15, 0.07, 0.03, 0.05, 0.06, 0.04, 0.05, 0.0])

#: Surface reflectance of each class in BANDS order (B01 ... B12).
REFLECTANCE = np.array(
    [
        # B01  B02   B03   B04   B05   B06   B07   B08   B8A   B09   B11   B12
        [0.06, 0.05, 0.04, 0.03, 0.025, 0.02, 0.02, 0.015, 0.012, 0.010, 0.005, 0.003],  # 512
        [0.03, 0.03, 0.06, 0.03, 0.09, 0.28, 0.35, 0.38, 0.40, 0.38, 0.18, 0.08],  # 311
        [0.025, 0.025, 0.045, 0.025, 0.06, 0.18, 0.22, 0.24, 0.25, 0.24, 0.12, 0.05],  # 312
        [0.05, 0.05, 0.09, 0.06, 0.13, 0.30, 0.38, 0.42, 0.44, 0.42, 0.25, 0.13],  # 211
        [0.04, 0.04, 0.08, 0.05, 0.12, 0.25, 0.30, 0.33, 0.35, 0.33, 0.24, 0.13],  # 231
        [0.09, 0.09, 0.11, 0.12, 0.14, 0.16, 0.18, 0.20, 0.21, 0.21, 0.22, 0.19],  # 112
        [0.11, 0.11, 0.13, 0.15, 0.16, 0.17, 0.18, 0.19, 0.20, 0.20, 0.23, 0.21],  # 111
        [0.12, 0.13, 0.17, 0.21, 0.23, 0.25, 0.26, 0.27, 0.28, 0.28, 0.33, 0.28],  # 332
        [0.08, 0.08, 0.11, 0.13, 0.16, 0.20, 0.22, 0.24, 0.25, 0.25, 0.28, 0.22],  # 333
        [0.15, 0.17, 0.23, 0.29, 0.32, 0.34, 0.35, 0.36, 0.37, 0.37, 0.42, 0.36],  # 331
        [0.85, 0.85, 0.83, 0.80, 0.78, 0.75, 0.72, 0.70, 0.68, 0.65, 0.08, 0.06],  # 335
        [0.07, 0.06, 0.06, 0.05, 0.045, 0.035, 0.03, 0.025, 0.02, 0.015, 0.010, 0.006],  # 511
    ],
    dtype=np.float32,
)
#: A thick cloud's reflectance per band (bright and flat, lower in the SWIR).
CLOUD_REFLECTANCE = np.array(
    [0.62, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.59, 0.45, 0.42, 0.30], dtype=np.float32
)
#: Shadowed ground keeps this share of its reflectance.
SHADOW_FACTOR = np.float32(0.3)
#: Per-pixel noise: standard deviation of surface reflectance.
NOISE_SIGMA = np.float32(0.006)

SCL_NO_DATA = 0
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_CLOUD_MEDIUM = 8
SCL_CLOUD_HIGH = 9
SCL_SNOW = 11

#: SCL class of each entry of CLASSES.
CLASS_SCL = np.array(
    [
        SCL_WATER,  # 512
        SCL_VEGETATION,  # 311
        SCL_VEGETATION,  # 312
        SCL_VEGETATION,  # 211
        SCL_VEGETATION,  # 231
        SCL_NOT_VEGETATED,  # 112
        SCL_NOT_VEGETATED,  # 111
        SCL_NOT_VEGETATED,  # 332
        SCL_NOT_VEGETATED,  # 333
        SCL_NOT_VEGETATED,  # 331
        SCL_SNOW,  # 335
        SCL_WATER,  # 511
    ],
    dtype=np.uint8,
)
CLASS_CODES = np.array(CLASSES, dtype=np.uint16)

assert REFLECTANCE.shape == (len(CLASSES), len(BANDS))
assert len(CLASS_WEIGHTS) == len(CLASSES) and abs(CLASS_WEIGHTS.sum() - 1) < 1e-9
