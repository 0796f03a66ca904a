"""Seasonal surface reflectance: real spectra per class, following the acquisition date.

The land-use truth of a tile is fixed (:func:`landcover.land_cover`); what one date shows of it
changes as on real Sentinel-2 dates:

* a class with real texture windows in :mod:`.library` (urban fabric, arable land, pastures,
  forests, water) shows them, mirrored-tiled over each patch from a per-patch window and
  offset: real spatial structure, and urban fabric as its real mix of roofs, roads and
  gardens rather than pure roof pixels; other classes draw single library pixels (a patch
  mixes two with smooth noise plus a speckle of a third);
* arable land (211) is green crops only in its growing season and bare soil otherwise: half
  the fields are winter cereals (green mid-March to early July), half summer crops (green
  June to September); pastures (231) dry out towards winter; broad-leaved forest (311) is
  leaf-off from November to mid-April;
* from December to March bare rock and sparse vegetation (332, 333: the mountains of the
  map) are under snow; glaciers (335) always are;
* some dates are hazy (a smooth veil over part of the scene, SCL 10 thin cirrus where thick),
  and clouds move from date to date (the caller's cloud fraction, a cloud field per date).

SCL follows what is seen, as sen2cor's does: water classes 6, snow 11, otherwise vegetation 4
where the surface NDVI exceeds :data:`SCL_NDVI` and not vegetated 5 below.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

import numpy as np
from numpy.typing import NDArray

from earthsignature.generator import landcover, library, spectra

F32 = NDArray[np.float32]

#: Bare agricultural soil (L2A, BANDS order): what a field shows out of season.
SOIL = np.array(
    [0.07, 0.08, 0.11, 0.14, 0.16, 0.18, 0.2, 0.22, 0.23, 0.23, 0.31, 0.26], dtype=np.float32
)
#: Deciduous forest without leaves: branches over litter.
LEAF_OFF = np.array(
    [0.04, 0.045, 0.065, 0.075, 0.10, 0.14, 0.16, 0.18, 0.19, 0.19, 0.22, 0.15], dtype=np.float32
)
#: Dormant grass.
DRY_GRASS = np.array(
    [0.05, 0.06, 0.09, 0.11, 0.14, 0.19, 0.21, 0.23, 0.24, 0.24, 0.29, 0.22], dtype=np.float32
)
#: The veil of haze (bright in the blue, fading into the SWIR).
HAZE = np.array(
    [0.32, 0.30, 0.27, 0.24, 0.22, 0.21, 0.20, 0.19, 0.19, 0.15, 0.10, 0.06], dtype=np.float32
)
#: The darkest reflectance a pixel shows (BigEarthNet's water: about DN 10-20).
DARKEST = np.float32(0.001)
SNOW = spectra.REFLECTANCE[spectra.CLASSES.index(335)]
SNOW_MONTHS = (12, 1, 2, 3)
SNOW_CLASSES = (332, 333, 335)
#: Haze: a share of dates, the veil's lattice (10 m px), its peak opacity, SCL 10 above this.
HAZY_SHARE = 0.3
HAZE_LATTICE_PX = 512
HAZE_OPACITY = 0.35
HAZE_SCL = 0.25
SCL_NDVI = 0.35
SCL_THIN_CIRRUS = 10
#: Texture: lattice of the smooth mix of a field's two spectra, and the speckle's weight.
TEXTURE_PX = 10
SPECKLE = np.float32(0.2)

_K = {code: k for k, code in enumerate(spectra.CLASSES)}


def _ramp(doy: float, start: float, end: float, rise: float = 25.0, fall: float = 20.0) -> float:
    """1 inside [start, end], ramping linearly over ``rise`` days before and ``fall`` after."""
    return float(np.clip(min((doy - start + rise) / rise, (end + fall - doy) / fall), 0.0, 1.0))


def greenness(code: int, day: dt.date, variant: F32) -> F32:
    """Share of a class's green (library) spectrum on ``day`` per pixel (the rest is its
    out-of-season look); ``variant`` (0..1 per field) picks the crop calendar."""
    doy = day.timetuple().tm_yday
    if code == 211:
        winter_crop = np.float32(_ramp(doy, 75, 185))
        summer_crop = np.float32(_ramp(doy, 160, 255))
        return np.where(variant < 0.5, winter_crop, summer_crop).astype(np.float32)
    if code == 231:
        season = 0.5 + 0.5 * np.cos(2 * np.pi * (doy - 160) / 365.25)
        return np.full(variant.shape, 0.35 + 0.65 * season, dtype=np.float32)
    if code == 311:
        return np.full(variant.shape, _ramp(doy, 115, 295, rise=30, fall=25), dtype=np.float32)
    return np.ones(variant.shape, dtype=np.float32)


_OFF_SEASON = {211: SOIL, 231: DRY_GRASS, 311: LEAF_OFF}


def _pools() -> tuple[F32, NDArray[np.int64], NDArray[np.int64]]:
    lib = library.load()
    sizes = np.array([len(s) for s in lib.spectra], dtype=np.int64)
    return np.concatenate(lib.spectra), np.cumsum(sizes) - sizes, sizes


@cache
def _chip_stack() -> tuple[F32, NDArray[np.int64], NDArray[np.int64]]:
    """Every class's texture windows stacked ``[n, side, side, bands]``, with each class's
    first index and count (0: no windows)."""
    chips = library.load().chips
    sizes = np.array([0 if c is None else len(c) for c in chips], dtype=np.int64)
    present = [c for c in chips if c is not None]
    if not present:
        side = library.CHIP_PX
        return np.zeros((0, side, side, len(spectra.BANDS)), np.float32), sizes * 0, sizes
    return np.concatenate(present), np.cumsum(sizes) - sizes, sizes


def _mirror(i: NDArray[np.int64], side: int) -> NDArray[np.int64]:
    """Index into a window of ``side`` px tiled by mirroring (no seams between repeats)."""
    i = i % (2 * side)
    return np.where(i >= side, 2 * side - 1 - i, i)


def _textures(k: NDArray[np.int64], cell: NDArray[np.uint64], xx: NDArray[np.int64],
              yy: NDArray[np.int64], refl: F32) -> None:  # fmt: skip
    """Put the texture windows of their classes on the pixels of ``refl`` (``[H, W, bands]``,
    in place) whose class has some: window, offset and orientation per patch."""
    stack, first, count = _chip_stack()
    has = count[k] > 0
    if not has.any():
        return
    side = stack.shape[1]
    kk, c = k[has], cell[has]
    chip = first[kk] + ((c >> np.uint64(32)) % count[kk].astype(np.uint64)).astype(np.int64)
    u = _mirror(xx[has] + ((c >> np.uint64(8)) % np.uint64(2 * side)).astype(np.int64), side)
    v = _mirror(yy[has] + ((c >> np.uint64(20)) % np.uint64(2 * side)).astype(np.int64), side)
    swap = ((c >> np.uint64(44)) & np.uint64(1)).astype(bool)
    u, v = np.where(swap, v, u), np.where(swap, u, v)
    refl[has] = stack[chip, v, u]


def surface(
    cover: landcover.LandCover, x: F32, y: F32, seed: int, day: dt.date
) -> tuple[F32, NDArray[np.uint8]]:
    """Surface reflectance ``[bands, H, W]`` and the surface's SCL class on ``day``."""
    pool, offset, size = _pools()
    k = cover.class_index.astype(np.int64)
    cell = cover.cell
    n = size[k].astype(np.uint64)
    first = pool[offset[k] + (cell % n).astype(np.int64)]
    second = pool[offset[k] + ((cell >> np.uint64(24)) % n).astype(np.int64)]
    xx = np.broadcast_to(x, k.shape).astype(np.int64)
    yy = np.broadcast_to(y, k.shape).astype(np.int64)
    speckle = pool[offset[k] + (landcover.hash_u64(seed * 7 + 6, xx, yy) % n).astype(np.int64)]
    t = landcover.value_noise(x, y, TEXTURE_PX, seed * 7 + 8)[..., None]
    refl = (first * (1 - t) + second * t) * (1 - SPECKLE) + speckle * SPECKLE
    _textures(k, cell, xx, yy, refl)
    variant = landcover.unit(cell >> np.uint64(13))
    for code, off in _OFF_SEASON.items():
        where = k == _K[code]
        if where.any():
            g = greenness(code, day, variant[where])[:, None]
            refl[where] = g * refl[where] + (1 - g) * off
    snowy = np.isin(k, [_K[c] for c in SNOW_CLASSES])
    if day.month not in SNOW_MONTHS:
        snowy &= k == _K[335]
    refl[snowy] = SNOW
    refl = np.moveaxis(refl, -1, 0) * cover.brightness
    red, nir = refl[3], refl[7]
    ndvi = (nir - red) / np.maximum(nir + red, np.float32(1e-6))
    scl = np.where(ndvi > SCL_NDVI, spectra.SCL_VEGETATION, spectra.SCL_NOT_VEGETATED)
    water = spectra.CLASS_SCL[cover.class_index] == spectra.SCL_WATER
    scl = np.where(water, spectra.SCL_WATER, scl)
    scl = np.where(snowy, spectra.SCL_SNOW, scl).astype(np.uint8)
    return refl.astype(np.float32), scl


def date_seed(seed: int, day: dt.date) -> int:
    """The seed of a date's clouds and haze (the land cover keeps ``seed``)."""
    return int(landcover.hash_u64(seed, day.toordinal())[0] >> np.uint64(40))


def haze(x: F32, y: F32, seed: int, day: dt.date) -> F32:
    """Opacity of the haze veil (0 on most dates; on :data:`HAZY_SHARE` of them up to
    :data:`HAZE_OPACITY` over part of the scene)."""
    s = date_seed(seed, day)
    shape = (y.shape[0], x.shape[1])
    if landcover.unit(landcover.hash_u64(s, 1))[0] >= HAZY_SHARE:
        return np.zeros(shape, dtype=np.float32)
    veil = landcover.value_noise(x, y, HAZE_LATTICE_PX, s + 3)
    return (np.float32(HAZE_OPACITY) * np.clip(2.5 * veil - 1.25, 0, 1)).astype(np.float32)
