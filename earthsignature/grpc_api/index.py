"""The reader's in-memory index of committed products: spatial (STRtree) and temporal.

Loaded from the catalog when the server starts and kept current without a restart:
:meth:`ProductIndex.refresh` lists the catalog keys (one paginated listing) and reads only
records that are new or changed size, dropping records that disappeared; the server calls it
every ``api_refresh_seconds``. Products ingested through the API are added at once.

Each (model, version) has its own immutable shelf (entries sorted by acquisition time, their
footprints in an STRtree); a change builds a new shelf and swaps it in, so searches never lock.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from earthsignature.storage import catalog, layout
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.errors import ObjectNotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexedProduct:
    """A committed product and its footprint as a shapely geometry."""

    entry: catalog.CatalogEntry
    footprint: BaseGeometry


@dataclass(frozen=True)
class _Shelf:
    """Products of one model version, oldest first, with their footprints' STRtree."""

    products: tuple[IndexedProduct, ...]
    times: tuple[dt.datetime, ...] = field(init=False)
    tree: shapely.STRtree = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", tuple(p.entry.datetime for p in self.products))
        object.__setattr__(self, "tree", shapely.STRtree([p.footprint for p in self.products]))

    def search(
        self,
        aoi: BaseGeometry | None,
        start: dt.datetime | None,
        end: dt.datetime | None,
    ) -> list[IndexedProduct]:
        lo = bisect.bisect_left(self.times, start) if start else 0
        hi = bisect.bisect_right(self.times, end) if end else len(self.times)
        if lo >= hi:
            return []
        if aoi is None:
            return list(self.products[lo:hi])
        hits = np.asarray(self.tree.query(aoi, predicate="intersects"))
        hits = np.sort(hits[(hits >= lo) & (hits < hi)])
        return [self.products[i] for i in hits]


def _order_key(entry: catalog.CatalogEntry) -> tuple[dt.datetime, str]:
    return (entry.datetime, entry.product_id)


class ProductIndex:
    """Committed products of every model version, searchable by area and time."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        self._by_key: dict[str, IndexedProduct] = {}
        self._shelves: dict[tuple[str, int], _Shelf] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def refresh(self) -> int:
        """Pick up records committed, changed or removed since the last call; returns changes."""
        listed = {
            info.key: info.size
            for info in self.store.list(layout.catalog_prefix())
            if info.key.endswith(".json")
        }
        with self._lock:
            changed = [k for k, size in listed.items() if self._sizes.get(k) != size]
            removed = [k for k in self._sizes if k not in listed]
        loaded: list[tuple[str, int, IndexedProduct]] = []
        for key in changed:
            try:
                loaded.append((key, listed[key], _indexed(catalog.read_entry(self.store, key))))
            except ObjectNotFound:
                removed.append(key)
            except catalog.CatalogError as exc:
                log.warning("skipping malformed catalog record: %s", exc)
        with self._lock:
            touched: set[tuple[str, int]] = set()
            for key in removed:
                self._sizes.pop(key, None)
                old = self._by_key.pop(key, None)
                if old:
                    touched.add((old.entry.model, old.entry.version))
            for key, size, product in loaded:
                self._sizes[key] = size
                self._by_key[key] = product
                touched.add((product.entry.model, product.entry.version))
            self._rebuild(touched)
        if loaded or removed:
            log.info("index: %d new or changed, %d removed products", len(loaded), len(removed))
        return len(loaded) + len(removed)

    def add(self, entry: catalog.CatalogEntry) -> None:
        """Index a product just committed by this process (visible before the next refresh)."""
        product = _indexed(entry)
        with self._lock:
            self._by_key[entry.key] = product
            self._sizes.pop(entry.key, None)  # the next refresh re-reads it and records its size
            self._rebuild({(entry.model, entry.version)})

    def _rebuild(self, pairs: Iterable[tuple[str, int]]) -> None:
        for model, version in pairs:
            products = sorted(
                (
                    p
                    for p in self._by_key.values()
                    if p.entry.model == model and p.entry.version == version
                ),
                key=lambda p: _order_key(p.entry),
            )
            if products:
                self._shelves[(model, version)] = _Shelf(tuple(products))
            else:
                self._shelves.pop((model, version), None)

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
        found = [p for shelf in shelves for p in shelf.search(aoi, start, end)]
        if product_ids:
            found = [p for p in found if p.entry.product_id in product_ids]
        if categories:
            found = [p for p in found if categories.intersection(p.entry.categories)]
        found.sort(key=lambda p: _order_key(p.entry), reverse=True)
        return found


def _indexed(entry: catalog.CatalogEntry) -> IndexedProduct:
    footprint = shape(entry.geometry)
    if not footprint.is_valid:
        footprint = shapely.make_valid(footprint)
    return IndexedProduct(entry=entry, footprint=footprint)
