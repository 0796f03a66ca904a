"""The reader's in-memory index of committed products: spatial (STRtree) and temporal.

Loaded from the catalog (and the composites' items, ``composites/.../item.json``, which
answer as products dated at their period's start) when the server starts and kept current
without a restart:
:meth:`ProductIndex.refresh` lists the catalog keys (one paginated listing) and reads only
records that are new or changed size (several reads at once: S3 reads wait on the network),
dropping records that disappeared; the server calls it every ``api_refresh_seconds``. Products
ingested through the API are added at once.

Memory: a product is kept as one compact :class:`ProductRow` (strings interned, times as epoch
seconds, footprint as a shapely geometry), about 1-2 KiB, never the parsed STAC JSON. Only
what the API reads is kept (:data:`KEPT_PROPERTIES`); ``class_areas`` are not (statistics read
the catalog). :attr:`IndexedProduct.entry` builds a :class:`~catalog.CatalogEntry` on demand.

Each (model, version) has its own immutable shelf (rows sorted by acquisition time, times in a
numpy array, footprints in an STRtree); a change builds a new shelf and swaps it in, so searches
never lock.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from earthsignature.memory import release_free_memory
from earthsignature.storage import catalog, layout
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.errors import ObjectNotFound

log = logging.getLogger(__name__)

#: STAC properties the API answers with besides the typed fields (V1 SegmentationResponse).
KEPT_PROPERTIES = (catalog.PROP_PRODUCT_TYPE, "quicklook", "browse_url", "download_url")

#: Records read at once during a refresh (S3 GETs overlap; parsing holds the GIL anyway).
READ_THREADS = 8

#: Loads larger than this hand the parsing garbage back to the OS (glibc ``malloc_trim``).
TRIM_AFTER = 1000

_NO_TIME = np.nan


def _release_free_memory() -> None:
    """Return the parsing garbage of many records to the OS."""
    gc.collect()
    release_free_memory()


class ProductRow(NamedTuple):
    """One product as the index keeps it: small, with shared (interned) strings and tuples."""

    key: str
    product_id: str
    model: str
    version: int
    time: float  # acquisition, epoch seconds
    footprint: BaseGeometry
    cloud_cover: float | None
    categories: tuple[int, ...]
    assets: tuple[tuple[str, str], ...]
    created: float
    published: float
    extra: tuple[tuple[str, Any], ...]


def _when(seconds: float) -> dt.datetime | None:
    return None if seconds != seconds else dt.datetime.fromtimestamp(seconds, dt.UTC)


class IndexedProduct:
    """A committed product found by a search: footprint, a few fields, the entry on demand."""

    def __init__(self, row: ProductRow) -> None:
        self.row = row

    @property
    def footprint(self) -> BaseGeometry:
        return self.row.footprint

    @property
    def product_id(self) -> str:
        return self.row.product_id

    @property
    def datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.row.time, dt.UTC)

    def asset(self, name: str) -> str:
        """Store key of one asset (``polygons``, ``segmentation``...); KeyError when absent."""
        for asset, key in self.row.assets:
            if asset == name:
                return key
        raise KeyError(name)

    @cached_property
    def entry(self) -> catalog.CatalogEntry:
        """The product as a catalog entry (``class_areas`` empty: the index does not keep them)."""
        row = self.row
        return catalog.CatalogEntry(
            key=row.key,
            product_id=row.product_id,
            model=row.model,
            version=row.version,
            datetime=self.datetime,
            geometry=mapping(row.footprint),
            bbox=tuple(shapely.bounds(row.footprint).tolist()),  # type: ignore[arg-type]
            cloud_cover=row.cloud_cover,
            categories=row.categories,
            class_areas={},
            assets=dict(row.assets),
            created=_when(row.created),
            published=_when(row.published),
            properties=dict(row.extra),
        )

    def __repr__(self) -> str:
        return f"IndexedProduct({self.row.product_id!r})"


class _Interner:
    """Shares equal strings and tuples between rows (model names, categories, asset keys)."""

    def __init__(self) -> None:
        self._seen: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return sys.intern(value)
        try:
            return self._seen.setdefault(value, value)
        except TypeError:  # unhashable (a JSON object in a kept property): kept as it is
            return value


def _seconds(value: str | None) -> float:
    """Epoch seconds of an ISO 8601 time (UTC when it names no zone); NaN for none."""
    return catalog.parse_time(value).timestamp() if value else _NO_TIME


def _footprint(geometry: dict[str, Any]) -> BaseGeometry:
    footprint = shape(geometry)
    return footprint if footprint.is_valid else shapely.make_valid(footprint)


def _parse_row(item: dict[str, Any], key: str, intern: _Interner) -> ProductRow:
    """Only the fields the API reads; malformed records raise CatalogError like the catalog."""
    try:
        props = item["properties"]
        cloud = props.get("eo:cloud_cover")
        return ProductRow(
            key=key,
            product_id=intern(str(item["id"])),
            model=intern(str(props[catalog.PROP_MODEL])),
            version=int(props[catalog.PROP_VERSION]),
            time=_seconds(props["datetime"]),
            footprint=_footprint(item["geometry"]),
            cloud_cover=None if cloud is None else float(cloud),
            categories=intern(tuple(int(c) for c in props.get(catalog.PROP_CATEGORIES, []))),
            assets=intern(
                tuple(
                    (intern(name), intern(a[catalog.ASSET_KEY]))
                    for name, a in item["assets"].items()
                    if catalog.ASSET_KEY in a
                )
            ),
            created=_seconds(props.get("created")),
            published=_seconds(props.get("published")),
            extra=intern(tuple((k, intern(props[k])) for k in KEPT_PROPERTIES if k in props)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise catalog.CatalogError(f"malformed catalog record {key!r}: {exc!r}") from exc


def _row_of_entry(entry: catalog.CatalogEntry, intern: _Interner) -> ProductRow:
    item = {
        "id": entry.product_id,
        "geometry": entry.geometry,
        "properties": entry.properties,
        "assets": {name: {catalog.ASSET_KEY: key} for name, key in entry.assets.items()},
    }
    return _parse_row(item, entry.key, intern)


class _Shelf:
    """Rows of one model version, oldest first, with their footprints' STRtree."""

    def __init__(self, rows: list[ProductRow]) -> None:
        self.rows = rows
        self.times = np.array([r.time for r in rows], dtype=np.float64)
        self.tree = shapely.STRtree([r.footprint for r in rows])

    def search(
        self, aoi: BaseGeometry | None, start: dt.datetime | None, end: dt.datetime | None
    ) -> np.ndarray:
        """Positions of matching rows, ascending."""
        lo = int(np.searchsorted(self.times, start.timestamp(), "left")) if start else 0
        hi = int(np.searchsorted(self.times, end.timestamp(), "right")) if end else len(self.rows)
        if lo >= hi:
            return np.empty(0, dtype=np.intp)
        if aoi is None:
            return np.arange(lo, hi)
        hits = np.asarray(self.tree.query(aoi, predicate="intersects"))
        return np.sort(hits[(hits >= lo) & (hits < hi)])


