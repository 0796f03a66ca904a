"""Product references for tests and benchmarks, made the way discover makes them.

A test that needs a :class:`~earthsignature.functions.stac.ProductRef` for bands it wrote
itself gets one from :func:`product_ref`: an Earth Search v1 shaped STAC item (``mgrs:*``
properties, common-name asset keys, ``raster:bands`` scale and offset, the tile's footprint)
mapped by the real :func:`~earthsignature.functions.stac.from_stac_item`, so the reference
has the shape the pipeline's messages carry and nothing hand-made can drift from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rasterio.warp import transform_geom

from earthsignature.functions.stac import COMMON_NAMES, SCL, ProductRef, from_stac_item
from earthsignature.mgrs import tile_grid

#: ESA band id -> Earth Search v1 asset key.
ASSET_KEYS = {band: key for key, band in COMMON_NAMES.items()}
#: A Sentinel-2 tile's side (m).
TILE_EXTENT_M = 109_800


def tile_footprint(tile: str) -> dict[str, Any]:
    """The tile's square in EPSG:4326 (GeoJSON), as a catalogue states a full tile's."""
    grid = tile_grid(tile)
    left, top = grid.ulx, grid.uly
    right, bottom = left + TILE_EXTENT_M, top - TILE_EXTENT_M
    ring = [[left, top], [right, top], [right, bottom], [left, bottom], [left, top]]
    polygon = {"type": "Polygon", "coordinates": [ring]}
    return dict(transform_geom(f"EPSG:{grid.epsg}", "EPSG:4326", polygon, precision=7))


def stac_item(
    product_id: str,
    datetime: str,
    tile: str,
    *,
    hrefs: Mapping[str, str] | None = None,
    scale: float = 1e-4,
    offset: float = 0.0,
    offsets: Mapping[str, float] | None = None,
    cloud_cover: float | None = None,
    published: str | None = None,
    platform: str = "sentinel-2a",
    processing_baseline: str = "05.10",
) -> dict[str, Any]:
    """An Earth Search v1 ``sentinel-2-l2a`` item of ``tile`` whose band ``b`` is at
    ``hrefs[b]`` (ESA band ids), reflectance = DN x ``scale`` + ``offsets.get(b, offset)``."""
    grid = tile_grid(tile)
    footprint = tile_footprint(tile)
    lons = [p[0] for p in footprint["coordinates"][0]]
    lats = [p[1] for p in footprint["coordinates"][0]]
    assets: dict[str, Any] = {}
    for band, href in (hrefs or {}).items():
        asset: dict[str, Any] = {"href": href, "type": "image/tiff; application=geotiff"}
        if band != SCL:
            band_offset = (offsets or {}).get(band, offset)
            asset["raster:bands"] = [{"nodata": 0, "scale": scale, "offset": band_offset}]
        assets[ASSET_KEYS.get(band, band)] = asset
    properties: dict[str, Any] = {
        "datetime": datetime,
        "platform": platform,
        "mgrs:utm_zone": grid.zone,
        "mgrs:latitude_band": grid.latitude_band,
        "mgrs:grid_square": grid.grid_square,
        "s2:processing_baseline": processing_baseline,
        "s2:product_type": "S2MSI2A",
        "proj:epsg": grid.epsg,
    }
    if cloud_cover is not None:
        properties["eo:cloud_cover"] = cloud_cover
    if published is not None:
        properties["published"] = published
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": product_id,
        "collection": "sentinel-2-l2a",
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "geometry": footprint,
        "properties": properties,
        "assets": assets,
        "links": [],
    }


def product_ref(product_id: str, datetime: str, tile: str, **item: Any) -> ProductRef:
    """The ProductRef discover makes of :func:`stac_item` (same arguments)."""
    return from_stac_item(stac_item(product_id, datetime, tile, **item))
