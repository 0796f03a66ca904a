"""The catalog: one STAC Item per committed product, the commit point of the pipeline.

A product is visible to readers if and only if its record exists under ``catalog/``; the
record is written last, after every asset it names is stored. Readers prune by the
``model=/version=/date=`` partitions, so a date range never scans unrelated products.

Item shape (written by publish, in the vectorize stage; read by the API, stats and viewer):

- ``id``: product id; ``geometry``/``bbox``: footprint of valid data, EPSG:4326.
- ``properties``: ``datetime`` (acquisition), ``created`` (segmentation time), ``published``
  (product publication, when known), ``earthsig:model``, ``earthsig:version``,
  ``eo:cloud_cover`` (percent cloud of valid pixels, from our mask),
  ``earthsig:categories`` (sorted CORINE codes present), ``earthsig:class_areas``
  (code -> m²), ``s2:mgrs_tile``, ``earthsig:product_type`` (e.g. S2MSI2A),
  ``earthsig:source_item`` (the product reference the pipeline ran on, which reprocessing
  reuses instead of searching the STAC API again).
  ``earthsig:haze`` (the cloud stage's haze figure, see functions/haze.py; absent when unknown).
- ``assets``: ``segmentation``, ``cloud_mask``, ``polygons``, ``tiles``, and ``confidence``
  (role ``data``, uint8 percent, 255 no data) for models with that output; each ``href`` is
  relative to the item (so GDAL/QGIS users can follow it) and ``earthsig:key`` is the store key.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from earthsignature.storage import layout
from earthsignature.storage.base import ObjectStore, check_key
from earthsignature.storage.errors import ObjectNotFound, StorageError

PROP_MODEL = "earthsig:model"
PROP_VERSION = "earthsig:version"
PROP_CATEGORIES = "earthsig:categories"
PROP_CLASS_AREAS = "earthsig:class_areas"
PROP_PRODUCT_TYPE = "earthsig:product_type"
PROP_HAZE = "earthsig:haze"
PROP_TILE = "s2:mgrs_tile"
PROP_SOURCE_ITEM = "earthsig:source_item"
ASSET_KEY = "earthsig:key"


class CatalogError(StorageError):
    """A catalog record is malformed or names assets that are not stored."""


@dataclass(frozen=True)
class CatalogEntry:
    """A committed product as readers need it."""

    key: str
    product_id: str
    model: str
    version: int
    datetime: dt.datetime
    geometry: dict[str, Any]
    bbox: tuple[float, float, float, float]
    cloud_cover: float | None
    categories: tuple[int, ...]
    class_areas: dict[int, float]
    assets: dict[str, str]
    created: dt.datetime | None
    published: dt.datetime | None
    properties: dict[str, Any] = field(repr=False)

    @property
    def date(self) -> dt.date:
        return self.datetime.astimezone(dt.UTC).date()

    @classmethod
    def from_item(cls, item: dict[str, Any], key: str) -> CatalogEntry:
        try:
            props = item["properties"]
            assets: dict[str, str] = {}
            for name, asset in item["assets"].items():
                found = asset.get(ASSET_KEY) or asset_key_from_href(key, asset.get("href"))
                if found is not None:
                    assets[str(name)] = str(found)
            return cls(
                key=key,
                product_id=item["id"],
                model=props[PROP_MODEL],
                version=int(props[PROP_VERSION]),
                datetime=parse_time(props["datetime"]),
                geometry=item["geometry"],
                bbox=tuple(item["bbox"][:4]),  # type: ignore[arg-type]
                cloud_cover=props.get("eo:cloud_cover"),
                categories=tuple(int(c) for c in props.get(PROP_CATEGORIES, [])),
                class_areas={int(k): float(v) for k, v in props.get(PROP_CLASS_AREAS, {}).items()},
                assets=assets,
                created=parse_time(props["created"]) if props.get("created") else None,
                published=parse_time(props["published"]) if props.get("published") else None,
                properties=props,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"malformed catalog record {key!r}: {exc!r}") from exc


def parse_time(value: str) -> dt.datetime:
    """A catalog ISO 8601 time (``Z`` or an offset; UTC when it names no zone)."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def relative_href(item_key: str, asset_key: str) -> str:
    """The href of an asset relative to its item, as STAC readers resolve it.

    Keys are rooted at "/" first: ``relpath`` would otherwise make them absolute with the
    process's working directory, which need not exist (a worker started in a removed one).
    """
    return posixpath.relpath(f"/{asset_key}", posixpath.dirname(f"/{item_key}"))


