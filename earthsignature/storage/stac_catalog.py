"""A root STAC Catalog and one Collection per model version over the committed items.

GIS tools (QGIS's STAC browser, pystac, stac-browser) start from ``stac/catalog.json``: it
links one Collection per model version (``stac/<model>/v<version>/collection.json``), which
links its items (the per-product records under ``catalog/``) and describes the
segmentation asset with the ``proj``, ``raster`` and ``classification`` extensions (CORINE
classes with their names and official colours). Written by :func:`write_stac_catalog` after
a run (one writer, so no two processes race on the same document); every href is relative,
so the tree works from a local copy as well as from the bucket.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

import pystac

from earthsignature import corine
from earthsignature.storage import layout
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.catalog import PROP_TILE, CatalogEntry, iter_entries

PROJ_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXTENSION = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
CLASSIFICATION_EXTENSION = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
ITEM_ASSETS_EXTENSION = "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"
#: Beside ``catalog/`` (whose every .json is an item, for the readers that list it).
STAC = "stac"
ROOT_KEY = f"{STAC}/catalog.json"
#: Ground sample distance of the segmentation (Sentinel-2's 10 m grid).
RESOLUTION_M = 10.0


def collection_key(model: str, version: int) -> str:
    """``stac/<model>/v<version>/collection.json``."""
    return f"{STAC}/{layout.model_name(model)}/v{layout.model_version(version)}/collection.json"


def collection_id(model: str, version: int) -> str:
    return f"earthsig-{layout.model_name(model)}-v{layout.model_version(version)}"


def utm_epsg(tile: str) -> int:
    """The EPSG code of an MGRS tile's UTM zone (326zz north of the equator, 327zz south)."""
    tile = layout.tile_id(tile)
    zone, band = int(tile[:-3]), tile[-3]
    return (32600 if band >= "N" else 32700) + zone


def classification_classes() -> list[dict[str, Any]]:
    """CORINE level-3 classes as ``classification:classes`` (value, name, colour)."""
    return [
        {
            "value": code,
            "name": f"clc_{code}",
            "title": cls.label,
            "description": cls.label,
            "color_hint": cls.hex.lstrip("#").upper(),
        }
        for code, cls in sorted(corine.CLASSES.items())
    ]


def segmentation_item_asset() -> dict[str, Any]:
    """How every item's ``segmentation`` asset reads (item-assets)."""
    return {
        "type": pystac.MediaType.COG,
        "roles": ["data"],
        "title": "CORINE level-3 land cover",
        "gsd": RESOLUTION_M,
        "raster:bands": [
            {
                "data_type": "uint16",
                "nodata": corine.NODATA,
                "spatial_resolution": RESOLUTION_M,
                "sampling": "area",
                "classification:classes": classification_classes(),
            }
        ],
        "classification:classes": classification_classes(),
    }


def build_collection(model: str, version: int, entries: list[CatalogEntry]) -> dict[str, Any]:
    """The Collection of one model version, linking its items by relative href."""
    prefix = collection_key(model, version).rsplit("/", 1)[0] + "/"
    west = min(e.bbox[0] for e in entries)
    south = min(e.bbox[1] for e in entries)
    east = max(e.bbox[2] for e in entries)
    north = max(e.bbox[3] for e in entries)
    times = sorted(e.datetime.astimezone(dt.UTC) for e in entries)
    codes = sorted({utm_epsg(t) for e in entries if (t := e.properties.get(PROP_TILE))})
    collection = pystac.Collection(
        id=collection_id(model, version),
        title=f"EarthSignature land cover, model {model} version {version}",
        description=(
            "CORINE Land Cover level-3 maps from Sentinel-2 L2A, one item per product: "
            "a uint16 COG of CLC codes (0 = no data), its cloud mask, polygons (FlatGeobuf) "
            "and vector tiles (PMTiles)."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([[west, south, east, north]]),
            pystac.TemporalExtent([[times[0], times[-1]]]),
        ),
        license="CC-BY-4.0",
        stac_extensions=[
            PROJ_EXTENSION,
            RASTER_EXTENSION,
            CLASSIFICATION_EXTENSION,
            ITEM_ASSETS_EXTENSION,
        ],
        summaries=pystac.Summaries(
            {
                "proj:code": [f"EPSG:{c}" for c in codes],
                "gsd": [RESOLUTION_M],
                "earthsig:model": [model],
                "earthsig:version": [version],
            }
        ),
        extra_fields={"item_assets": {"segmentation": segmentation_item_asset()}},
    )
    data = collection.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = [
        {"rel": "root", "href": _relative(prefix, ROOT_KEY), "type": pystac.MediaType.JSON},
        {"rel": "parent", "href": _relative(prefix, ROOT_KEY), "type": pystac.MediaType.JSON},
    ] + [
        {
            "rel": "item",
            "href": _relative(prefix, e.key),
            "type": pystac.MediaType.GEOJSON,
            "title": e.product_id,
        }
        for e in sorted(entries, key=lambda e: e.key)
    ]
    return data


def build_root(versions: list[tuple[str, int]]) -> dict[str, Any]:
    """The root Catalog, one child link per model version's Collection."""
    root = pystac.Catalog(
        id="earthsignature",
        title="EarthSignature land-cover maps",
        description="CORINE Land Cover level-3 maps from Sentinel-2 L2A, per model version.",
    )
    data = root.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = [{"rel": "root", "href": "./catalog.json", "type": pystac.MediaType.JSON}] + [
        {
            "rel": "child",
            "href": "./" + collection_key(m, v)[len(STAC) + 1 :],
            "type": pystac.MediaType.JSON,
            "title": collection_id(m, v),
        }
        for m, v in versions
    ]
    return data


def _relative(from_prefix: str, key: str) -> str:
    """``key`` relative to the folder ``from_prefix`` (both under the store root)."""
    depth = from_prefix.rstrip("/").count("/") + 1
    return "../" * depth + key


def write_stac_catalog(store: ObjectStore) -> list[str]:
    """(Re)write the root Catalog and every model version's Collection; returns their keys."""
    by_version: dict[tuple[str, int], list[CatalogEntry]] = defaultdict(list)
    for entry in iter_entries(store):
        by_version[(entry.model, entry.version)].append(entry)
    written = []
    for (model, version), entries in sorted(by_version.items()):
        key = collection_key(model, version)
        store.put_bytes(key, _json(build_collection(model, version, entries)))
        written.append(key)
    store.put_bytes(ROOT_KEY, _json(build_root(sorted(by_version))))
    written.append(ROOT_KEY)
    return written


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True).encode()
