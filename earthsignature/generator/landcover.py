"""Synthetic land cover and clouds as pure functions of pixel coordinates and a seed.

Everything here maps coordinates (in 10 m pixel units from the tile origin) to values, with
no state and no whole-scene arrays, so any window of a full 10980 x 10980 tile is computed on
its own and neighbouring windows agree exactly. Land cover is a domain-warped Voronoi
partition (irregular field/forest/lake patches) with class drawn per cell, crossed by rivers;
clouds are thresholded value noise, with shadows cast by the same field at an offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from earthsignature.generator.spectra import CLASS_WEIGHTS, CLASSES, RIVER

F32 = NDArray[np.float32]
U64 = NDArray[np.uint64]

#: Mean Voronoi patch size (10 m px): ~640 m fields and woods.
CELL_PX = 64
#: Low-frequency warp of patch borders: lattice and amplitude (10 m px).
WARP_LATTICE_PX = 96
WARP_PX = 24.0
#: Rivers: one every RIVER_SPACING_PX rows, meandering, RIVER_HALF_WIDTH_PX wide each side.
RIVER_SPACING_PX = 1000
RIVER_HALF_WIDTH_PX = 2.5
#: Cloud noise lattices (10 m px) and the offset of the shadows they cast.
CLOUD_LATTICES_PX = (384, 128, 48)
SHADOW_OFFSET_PX = (30.0, 45.0)
#: Noise above threshold + CORE_MARGIN is thick cloud (SCL 9), below it medium (SCL 8).
CORE_MARGIN = 0.06

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def hash_u64(*keys: NDArray[np.int64] | int) -> U64:
    """splitmix64 of the combined integer keys: a stateless, vectorised random number."""
    h = np.zeros(1, dtype=np.uint64)
    for key in keys:
        k = np.atleast_1d(np.asarray(key, dtype=np.int64)).view(np.uint64)
        h = (h ^ k) + _GOLD
        h = (h ^ (h >> np.uint64(30))) * _M1
        h = (h ^ (h >> np.uint64(27))) * _M2
        h = h ^ (h >> np.uint64(31))
    return h


def unit(h: U64) -> F32:
    """Hash -> uniform float32 in [0, 1)."""
    return ((h >> np.uint64(40)).astype(np.float32)) * np.float32(1.0 / (1 << 24))


def _lattice(
    seed: int, ix: NDArray[np.int64], iy: NDArray[np.int64], pad: int
) -> tuple[U64, int, int]:
    """Hashes of every lattice point in the bounding box of (ix, iy), grown by ``pad``.

    Hashing the few lattice points once and gathering is much cheaper than hashing per pixel;
    returns the table and the lattice coordinates of its first column and row.
    """
    x0, y0 = int(ix.min()) - pad, int(iy.min()) - pad
    gx = np.arange(x0, int(ix.max()) + pad + 1, dtype=np.int64)
    gy = np.arange(y0, int(iy.max()) + pad + 1, dtype=np.int64)
    return hash_u64(seed, gx[None, :], gy[:, None]), x0, y0


def _axis(coord: F32, lattice: float) -> tuple[NDArray[np.int64], F32]:
    g = coord.ravel() / np.float32(lattice)
    i = np.floor(g)
    f = g - i
    return i.astype(np.int64), (f * f * (3 - 2 * f)).astype(np.float32)


def value_noise(x: F32, y: F32, lattice: float, seed: int) -> F32:
    """Smooth noise in [0, 1) on the grid of a row of x (1, W) and a column of y (H, 1).

    Random values on a lattice, smoothstep-interpolated along x on the few lattice rows, then
    along y: the same arithmetic for a pixel whatever window it is computed in.
    """
    ix, fx = _axis(x, lattice)
    iy, fy = _axis(y, lattice)
    x0, y0 = int(ix.min()), int(iy.min())
    gx = np.arange(x0, int(ix.max()) + 2, dtype=np.int64)
    gy = np.arange(y0, int(iy.max()) + 2, dtype=np.int64)
    values = unit(hash_u64(seed, gx[None, :], gy[:, None]))
    col, row = ix - x0, iy - y0
    along_x = values[:, col] * (1 - fx) + values[:, col + 1] * fx
    top, bottom = along_x[row], along_x[row + 1]
    return (top + (bottom - top) * fy[:, None]).astype(np.float32)


def cloud_noise(x: F32, y: F32, seed: int) -> F32:
    """Fractal noise (a few octaves) in about [0, 1] whose upper tail is cloud."""
    total = np.zeros((y.shape[0], x.shape[1]), dtype=np.float32)
    weight, norm = 1.0, 0.0
    for octave, lattice in enumerate(CLOUD_LATTICES_PX):
        total += np.float32(weight) * value_noise(x, y, lattice, seed * 7 + 101 + octave)
        norm += weight
        weight *= 0.5
    return total / np.float32(norm)


@dataclass(frozen=True)
class LandCover:
    """Per-pixel land cover of a window: class index into CLASSES, a per-patch brightness and
    the patch's hash (what the seasonal generator draws its spectra and calendar from)."""

    class_index: NDArray[np.uint8]
    brightness: F32
    cell: U64


