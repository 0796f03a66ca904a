"""What the page needs to know, as JSON: model versions, products by date, the tile-period
composites that have vector tiles (by period), the CLC colours, the basemap (packaged
Natural Earth land and borders, in colours no CLC class has)."""

from __future__ import annotations

from typing import Any

from earthsignature import corine
from earthsignature.storage import layout
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.catalog import CatalogEntry, iter_entries, model_versions, read_entry

#: The offline basemap and its colours: a mid grey land and a slate sea, far (RGB distance
#: over 90) from every CLC colour, so pale classes (beaches and sand, glaciers, sea) show.
BASEMAP = {
    "url": "/static/vendor/basemap-110m.json",
    "land": "#8c8c84",
    "sea": "#6d8aa3",
    "border": "#f4f4f0",
    "coast": "#3d4f5c",
    "footprint": "#111111",
    "source": "Natural Earth 1:110m (public domain), see static/vendor/LICENSE-basemap.txt",
}


def fill_color_expression() -> list[Any]:
    """A MapLibre ``match`` expression: polygon ``code`` -> official CLC colour."""
    expression: list[Any] = ["match", ["to-number", ["get", "code"]]]
    for code, cls in corine.CLASSES.items():
        expression += [code, cls.hex]
    return [*expression, "#000000"]


def legend() -> list[dict[str, Any]]:
    return [{"code": c, "label": k.label, "color": k.hex} for c, k in corine.CLASSES.items()]


def _composites(store: ObjectStore, model: str, version: int) -> list[dict[str, Any]]:
    """The composites of a model version that have vector tiles (by default the rolling 12
    months; see earthsignature/composites/stage.py), shaped as products with a ``period``."""
    out = []
    for info in store.list_keys(layout.composites_prefix(model, version)):
        if info.key.endswith("/item.json"):
            entry = read_entry(store, info.key)
            if "tiles" in entry.assets:
                period = entry.key.split("/period=", 1)[1].split("/", 1)[0]
                out.append({**_product(entry), "period": period, "cloud": None})
    return sorted(out, key=lambda p: (p["period"], p["id"]))


def _product(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "id": entry.product_id,
        "date": entry.date.isoformat(),
        "model": entry.model,
        "version": entry.version,
        "bbox": list(entry.bbox),
        "cloud_cover": entry.cloud_cover,
        "categories": list(entry.categories),
        "footprint": entry.geometry,
        "tiles": f"/tiles/{entry.assets['tiles']}",
        "cloud": f"/cloud/{entry.assets['cloud_mask']}" if "cloud_mask" in entry.assets else None,
        "confidence": (
            f"/confidence/{entry.assets['confidence']}" if "confidence" in entry.assets else None
        ),
    }


def catalog_json(
    store: ObjectStore,
    default_model: str,
    default_version: int,
    model: str | None,
    version: int | None,
) -> dict[str, Any]:
    """Model versions present, and the products of the chosen one grouped by date."""
    versions = model_versions(store)
    if model is None or version is None:
        model, version = (
            (default_model, default_version)
            if (default_model, default_version) in versions or not versions
            else versions[-1]
        )
    products = [_product(e) for e in iter_entries(store, model, version)]
    dates = sorted({p["date"] for p in products})
    composites = _composites(store, model, version) if (model, version) in versions else []
    return {
        "models": [{"model": m, "version": v} for m, v in versions],
        "model": model,
        "version": version,
        "dates": dates,
        "products": sorted(products, key=lambda p: (p["date"], p["id"])),
        "periods": sorted({c["period"] for c in composites}),
        "composites": composites,
        "fill_color": fill_color_expression(),
        "legend": legend(),
        "basemap": BASEMAP,
    }
