"""Write a synthetic Sentinel-2 L2A product laid out like a real one, window by window.

Bands at their native 10/20/60 m resolutions on the real tile's UTM grid, SCL at 20 m, the
land-cover truth at 10 m, and an Earth Search v1 STAC item pointing at the files. Each
768 x 768 px window (whole 128 px blocks at 10, 20 and 60 m) is computed from coordinates and
written before the next, so a full 10980 x 10980 tile needs about 200 MB. The
product is built in a hidden sibling folder and renamed into place when complete.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.transform import Affine
from rasterio.warp import transform_geom
from rasterio.windows import Window

from earthsignature.generator import landcover, seasons, spectra
from earthsignature.mgrs import TILE_METRES, tile_grid

#: Window side at 10 m; a multiple of 6 x 128 so 20 m and 60 m windows are whole blocks.
WINDOW_PX = 768
BLOCK_PX = 128
FULL_TILE_PX = TILE_METRES // 10
SCALE = 0.0001
BOA_ADD_OFFSET = -1000  # DN, since processing baseline 04.00

_BASELINE = re.compile(r"^\d{2}\.\d{2}$")


@dataclass(frozen=True)
class GeneratedProduct:
    """Paths and identity of a generated product."""

    product_id: str
    date: str
    tile: str
    directory: Path
    bands: dict[str, Path]
    truth: Path
    item: Path


def reflectance_offset(processing_baseline: str) -> float:
    """Reflectance offset of a baseline: -0.1 (BOA_ADD_OFFSET -1000 x 1e-4) from 04.00 on."""
    return BOA_ADD_OFFSET * SCALE if float(processing_baseline) >= 4.0 else 0.0


def _check(size: int, date: str, cloud_fraction: float, processing_baseline: str) -> None:
    if not isinstance(size, int) or size % 6 or not 6 <= size <= FULL_TILE_PX:
        raise ValueError(
            f"size must be a multiple of 6 between 6 and {FULL_TILE_PX} (10 m px), got {size}"
        )
    dt.date.fromisoformat(date)
    if not 0.0 <= cloud_fraction <= 1.0:
        raise ValueError(f"cloud_fraction must be within 0..1, got {cloud_fraction}")
    if not _BASELINE.match(processing_baseline):
        raise ValueError(f"processing baseline looks like 05.10, got {processing_baseline!r}")


def _windows(size: int) -> Iterator[tuple[int, int, int, int]]:
    for row in range(0, size, WINDOW_PX):
        for col in range(0, size, WINDOW_PX):
            yield row, col, min(WINDOW_PX, size - row), min(WINDOW_PX, size - col)


def _to_dn(reflectance: NDArray[np.float32], offset: float) -> NDArray[np.uint16]:
    dn = np.rint((reflectance - np.float32(offset)) / np.float32(SCALE))
    return np.clip(dn, 1, 65535).astype(np.uint16)


def _band_reflectance(
    band: int,
    surface: NDArray[np.float32],
    cloud: landcover.Clouds,
    rng: np.random.Generator,
    haze: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """One band seen through the atmosphere: ``surface`` plus noise, shadowed, hazed (seasonal
    generator: noise never takes dark water below a real sensor's darkest reflectance),
    clouded."""
    surface = surface + rng.standard_normal(surface.shape, dtype=np.float32) * spectra.NOISE_SIGMA
    surface[cloud.shadow] *= spectra.SHADOW_FACTOR
    if haze is not None:
        surface = np.maximum(surface, seasons.DARKEST)
        surface = surface * (1 - haze) + seasons.HAZE[band] * haze
    opacity = cloud.opacity
    return surface * (1 - opacity) + spectra.CLOUD_REFLECTANCE[band] * opacity


def _subsample(cloud: landcover.Clouds, step: int) -> landcover.Clouds:
    s = np.s_[step // 2 :: step, step // 2 :: step]
    return landcover.Clouds(cloud.opacity[s], cloud.core[s], cloud.shadow[s])


def _scl(scl: NDArray[np.uint8], cloud: landcover.Clouds) -> NDArray[np.uint8]:
    """The surface's SCL with cloud shadow and cloud over it."""
    scl = scl.copy()
    scl[cloud.shadow] = spectra.SCL_CLOUD_SHADOW
    scl[cloud.cloud] = spectra.SCL_CLOUD_MEDIUM
    scl[cloud.core] = spectra.SCL_CLOUD_HIGH
    return scl


def generate_product(
    out_dir: Path,
    *,
    size: int = 1098,
    seed: int = 0,
    date: str = "2024-06-01",
    tile: str = "31TCJ",
    cloud_fraction: float = 0.1,
    processing_baseline: str = "05.10",
    seasonal: bool = False,
) -> GeneratedProduct:
    """Write product ``S2G_<tile>_<YYYYMMDD>_0_L2A`` under ``out_dir``, replacing an older one.

    ``size`` is the side in 10 m pixels from the tile's upper-left corner (10980 = whole tile;
    a multiple of 6 so the 20 m and 60 m grids align exactly); ``cloud_fraction`` is the share
    of SCL cloud + shadow (3/8/9) pixels, to within a few percent.

    ``seasonal=False`` (the default, cheap and stable for tests) gives every class one
    hand-written spectrum and the same clouds whatever the date. ``seasonal=True`` draws the
    pixels from real labelled spectra and shows the fixed truth as ``date`` would: crops,
    leaves, snow, haze and clouds following the date (:mod:`.seasons`).
    """
    _check(size, date, cloud_fraction, processing_baseline)
    grid = tile_grid(tile)
    product_id = f"S2G_{grid.tile}_{date.replace('-', '')}_0_L2A"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / product_id
    staging = Path(tempfile.mkdtemp(prefix=f".{product_id}-", dir=out_dir))
    try:
        stats = _write_rasters(
            staging,
            grid.epsg,
            grid.ulx,
            grid.uly,
            size,
            seed,
            cloud_fraction,
            reflectance_offset(processing_baseline),
            dt.date.fromisoformat(date) if seasonal else None,
        )
        item = _stac_item(product_id, final, grid, size, date, processing_baseline, stats)
        item["properties"]["earthsig:seasonal"] = seasonal
        (staging / f"{product_id}.json").write_text(json.dumps(item, indent=1))
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    names = [b.id for b in spectra.BANDS] + ["SCL"]
    return GeneratedProduct(
        product_id=product_id,
        date=date,
        tile=grid.tile,
        directory=final,
        bands={name: final / f"{name}.tif" for name in names},
        truth=final / "truth.tif",
        item=final / f"{product_id}.json",
    )


def _profile(epsg: int, ulx: float, uly: float, size: int, res: int, dtype: str) -> dict[str, Any]:
    n = size * 10 // res
    return {
        "driver": "GTiff",
        "width": n,
        "height": n,
        "count": 1,
        "dtype": dtype,
        "nodata": 0,
        "crs": f"EPSG:{epsg}",
        "transform": Affine(res, 0, ulx, 0, -res, uly),
        "tiled": True,
        "blockxsize": BLOCK_PX,
        "blockysize": BLOCK_PX,
        "compress": "DEFLATE",
        "zlevel": 1,
        "predictor": 2,
        "num_threads": "ALL_CPUS",
    }


def _write_rasters(
    folder: Path,
    epsg: int,
    ulx: float,
    uly: float,
    size: int,
    seed: int,
    cloud_fraction: float,
    offset: float,
    day: dt.date | None,
) -> dict[str, int]:
    """Write every raster window by window; ``day`` set: the seasonal look of that date."""
    cloud_seed = seed if day is None else seasons.date_seed(seed, day)
    threshold = landcover.cloud_threshold(size, cloud_seed, cloud_fraction)
    cloudy = valid = 0
    with ExitStack() as stack:
        # Windows are whole blocks: a small block cache suffices and keeps memory flat.
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=64))
        files = {
            band.id: stack.enter_context(
                rasterio.open(
                    folder / f"{band.id}.tif",
                    "w",
                    **_profile(epsg, ulx, uly, size, band.resolution, "uint16"),
                )
            )
            for band in spectra.BANDS
        }
        scl_file = stack.enter_context(
            rasterio.open(
                folder / "SCL.tif",
                "w",
                **_profile(epsg, ulx, uly, size, spectra.SCL_RESOLUTION, "uint8"),
            )
        )
        truth_file = stack.enter_context(
            rasterio.open(folder / "truth.tif", "w", **_profile(epsg, ulx, uly, size, 10, "uint16"))
        )
        for row, col, height, width in _windows(size):
            x = (col + np.arange(width, dtype=np.float32) + np.float32(0.5))[None, :]
            y = (row + np.arange(height, dtype=np.float32) + np.float32(0.5))[:, None]
            cover = landcover.land_cover(x, y, seed)
            cloud = landcover.clouds(x, y, cloud_seed, threshold)
            truth_file.write(
                spectra.CLASS_CODES[cover.class_index], 1, window=Window(col, row, width, height)
            )
            rng = np.random.default_rng([seed, row, col])
            if day is None:
                surface = None
                surface_scl = spectra.CLASS_SCL[cover.class_index]
                veil = None
            else:
                surface, surface_scl = seasons.surface(cover, x, y, seed, day)
                veil = seasons.haze(x, y, seed, day)
            for res in (10, 20, 60):
                step = res // 10
                s = np.s_[step // 2 :: step, step // 2 :: step]
                sub = _subsample(cloud, step)
                window = Window(col // step, row // step, width // step, height // step)
                for b, band in enumerate(spectra.BANDS):
                    if band.resolution == res:
                        seen = (
                            spectra.REFLECTANCE[cover.class_index[s], b] * cover.brightness[s]
                            if surface is None
                            else surface[b][s]
                        )
                        haze = None if veil is None else veil[s]
                        refl = _band_reflectance(b, seen, sub, rng, haze)
                        files[band.id].write(_to_dn(refl, offset), 1, window=window)
                if res == spectra.SCL_RESOLUTION:
                    scl = surface_scl[s]
                    if veil is not None:
                        scl = np.where(veil[s] > seasons.HAZE_SCL, seasons.SCL_THIN_CIRRUS, scl)
                    scl = _scl(scl.astype(np.uint8), sub)
                    scl_file.write(scl, 1, window=window)
                    cloudy += int(np.count_nonzero(np.isin(scl, (3, 8, 9))))
                    valid += scl.size
    return {"cloudy": cloudy, "valid": valid}


def _stac_item(
    product_id: str,
    folder: Path,
    grid: Any,
    size: int,
    date: str,
    processing_baseline: str,
    stats: dict[str, int],
) -> dict[str, Any]:
    """An Earth Search v1 ``sentinel-2-l2a`` item whose assets are the written files."""
    extent = size * 10
    left, top = grid.ulx, grid.uly
    ring = [
        [left, top],
        [left + extent, top],
        [left + extent, top - extent],
        [left, top - extent],
        [left, top],
    ]
    footprint = transform_geom(
        f"EPSG:{grid.epsg}", "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, precision=7
    )
    lons = [p[0] for p in footprint["coordinates"][0]]
    lats = [p[1] for p in footprint["coordinates"][0]]
    offset = reflectance_offset(processing_baseline)
    assets: dict[str, Any] = {}
    for band in spectra.BANDS:
        n = extent // band.resolution
        assets[band.asset_key] = {
            "href": str(folder / f"{band.id}.tif"),
            "type": "image/tiff; application=geotiff",
            "title": band.title,
            "eo:bands": [
                {
                    "name": band.asset_key,
                    "common_name": band.asset_key,
                    "center_wavelength": band.wavelength,
                }
            ],
            "gsd": band.resolution,
            "proj:shape": [n, n],
            "proj:transform": [band.resolution, 0, left, 0, -band.resolution, top],
            "raster:bands": [
                {
                    "nodata": 0,
                    "data_type": "uint16",
                    "bits_per_sample": 15,
                    "spatial_resolution": band.resolution,
                    "scale": SCALE,
                    "offset": offset,
                }
            ],
            "roles": ["data", "reflectance"],
        }
    n20 = extent // spectra.SCL_RESOLUTION
    assets["scl"] = {
        "href": str(folder / "SCL.tif"),
        "type": "image/tiff; application=geotiff",
        "title": "Scene classification map (SCL)",
        "proj:shape": [n20, n20],
        "proj:transform": [20, 0, left, 0, -20, top],
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}],
        "roles": ["data", "reflectance"],
    }
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    cloud_cover = 100.0 * stats["cloudy"] / stats["valid"] if stats["valid"] else 0.0
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
        ],
        "id": product_id,
        "collection": "sentinel-2-l2a",
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "geometry": footprint,
        "properties": {
            "datetime": f"{date}T10:30:00.000000Z",
            "created": now,
            "updated": now,
            "platform": "sentinel-2a",
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "eo:cloud_cover": round(cloud_cover, 6),
            "proj:epsg": grid.epsg,
            "mgrs:utm_zone": grid.zone,
            "mgrs:latitude_band": grid.latitude_band,
            "mgrs:grid_square": grid.grid_square,
            "grid:code": f"MGRS-{grid.tile}",
            "s2:product_type": "S2MSI2A",
            "s2:processing_baseline": processing_baseline,
            "earthsearch:boa_offset_applied": offset != 0.0,
            "earthsig:generated": True,
        },
        "links": [],
        "assets": assets,
    }
