"""Shared by the composite tests: a small two-date tile whose map changes between dates."""

from __future__ import annotations

import datetime as dt

import numpy as np
from affine import Affine

TILE, CRS = "31TCJ", "EPSG:32631"
TRANSFORM = Affine(10, 0, 300000, 0, -10, 4800000)
DAYS = (dt.date(2024, 7, 1), dt.date(2024, 7, 11))


def labels(day: dt.date) -> np.ndarray:
    """Forest on the left, arable on the right that is bare on the first date."""
    out = np.full((64, 64), 311, dtype=np.uint16)
    out[:, 32:] = 333 if day == DAYS[0] else 211
    return out
