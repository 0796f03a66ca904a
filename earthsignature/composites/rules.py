"""Land use from a label history: documented rules over per-pixel class counts.

One Sentinel-2 date shows land *cover*; CORINE maps land *use*. A composite keeps, per pixel,
how many clear, confident observations of a period the model gave each class, and these rules
turn those counts into one CORINE level-3 code, in this order (shares are of the pixel's clear
observations):

1. **No observation**: no data (code 0, confidence 255).
2. **Permanent snow**: snow and ice (335) in at least :data:`PERMANENT_SNOW` of them -> 335.
   Otherwise snow is seasonal, not the land's use, and is left out of the next rules (the
   pixel takes the class of its snow-free observations).
3. **Water most of the time**: water (5xx) in at least :data:`WATER_SHARE` of the snow-free
   observations -> the most frequent water code.
4. **Trees all year**: forest (311, 312, 313) in at least :data:`FOREST_SHARE` -> the most
   frequent forest code (haze turning forest into grass on a few dates does not win).
5. **Arable rotation**: arable land (21x) in at least :data:`CROP_SHARE` and arable, bare
   (331-333) and grass (231) together in at least :data:`ROTATION_SHARE` -> the most frequent
   arable code (a bare field in March and green crops in June are one arable field).
6. **Otherwise** the most frequent snow-free code (ties: the lower code).

Confidence (percent) is the share of snow-free observations supporting the chosen code (its
group, for rules 3-5; snow observations for rule 2) with one dissenting observation imagined,
``100 * support / (n + 1)``, so a pixel seen once never claims more than 50 %.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from earthsignature import corine

SNOW = 335
PERMANENT_SNOW = 0.75
WATER_SHARE = 0.5
FOREST_SHARE = 0.5
CROP_SHARE = 0.2
ROTATION_SHARE = 0.6
FOREST = (311, 312, 313)
BARE = (331, 332, 333)
GRASS = (231,)
#: Confidence no-data (as the per-date confidence COGs).
CONFIDENCE_NODATA = 255


@dataclass(frozen=True)
class Composite:
    """The composite of a window: CORINE code (0 = none), clear observations, confidence %."""

    code: np.ndarray
    observations: np.ndarray
    confidence: np.ndarray


def _members(codes: Sequence[int], pred: Callable[[int], bool]) -> np.ndarray:
    """Indices of the codes for which ``pred`` holds."""
    return np.array([k for k, c in enumerate(codes) if pred(c)], dtype=np.intp)


def compose(counts: np.ndarray, codes: Sequence[int]) -> Composite:
    """Apply the rules to ``counts[k, y, x]`` (observations of ``codes[k]``; codes ascending).

    Works on the class planes a rule needs (no int32 copy of every plane), so a 1024 x 1024
    window of ~13 classes stays a few tens of MB."""
    if counts.ndim != 3 or counts.shape[0] != len(codes):
        raise ValueError(f"counts {counts.shape} do not match {len(codes)} codes")
    if list(codes) != sorted(codes) or not all(corine.is_code(c) for c in codes):
        raise ValueError(f"codes must be ascending CORINE level-3 codes, got {list(codes)}")
    code_arr = np.asarray(codes, dtype=np.uint16)
    shape = counts.shape[1:]

    def group_sum(idx: np.ndarray) -> np.ndarray:
        return counts[idx].sum(axis=0, dtype=np.int32) if idx.size else np.zeros(shape, np.int32)

    def best(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per pixel, the most frequent code among ``idx`` and its count (ties: the lower
        code). One max over keys ``count << 8 | (255 - k)`` instead of ``argmax`` over the
        class axis, which numpy does not vectorise (3-4x slower on a 1024² window)."""
        keys = counts[idx].astype(np.uint16)
        keys <<= 8
        keys |= (255 - np.arange(idx.size, dtype=np.uint16))[:, None, None]
        top = keys.max(axis=0)
        return code_arr[idx][255 - (top & 255)], top >> 8

    total = counts.sum(axis=0, dtype=np.int32)
    snow = group_sum(_members(codes, lambda k: k == SNOW))
    n = total - snow
    out = np.zeros(shape, dtype=np.uint16)
    support = np.zeros(shape, dtype=np.int32)
    decided = total == 0
    permanent = ~decided & (snow >= PERMANENT_SNOW * total)
    out[permanent] = SNOW
    support[permanent] = snow[permanent]
    decided |= permanent
    for idx, share in (
        (_members(codes, lambda k: k // 100 == 5), WATER_SHARE),
        (_members(codes, lambda k: k in FOREST), FOREST_SHARE),
    ):
        in_group = group_sum(idx)
        hit = ~decided & (in_group >= share * n) & (in_group > 0)
        if hit.any():
            out[hit] = best(idx)[0][hit]
            support[hit] = in_group[hit]
            decided |= hit
    crops_idx = _members(codes, lambda k: k // 10 == 21)
    crops = group_sum(crops_idx)
    rotation = crops + group_sum(_members(codes, lambda k: k in BARE + GRASS))
    hit = ~decided & (crops > 0) & (crops >= CROP_SHARE * n) & (rotation >= ROTATION_SHARE * n)
    if hit.any():
        out[hit] = best(crops_idx)[0][hit]
        support[hit] = rotation[hit]
        decided |= hit
    hit = ~decided
    if hit.any():
        top_code, top_count = best(_members(codes, lambda k: k != SNOW))
        out[hit] = top_code[hit]
        support[hit] = top_count[hit]
    denominator = np.where(permanent, total, n) + 1
    confidence = np.where(
        total == 0, CONFIDENCE_NODATA, np.round(100 * support / denominator)
    ).astype(np.uint8)
    return Composite(
        code=out, observations=np.minimum(total, 255).astype(np.uint8), confidence=confidence
    )


def add_observations(
    counts: np.ndarray,
    codes: Sequence[int],
    labels: np.ndarray,
    clear: np.ndarray,
) -> None:
    """Add one date's ``labels`` (CORINE codes) where ``clear`` to ``counts`` (uint8, in place,
    saturating at 255). Every label under ``clear`` must be one of ``codes``."""
    index = np.searchsorted(np.asarray(codes), labels)
    index = np.minimum(index, len(codes) - 1)
    known = np.asarray(codes)[index] == labels
    if np.any(clear & ~known):
        raise ValueError(
            f"labels outside the composite's codes: {np.unique(labels[clear & ~known])}"
        )
    ys, xs = np.nonzero(clear)
    k = index[ys, xs]
    counts[k, ys, xs] = np.minimum(counts[k, ys, xs].astype(np.uint16) + 1, 255).astype(np.uint8)
