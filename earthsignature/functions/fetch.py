"""Stage fetch: copy the bands a model needs into ``raw/`` as COGs, checked on the way.

Before anything is copied: the message's model version must exist in the model repository,
and each band is opened from its catalogue href (file path, ``http(s)://`` via
``/vsicurl/``, ``s3://`` via ``/vsis3/``) and checked: readable, single band, the tile's UTM
CRS, grids aligned with the other bands at their resolution ratios, and plausible values.

Values: a decimated sample of each reflectance band (overviews when the file has them, else
a few spread windows) is turned into reflectance (DN x scale + offset); when at least
:data:`MIN_VALID_SAMPLES` sampled pixels are valid (DN not no-data) and
:data:`MAX_OUT_OF_RANGE` or more of them lie outside :data:`REFLECTANCE_RANGE`, the band is
refused: saturated data or a wrong scale/offset, which no model output could survive.
A few bright pixels (clouds, snow, glint) stay far inside that share.

Bands are then converted to COGs block by block and published in one step; bands already
stored and valid are not copied again. Unusable input raises BadInput after removing the
product's ``raw/`` folder, so nothing partial stays.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import cast

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.errors import CRSError, RasterioError
from rasterio.windows import Window

from earthsignature.functions.cog import to_cog
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.stac import AOT, RESOLUTION, SCL, AssetRef
from earthsignature.mgrs import parse_tile, utm_epsg
from earthsignature.models.errors import ModelError
from earthsignature.models.repository import load_spec
from earthsignature.runtime import Runtime
from earthsignature.storage import layout
from earthsignature.storage.gdal import GDAL_HTTP_RETRY

log = logging.getLogger(__name__)

#: The 10 m and 20 m bands and SCL: what the models and the cloud stage read.
DEFAULT_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL")
#: Fetched when the item offers them, for the cloud stage's haze figure; their resolution
#: varies between catalogues (AOT is 10, 20 or 60 m), so only their CRS is checked.
AUXILIARY_BANDS = (AOT,)
RETRIES = 3
BACKOFF_S = 0.5
_TRANSIENT = ("HTTP response code: 5", "HTTP response code: 429", "timed out", "Connection")
#: GDAL block cache while copying a band (MB): its default, 5 % of RAM, held ~1 GB a worker.
COPY_CACHE_MB = 128
#: DEFLATE level of the raw/ copies: they live until the commit, so speed beats size (level 1:
#: ~20 % less CPU than level 6 for ~3 % more bytes, measured on a full-tile band).
RAW_ZLEVEL = 1
#: Source reads (HTTP archives) retry like the store's own GDAL reads do.
_HTTP_ENV = GDAL_HTTP_RETRY
#: Physically possible L2A surface reflectance: the 04.00 offset floor to bright cloud/snow.
REFLECTANCE_RANGE = (-0.1, 1.6)
#: Share of valid sampled pixels outside the range from which a band is refused.
MAX_OUT_OF_RANGE = 0.99
#: Fewer valid sampled pixels than this say nothing (mostly empty tiles): no verdict.
MIN_VALID_SAMPLES = 64
#: Side (px) of the decimated sample, and of each window when sampling without overviews.
SAMPLE_PX = 256
SAMPLE_WINDOWS = 3

Grid = tuple[str, tuple[float, ...], int, int, float, str]


def gdal_href(href: str) -> str:
    """A path GDAL opens for a catalogue href."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    return href.removeprefix("file://")


def _sample(ds: rasterio.DatasetReader) -> NDArray[np.float64]:
    """A small spread-out sample of band 1: decimated through overviews, else windows."""
    longest = max(ds.width, ds.height)
    if ds.overviews(1) or longest <= SAMPLE_PX * SAMPLE_WINDOWS:
        scale = max(1.0, longest / SAMPLE_PX)
        shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        return ds.read(1, out_shape=shape).astype(np.float64)
    side = min(SAMPLE_PX, ds.width, ds.height)
    parts = []
    for fy in np.linspace(0, 1, SAMPLE_WINDOWS):
        for fx in np.linspace(0, 1, SAMPLE_WINDOWS):
            col, row = round(fx * (ds.width - side)), round(fy * (ds.height - side))
            parts.append(ds.read(1, window=Window(col, row, side, side)).ravel())
    return np.concatenate(parts).astype(np.float64)