def land_cover(x: F32, y: F32, seed: int) -> LandCover:
    """Class and brightness at pixel centres of the grid of a row x (1, W) and a column y (H, 1)."""
    wx = x + np.float32(2 * WARP_PX) * (value_noise(x, y, WARP_LATTICE_PX, seed * 7 + 1) - 0.5)
    wy = y + np.float32(2 * WARP_PX) * (value_noise(x, y, WARP_LATTICE_PX, seed * 7 + 2) - 0.5)
    x, y = np.broadcast_arrays(x, y)
    gx, gy = wx / np.float32(CELL_PX), wy / np.float32(CELL_PX)
    cx, cy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    table, x0, y0 = _lattice(seed * 7 + 3, cx, cy, 1)
    seed_x = unit(table) + np.arange(x0, x0 + table.shape[1], dtype=np.float32)[None, :]
    seed_y = (
        unit(table >> np.uint64(7) | table << np.uint64(57))
        + np.arange(y0, y0 + table.shape[0], dtype=np.float32)[:, None]
    )
    width = table.shape[1]
    flat = ((cy - y0) * width + (cx - x0)).astype(np.int32)
    sx, sy = seed_x.ravel(), seed_y.ravel()
    best = np.full(x.shape, np.inf, dtype=np.float32)
    best_flat = np.zeros(x.shape, dtype=np.int32)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            neighbour = flat + np.int32(dy * width + dx)
            dist = (sx[neighbour] - gx) ** 2 + (sy[neighbour] - gy) ** 2
            closer = dist < best
            best = np.where(closer, dist, best)
            best_flat = np.where(closer, neighbour, best_flat)
    cells = hash_u64(
        seed * 7 + 4,
        np.arange(x0, x0 + width, dtype=np.int64)[None, :],
        np.arange(y0, y0 + table.shape[0], dtype=np.int64)[:, None],
    )
    cell = cells.ravel()[best_flat]
    draw = unit(cell)
    index = np.searchsorted(np.cumsum(CLASS_WEIGHTS), draw, side="right").clip(0, len(CLASSES) - 1)
    class_index = index.astype(np.uint8)
    brightness = np.float32(0.85) + np.float32(0.3) * unit(cell >> np.uint64(3))
    # Meandering rivers: one per band of RIVER_SPACING_PX rows.
    band = np.floor(y / RIVER_SPACING_PX).astype(np.int64)
    rh = hash_u64(seed * 7 + 5, band)
    phase = unit(rh) * np.float32(2 * np.pi)
    wavelength = np.float32(900) + np.float32(900) * unit(rh >> np.uint64(5))
    centre = (band * RIVER_SPACING_PX + RIVER_SPACING_PX / 2).astype(np.float32) + np.float32(
        RIVER_SPACING_PX * 0.3
    ) * np.sin(x / wavelength * np.float32(2 * np.pi) + phase)
    river = np.abs(y - centre) <= RIVER_HALF_WIDTH_PX
    class_index[river] = CLASSES.index(RIVER)
    brightness[river] = 1.0
    return LandCover(
        class_index=class_index,
        brightness=brightness.astype(np.float32),
        cell=cell.reshape(x.shape),
    )


def cloud_threshold(size: int, seed: int, fraction: float) -> float:
    """Noise threshold giving about ``fraction`` of cloud plus shadow over a size x size scene.

    Estimated on a regular sample of the whole scene (the noise is a function, so a sample
    predicts every window); ``fraction`` 0 gives no cloud, 1 all cloud.
    """
    if fraction <= 0:
        return float("inf")
    if fraction >= 1:
        return float("-inf")
    step = max(1, size // 300)
    coords = np.arange(step / 2, size, step, dtype=np.float32)
    x, y = coords[None, :], coords[:, None]
    cloud = cloud_noise(x, y, seed)
    shadow = cloud_noise(
        x + np.float32(SHADOW_OFFSET_PX[0]), y + np.float32(SHADOW_OFFSET_PX[1]), seed
    )
    return float(np.quantile(np.maximum(cloud, shadow), 1.0 - fraction))


@dataclass(frozen=True)
class Clouds:
    """Per-pixel cloud opacity (0 clear .. 1 thick), core flag and shadow flag of a window."""

    opacity: F32
    core: NDArray[np.bool_]
    shadow: NDArray[np.bool_]

    @property
    def cloud(self) -> NDArray[np.bool_]:
        return self.opacity > 0


def clouds(x: F32, y: F32, seed: int, threshold: float) -> Clouds:
    """Clouds on the grid of a row x (1, W) and a column y (H, 1), for a threshold from
    :func:`cloud_threshold`."""
    shape = (y.shape[0], x.shape[1])
    if threshold == float("inf"):
        none = np.zeros(shape, dtype=bool)
        return Clouds(np.zeros(shape, dtype=np.float32), none, none.copy())
    noise = cloud_noise(x, y, seed)
    excess = noise - np.float32(threshold)
    cloud = excess > 0
    if threshold == float("-inf"):
        opacity = np.ones(shape, dtype=np.float32)
        return Clouds(opacity, np.ones(shape, dtype=bool), np.zeros(shape, dtype=bool))
    opacity = np.where(cloud, np.clip(0.35 + excess / np.float32(CORE_MARGIN), 0, 1), 0)
    caster = cloud_noise(
        x + np.float32(SHADOW_OFFSET_PX[0]), y + np.float32(SHADOW_OFFSET_PX[1]), seed
    )
    shadow = (caster > np.float32(threshold)) & ~cloud
    return Clouds(opacity.astype(np.float32), excess > CORE_MARGIN, shadow)