def _order(row: ProductRow) -> tuple[float, str]:
    return (row.time, row.product_id)


class ProductIndex:
    """Committed products of every model version, searchable by area and time."""

    def __init__(self, store: ObjectStore, read_threads: int | None = None) -> None:
        self.store = store
        if read_threads is None:
            read_threads = min(store.parallel_reads, READ_THREADS)
        self.read_threads = read_threads
        self._lock = threading.Lock()
        self._intern = _Interner()
        self._sizes: dict[str, int] = {}
        self._by_key: dict[str, ProductRow] = {}
        self._shelves: dict[tuple[str, int], _Shelf] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def _read(self, key: str) -> ProductRow | None:
        try:
            item = json.loads(self.store.get_bytes(key))
            if key.startswith(layout.COMPOSITES + "/") and "polygons" not in (
                item.get("assets") or {}
            ):
                return None  # V2 serves polygons: composites without them are not products
            return _parse_row(item, key, self._intern)
        except ObjectNotFound:
            return None
        except (catalog.CatalogError, ValueError) as exc:
            log.warning("skipping malformed catalog record %r: %s", key, exc)
            return None

    def refresh(self) -> int:
        """Pick up records committed, changed or removed since the last call; returns changes."""
        listed = {
            info.key: info.size
            for info in self.store.list_keys(layout.catalog_prefix())
            if info.key.endswith(".json")
        }
        listed |= {  # tile-period composites, products with ids COMPOSITE_<tile>_<period>
            info.key: info.size
            for info in self.store.list_keys(layout.COMPOSITES + "/")
            if info.key.endswith("/item.json")
        }
        with self._lock:
            changed = [k for k, size in listed.items() if self._sizes.get(k) != size]
            removed = [k for k in self._sizes if k not in listed]
        if len(changed) > 1 and self.read_threads > 1:
            with ThreadPoolExecutor(self.read_threads, thread_name_prefix="index-read") as pool:
                rows = list(pool.map(self._read, changed, chunksize=64))
        else:
            rows = [self._read(key) for key in changed]
        loaded = [(k, listed[k], r) for k, r in zip(changed, rows, strict=True) if r is not None]
        with self._lock:
            touched: set[tuple[str, int]] = set()
            for key in removed:
                self._sizes.pop(key, None)
                old = self._by_key.pop(key, None)
                if old:
                    touched.add((old.model, old.version))
            for key, size, row in loaded:
                self._sizes[key] = size
                old = self._by_key.get(key)
                if old:
                    touched.add((old.model, old.version))
                self._by_key[key] = row
                touched.add((row.model, row.version))
            self._rebuild(touched)
        if len(loaded) > TRIM_AFTER:
            _release_free_memory()
        if loaded or removed:
            log.info("index: %d new or changed, %d removed products", len(loaded), len(removed))
        return len(loaded) + len(removed)

    def add(self, entry: catalog.CatalogEntry) -> None:
        """Index a product just committed by this process (visible before the next refresh)."""
        row = _row_of_entry(entry, self._intern)
        with self._lock:
            self._by_key[entry.key] = row
            self._sizes.pop(entry.key, None)  # the next refresh re-reads it and records its size
            self._rebuild({(row.model, row.version)})

    def _rebuild(self, pairs: Iterable[tuple[str, int]]) -> None:
        groups: dict[tuple[str, int], list[ProductRow]] = {pair: [] for pair in pairs}
        if not groups:
            return
        for row in self._by_key.values():
            group = groups.get((row.model, row.version))
            if group is not None:
                group.append(row)
        for pair, rows in groups.items():
            if rows:
                rows.sort(key=_order)
                self._shelves[pair] = _Shelf(rows)
            else:
                self._shelves.pop(pair, None)

    def model_versions(self) -> list[tuple[str, int]]:
        return sorted(self._shelves)

    def search(
        self,
        model: str | None,
        version: int | None,
        *,
        aoi: BaseGeometry | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        product_ids: frozenset[str] = frozenset(),
        categories: frozenset[int] = frozenset(),
    ) -> list[IndexedProduct]:
        """Matching products, newest acquisition first; model/version None means all."""
        shelves = [
            shelf
            for (m, v), shelf in list(self._shelves.items())
            if (model is None or m == model) and (version is None or v == version)
        ]
        found = [shelf.rows[i] for shelf in shelves for i in shelf.search(aoi, start, end)]
        if product_ids:
            found = [r for r in found if r.product_id in product_ids]
        if categories:
            found = [r for r in found if categories.intersection(r.categories)]
        found.sort(key=_order, reverse=True)
        return [IndexedProduct(r) for r in found]
