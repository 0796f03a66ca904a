"""Per-class areas of tile-period composites inside an area (``earthsig stats --composite``).

A composite (see :mod:`earthsignature.composites`) is read like a product's segmentation:
windows under the area only, codes counted by area, pixels never seen clear (code 0) left
out. With ``min_confidence`` the composite's own confidence (share of the clear observations
that support the code) filters pixels, the rest counted apart as ``low_confidence_m2``.
Composites of the same period on several tiles add up. There is no cloud in a composite
(cloudy observations were never counted), so ``cloud_m2`` is 0.
"""

from __future__ import annotations

import json

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from earthsignature.composites.periods import period_range
from earthsignature.stats.areas import (
    _CODES,
    DEFAULT_WINDOW_PX,
    DateAreas,
    _add_window,
    _open,
    _pixel_m2,
    _windows,
    check_min_confidence,
)
from earthsignature.storage import catalog, layout
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.errors import CorruptObject


def composite_items(
    store: ObjectStore, model: str, version: int, period: str, aoi: BaseGeometry
) -> list[dict]:  # type: ignore[type-arg]
    """The STAC items of ``period``'s composites (every tile) whose bbox meets ``aoi``."""
    items = []
    for info in store.list_keys(layout.composites_prefix(model, version, period)):
        if info.key.endswith("/item.json"):
            item = json.loads(store.get_bytes(info.key))
            if shapely.box(*item["bbox"]).intersects(aoi):
                items.append(item)
    return sorted(items, key=lambda i: i["id"])


def composite_areas(
    store: ObjectStore,
    aoi: BaseGeometry,
    period: str,
    *,
    model: str,
    version: int,
    window_px: int = DEFAULT_WINDOW_PX,
    min_confidence: int | None = None,
) -> DateAreas | None:
    """Class areas of ``period``'s composites inside ``aoi``, dated at the period's first
    day; None when no composite of the period meets the area."""
    threshold = check_min_confidence(min_confidence)
    items = composite_items(store, model, version, period, aoi)
    if not items:
        return None
    counts = np.zeros(_CODES, dtype=np.float64)
    low_m2 = 0.0
    used: list[str] = []
    unreadable: list[CorruptObject] = []
    with store.gdal_env():
        for item in items:
            keys = {name: a[catalog.ASSET_KEY] for name, a in item["assets"].items()}
            try:
                low_m2 += _add_areas(store, keys, aoi, window_px, threshold, counts)
            except CorruptObject as exc:
                unreadable.append(exc)
                continue
            used.append(item["id"])
    areas = {int(c): float(counts[c]) for c in np.flatnonzero(counts)}
    first, _ = period_range(period)
    return DateAreas(first, areas, 0.0, tuple(used), tuple(unreadable), low_confidence_m2=low_m2)


def _add_areas(
    store: ObjectStore,
    keys: dict[str, str],
    aoi: BaseGeometry,
    window_px: int,
    threshold: int | None,
    counts: np.ndarray,
) -> float:
    """Add one composite's class areas to ``counts``; returns the area below ``threshold``."""
    low_m2 = 0.0
    with _open(store, keys["segmentation"]) as seg, _open(store, keys["confidence"]) as conf:
        px = _pixel_m2(seg)
        for win, inside in _windows(seg, aoi, window_px):
            codes = seg.read(1, window=win)
            sure = None if threshold is None else conf.read(1, window=win) >= threshold
            low_m2 += _add_window(counts, codes, inside & (codes > 0), sure, px)
    return low_m2