def asset_key_from_href(item_key: str, href: object) -> str | None:
    """The store key a relative asset href names (None for URLs, absolute paths, or an href
    leaving the store), for assets written without ``earthsig:key``."""
    if not isinstance(href, str) or not href or "://" in href or href.startswith("/"):
        return None
    key = posixpath.normpath(posixpath.join(posixpath.dirname(item_key), href))
    if key.startswith("../") or key in (".", ".."):
        return None
    try:
        return check_key(key)
    except StorageError:
        return None


def commit(store: ObjectStore, item: dict[str, Any]) -> CatalogEntry:
    """Write the record of a product last, after checking every asset it names is stored.

    Re-committing the same product overwrites the record with identical content (idempotent).
    """
    props = item.get("properties", {})
    try:
        key = layout.catalog_key(
            props[PROP_MODEL], props[PROP_VERSION], props["datetime"], item["id"]
        )
    except KeyError as exc:
        raise CatalogError(f"catalog record lacks {exc}") from None
    entry = CatalogEntry.from_item(item, key)
    missing = [k for k in entry.assets.values() if not store.exists(k)]
    if missing:
        raise CatalogError(f"refusing to commit {entry.product_id}: assets not stored: {missing}")
    store.put_bytes(key, json.dumps(item, sort_keys=True, separators=(",", ":")).encode())
    return entry


def read_entry(store: ObjectStore, key: str) -> CatalogEntry:
    return CatalogEntry.from_item(json.loads(store.get_bytes(key)), key)


def is_committed(
    store: ObjectStore, model: str, version: int, date: dt.date | str, product_id: str
) -> bool:
    return store.exists(layout.catalog_key(model, version, date, product_id))


def read_committed(
    store: ObjectStore, model: str, version: int, date: dt.date | str, product_id: str
) -> CatalogEntry | None:
    try:
        return read_entry(store, layout.catalog_key(model, version, date, product_id))
    except ObjectNotFound:
        return None


def model_versions(store: ObjectStore) -> list[tuple[str, int]]:
    """Every (model, version) with at least one partition in the catalog."""
    out = []
    for model_dir in store.list_dirs(layout.catalog_prefix()):
        model = model_dir.rstrip("/").rsplit("model=", 1)[-1]
        for version_dir in store.list_dirs(model_dir):
            out.append((model, int(version_dir.rstrip("/").rsplit("version=", 1)[-1])))
    return sorted(out)


def iter_entries(
    store: ObjectStore,
    model: str | None = None,
    version: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> Iterator[CatalogEntry]:
    """Committed products, filtered by model, version and acquisition date range (inclusive).

    Lists the date partitions first and opens only those inside the range.
    """
    pairs = (
        [(model, version)]
        if model is not None and version is not None
        else [
            (m, v)
            for m, v in model_versions(store)
            if (model is None or m == model) and (version is None or v == version)
        ]
    )
    for m, v in pairs:
        for date_dir in store.list_dirs(layout.catalog_prefix(m, v)):
            day = dt.date.fromisoformat(date_dir.rstrip("/").rsplit("date=", 1)[-1])
            if (start and day < start) or (end and day > end):
                continue
            for info in store.list_keys(date_dir):
                if info.key.endswith(".json"):
                    yield read_entry(store, info.key)
