"""Stage fetch: copy the bands a model needs into ``raw/`` as COGs, checked on the way.

Each band is read from its catalogue href (file path, ``http(s)://`` via ``/vsicurl/``,
``s3://`` via ``/vsis3/``), checked (readable, single band, the tile's UTM CRS, grids aligned
with the other bands at their resolution ratios), converted to a COG block by block and
published in one step. Bands already stored and valid are not copied again. Unusable input
raises BadInput after removing the product's ``raw/`` folder, so nothing partial stays.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import cast

import rasterio
from rasterio.errors import RasterioError, RasterioIOError

from earthsignature.functions.cog import to_cog
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.stac import RESOLUTION, ProductRef
from earthsignature.generator.mgrs import parse_tile, utm_epsg
from earthsignature.runtime import Runtime
from earthsignature.storage import layout

log = logging.getLogger(__name__)

#: The 10 m and 20 m bands and SCL: what the models and the cloud stage read.
DEFAULT_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL")
RETRIES = 3
BACKOFF_S = 0.5
_TRANSIENT = ("HTTP response code: 5", "HTTP response code: 429", "timed out", "Connection")
_HTTP_ENV = {"GDAL_HTTP_MAX_RETRY": "3", "GDAL_HTTP_RETRY_DELAY": "0.5"}


def gdal_href(href: str) -> str:
    """A path GDAL opens for a catalogue href."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    return href.removeprefix("file://")


def _grid(path: str) -> tuple[str, tuple[float, ...], int, int, float, str]:
    with rasterio.open(path) as ds:
        if ds.count != 1:
            raise BadInput(f"{path}: expected one band, found {ds.count}")
        return (str(ds.crs), tuple(ds.transform)[:6], ds.width, ds.height, ds.res[0], ds.dtypes[0])


def check_grids(
    grids: dict[str, tuple[str, tuple[float, ...], int, int, float, str]], epsg: int
) -> None:
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


def _is_transient(exc: Exception, path: str) -> bool:
    return path.startswith(("/vsicurl/", "/vsis3/")) and any(t in str(exc) for t in _TRANSIENT)


def _copy(rt: Runtime, src: str, key: str) -> None:
    for attempt in range(RETRIES + 1):
        try:
            with rasterio.Env(**_HTTP_ENV), rt.store.staged_file(key) as tmp:
                to_cog(cast(Path, src), tmp)  # to_cog opens any GDAL path string
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


def handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Copy the needed bands into raw/, set ``msg.bands``; BadInput leaves no raw/ objects."""
    ref = ProductRef.from_dict(msg.item)
    needed = list(msg.extra.get("bands_needed") or DEFAULT_BANDS)
    missing = [band for band in needed if band not in ref.assets]
    if missing:
        raise BadInput(
            f"product {msg.product_id} lacks band asset(s) {', '.join(missing)}", missing=missing
        )
    zone, lat_band, _c, _r = parse_tile(msg.tile)
    paths = {band: gdal_href(ref.assets[band].href) for band in needed}
    try:
        try:
            with rasterio.Env(**_HTTP_ENV):
                grids = {band: _grid(path) for band, path in paths.items()}
        except RasterioIOError as exc:
            raise BadInput(f"unreadable band of {msg.product_id}: {exc}") from exc
        check_grids(grids, utm_epsg(zone, lat_band))
        bands: dict[str, str] = {}
        for band, path in paths.items():
            key = layout.raw_key(msg.date, msg.tile, msg.product_id, band)
            if not _stored_ok(rt, key, grids[band][2:4]):
                try:
                    _copy(rt, path, key)
                except RasterioError as exc:
                    if _is_transient(exc, path):
                        raise
                    raise BadInput(
                        f"band {band} of {msg.product_id} is unreadable or truncated: {exc}",
                        band=band,
                    ) from exc
            bands[band] = key
    except BadInput:
        rt.store.delete_prefix(layout.raw_prefix(msg.date, msg.tile, msg.product_id))
        raise
    msg.bands = bands
    return [msg]
