"""What the page needs to know, as JSON: model versions, products by date, the CLC colours,
the basemap (packaged Natural Earth land and borders, in colours no CLC class has)."""

from __future__ import annotations

from typing import Any

from earthsignature import corine
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.catalog import CatalogEntry, iter_entries, model_versions

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
        "cloud": f"/cloud/{entry.assets['cloud_mask']}",
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
    return {
        "models": [{"model": m, "version": v} for m, v in versions],
        "model": model,
        "version": version,
        "dates": dates,
        "products": sorted(products, key=lambda p: (p["date"], p["id"])),
        "fill_color": fill_color_expression(),
        "legend": legend(),
        "basemap": BASEMAP,
    }
