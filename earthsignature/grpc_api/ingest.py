"""CreateProduct: validate an externally made segmentation and cloud mask, then publish them.

The uploaded cloud mask is checked (one band of 0/1, same grid as the segmentation) and
stored as the 1-bit COG the cloud stage would have written; the segmentation then goes
through the pipeline's own publish step
(:func:`~earthsignature.functions.publish.publish_product`: COG, polygons, vector tiles, catalog
record last), so an ingested product is stored exactly like a processed one and a rejected
upload leaves nothing visible.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile
from rasterio.transform import array_bounds
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping

from earthsignature.functions.cog import to_cog
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.publish import check_codes, publish_product
from earthsignature.functions.stac import ProductRef
from earthsignature.runtime import Runtime
from earthsignature.storage import layout
from earthsignature.storage.catalog import CatalogEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """What a client sends: identity, metadata and the two rasters (GeoTIFF bytes)."""

    product_id: str
    acquired: dt.datetime
    model: str
    version: int
    segmentation: bytes
    cloud_mask: bytes
    tile: str | None = None
    product_type: str = "S2MSI2A"
    published: dt.datetime | None = None


def tile_of(product_id: str, tile: str | None = None) -> str:
    """The MGRS tile given, or the one in a Sentinel-2 product id (``..._T31TEJ_...``)."""
    if tile:
        return layout.tile_id(tile)
    found = layout.tile_in_text(product_id)
    if found is None:
        raise BadInput(f"no MGRS tile in product id {product_id!r}: give a 'tile' property")
    return layout.tile_id(found)


def _open(data: bytes, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Band 1 and the profile of a single-band GeoTIFF with a CRS."""
    try:
        with MemoryFile(data) as memfile, memfile.open() as src:
            if src.count != 1:
                raise BadInput(f"{what} must have one band, not {src.count}")
            if src.crs is None:
                raise BadInput(f"{what} has no CRS")
            return src.read(1), dict(src.profile)
    except RasterioIOError as exc:
        raise BadInput(f"{what} is not a readable GeoTIFF: {exc}") from None


def _write_geotiff(path: Path, array: np.ndarray, profile: dict[str, Any], **extra: Any) -> None:
    meta = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype,
        "crs": profile["crs"],
        "transform": profile["transform"],
        "tiled": True,
        **extra,
    }
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(array, 1)


def _upload_ref(upload: Upload, tile: str, profile: dict[str, Any]) -> ProductRef:
    """The upload as a product reference: its identity and times, the segmentation's
    footprint, no band assets (nothing to fetch, so reprocessing searches the catalogue)."""
    bounds = array_bounds(profile["height"], profile["width"], profile["transform"])
    footprint = transform_geom(profile["crs"], "EPSG:4326", mapping(box(*bounds)), precision=7)
    return ProductRef(
        id=upload.product_id,
        datetime=upload.acquired.astimezone(dt.UTC).isoformat(),
        tile=tile,
        footprint=dict(footprint),
        cloud_cover=None,
        processing_baseline=None,
        platform=None,
        product_type=upload.product_type,
        published=upload.published.isoformat() if upload.published else None,
    )


def ingest(rt: Runtime, upload: Upload, run: str = "api") -> CatalogEntry:
    """Validate, store and commit an uploaded product; BadInput says what is wrong."""
    tile = tile_of(upload.product_id, upload.tile)
    segmentation, seg_profile = _open(upload.segmentation, "segmentation")
    if segmentation.dtype != np.uint16:
        raise BadInput(f"segmentation must be uint16, not {segmentation.dtype}")
    check_codes(np.unique(segmentation))
    cloud, cloud_profile = _open(upload.cloud_mask, "cloud_mask")
    if not np.isin(np.unique(cloud), (0, 1)).all():
        raise BadInput("cloud_mask must hold only 0 (clear) and 1 (cloud)")
    if cloud.shape != segmentation.shape or cloud_profile["transform"] != seg_profile["transform"]:
        raise BadInput("cloud_mask must be on the segmentation's grid (same size and transform)")
    valid = segmentation > 0
    cloud_fraction = float(100.0 * cloud[valid].mean()) if valid.any() else 100.0

    mask_key = layout.mask_key(upload.acquired, tile, upload.product_id)
    msg = ProductMessage(
        product_id=upload.product_id,
        date=upload.acquired.astimezone(dt.UTC).date().isoformat(),
        tile=tile,
        model=upload.model,
        version=upload.version,
        run=run,
        item=_upload_ref(upload, tile, seg_profile),
        cloud_mask=mask_key,
        cloud_fraction=round(cloud_fraction, 4),
    )
    with tempfile.TemporaryDirectory(prefix="earthsig-ingest-") as tmp:
        folder = Path(tmp)
        seg_path, cloud_plain = folder / "segmentation.tif", folder / "cloud.tif"
        _write_geotiff(seg_path, segmentation, seg_profile, nodata=0)
        _write_geotiff(cloud_plain, cloud.astype(np.uint8), cloud_profile)
        with rt.store.staged_file(mask_key, suffix=".tif") as staged:
            to_cog(cloud_plain, staged, nbits=1)
        entry = publish_product(rt, msg, seg_path)
    if rt.settings.composites and run == "api":
        _composite(rt, entry)
    return entry


def _composite(rt: Runtime, entry: CatalogEntry) -> None:
    """Fold an uploaded product into its tile's composites, as the composite stage does for
    processed ones. The product is committed whatever happens here: a failure is logged and
    left to ``earthsig composites update``."""
    from earthsignature.composites.stage import update_composites

    try:
        update_composites(rt, entry)
    except Exception:
        log.exception("composites not updated for %s", entry.product_id)