def _inspect(band: str, path: str) -> tuple[Grid, NDArray[np.float64], float]:
    """The band's grid, a value sample and its no-data value (0, S2's, when unset)."""
    with rasterio.open(path) as ds:
        if ds.count != 1:
            raise BadInput(f"band {band}: {path}: expected one band, found {ds.count}", band=band)
        grid = (str(ds.crs), tuple(ds.transform)[:6], ds.width, ds.height, ds.res[0], ds.dtypes[0])
        sample = _sample(ds) if band not in (SCL, *AUXILIARY_BANDS) else np.zeros(0)
        return grid, sample, 0.0 if ds.nodata is None else float(ds.nodata)


def check_reflectance(
    band: str, sample: NDArray[np.float64], nodata: float, asset: AssetRef
) -> None:
    """Refuse a band whose valid sampled pixels are (nearly) all outside the physical range."""
    valid = sample[sample != nodata]
    if valid.size < MIN_VALID_SAMPLES:
        return
    reflectance = valid * asset.scale + asset.offset
    low, high = REFLECTANCE_RANGE
    outside = float(np.count_nonzero((reflectance < low) | (reflectance > high))) / valid.size
    if outside >= MAX_OUT_OF_RANGE:
        median_dn = float(np.median(valid))
        raise BadInput(
            f"band {band} reflectance out of range: {outside:.1%} of {valid.size} sampled valid "
            f"pixels outside {low}..{high} (DN x {asset.scale:g} + {asset.offset:g}, median DN "
            f"{median_dn:g}); saturated data or wrong scale/offset",
            band=band,
            share_outside=outside,
            median_dn=median_dn,
        )


def check_model(rt: Runtime, msg: ProductMessage) -> None:
    """BadInput when the message's model version is not in this worker's model repository."""
    try:
        load_spec(rt, msg.model, msg.version)
    except ModelError as exc:
        raise BadInput(
            f"unknown model version {msg.model} v{msg.version}: {exc}",
            model=msg.model,
            version=msg.version,
        ) from exc


def check_grids(grids: dict[str, Grid], epsg: int) -> None:
    """All bands in the tile's CRS, sharing the corner, sizes in their resolution ratios."""
    ref_band = min(grids, key=lambda b: RESOLUTION[b])
    _crs, transform, width, height, res, _ = grids[ref_band]
    for band, (b_crs, b_tr, b_w, b_h, b_res, _dtype) in grids.items():
        if rasterio.crs.CRS.from_string(b_crs).to_epsg() != epsg:
            raise BadInput(f"band {band} is in {b_crs}, expected EPSG:{epsg}", band=band)
        ratio = RESOLUTION[band] / RESOLUTION[ref_band]
        aligned = (
            abs(b_tr[2] - transform[2]) < res / 2
            and abs(b_tr[5] - transform[5]) < res / 2
            and abs(b_res - res * ratio) < 1e-6 * res
            and b_w * ratio == width
            and b_h * ratio == height
        )
        if not aligned:
            raise BadInput(
                f"band {band} is not on the grid of {ref_band}: {b_w}x{b_h} px of {b_res} m at "
                f"({b_tr[2]}, {b_tr[5]}) vs {width}x{height} px of {res} m at "
                f"({transform[2]}, {transform[5]})",
                band=band,
            )


def _describe(exc: BaseException) -> str:
    """The error with GDAL's own message, which rasterio keeps as the cause."""
    cause = exc.__cause__ or exc.__context__
    return f"{exc} ({cause})" if cause is not None and str(cause) not in str(exc) else str(exc)


def _unreadable(band: str, msg: ProductMessage, exc: BaseException) -> BadInput:
    return BadInput(
        f"band {band} of {msg.product_id} is unreadable or truncated: {_describe(exc)}", band=band
    )


def _is_transient(exc: Exception, path: str) -> bool:
    return path.startswith(("/vsicurl/", "/vsis3/")) and any(t in str(exc) for t in _TRANSIENT)


def _copy(rt: Runtime, src: str, key: str) -> None:
    for attempt in range(RETRIES + 1):
        try:
            with (
                rasterio.Env(**_HTTP_ENV, GDAL_CACHEMAX=COPY_CACHE_MB),
                rt.store.staged_file(key) as tmp,
            ):
                # to_cog opens any GDAL path string; raw/ is a working copy, deleted at commit
                to_cog(cast(Path, src), tmp, zlevel=RAW_ZLEVEL)
            return
        except RasterioError as exc:
            if attempt < RETRIES and _is_transient(exc, src):
                time.sleep(BACKOFF_S * 2**attempt)
                continue
            raise


def _stored_ok(rt: Runtime, key: str, expected: tuple[int, int]) -> bool:
    if not rt.store.exists(key) or rt.store.size(key) == 0:
        return False
    try:
        with rt.store.gdal_env(), rasterio.open(rt.store.gdal_path(key)) as ds:
            return (ds.width, ds.height) == expected
    except RasterioError:
        return False


def _leave_out(msg: ProductMessage, band: str, why: object) -> None:
    """An auxiliary band (only the haze figure needs it) is unusable: go on without it."""
    log.warning("%s: auxiliary band %s left out: %s", msg.product_id, band, why)


def _in_crs(crs: str, epsg: int) -> bool:
    """Whether a band's CRS string is EPSG:``epsg`` (False when it cannot be parsed)."""
    try:
        return bool(rasterio.crs.CRS.from_string(crs).to_epsg() == epsg)
    except CRSError:
        return False


def handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Copy the needed bands into raw/, set ``msg.bands``; BadInput leaves no raw/ objects."""
    check_model(rt, msg)
    ref = msg.product_ref()
    needed = list(msg.bands_needed or DEFAULT_BANDS)
    missing = [band for band in needed if band not in ref.assets]
    if missing:
        raise BadInput(
            f"product {msg.product_id} lacks band asset(s) {', '.join(missing)}", missing=missing
        )
    zone, lat_band, _c, _r = parse_tile(msg.tile)
    needed += [b for b in AUXILIARY_BANDS if b in ref.assets and b not in needed]
    paths = {band: gdal_href(ref.assets[band].href) for band in needed}
    try:
        grids: dict[str, Grid] = {}
        for band, path in paths.items():
            try:
                with rasterio.Env(**_HTTP_ENV):
                    grids[band], sample, nodata = _inspect(band, path)
            except RasterioError as exc:
                if _is_transient(exc, path):
                    raise
                if band in AUXILIARY_BANDS:
                    _leave_out(msg, band, exc)
                    continue
                raise _unreadable(band, msg, exc) from exc
            check_reflectance(band, sample, nodata, ref.assets[band])
        epsg = utm_epsg(zone, lat_band)
        for band in [b for b in AUXILIARY_BANDS if b in grids]:
            if not _in_crs(grids[band][0], epsg):
                _leave_out(msg, band, f"not in EPSG:{epsg}")
                del grids[band]
        paths = {band: path for band, path in paths.items() if band in grids}
        check_grids({b: g for b, g in grids.items() if b not in AUXILIARY_BANDS}, epsg)
        bands: dict[str, str] = {}
        for band, path in paths.items():
            key = layout.raw_key(msg.date, msg.tile, msg.product_id, band)
            if not _stored_ok(rt, key, grids[band][2:4]):
                try:
                    _copy(rt, path, key)
                except RasterioError as exc:
                    if _is_transient(exc, path):
                        raise
                    if band in AUXILIARY_BANDS:
                        _leave_out(msg, band, exc)  # staged: nothing of it was stored
                        continue
                    raise _unreadable(band, msg, exc) from exc
            bands[band] = key
    except BadInput:
        rt.store.delete_prefix(layout.raw_prefix(msg.date, msg.tile, msg.product_id))
        raise
    msg.bands = bands
    return [msg]
