"""The composite stage: after a product is committed, fold it into its tile's composites.

Runs after vectorize (see :mod:`earthsignature.queue.stages`), on the vectorize queue (no new
worker pool to deploy). It folds the product into the month and season composites of its
acquisition date (one read of the product for both; see
:mod:`~earthsignature.composites.periods` and :mod:`~earthsignature.composites.fold`) under
``composites/model=/version=/period=/tile=/``, re-sums the rolling 12 months holding that
month (:mod:`~earthsignature.composites.rolling`), and writes each composite's STAC item
(``item.json``, id ``COMPOSITE_<tile>_<period>``) like a product's, with polygons and vector
tiles for the rolling period.

Memory: the rasters are folded and summed window by window in the worker (a few hundred MB on
a full tile, most of it GDAL's block cache); the rolling period's polygons and vector tiles,
the one step that needs more (publish's strip polygonizer), run in a spawned child process
for a full tile, as publish's do. They are written on every commit rather than only when a
period closes: the rolling period is the map users read, and a daily commit per tile is the
bound on how often it changes.

One writer per tile and period: a fold reads the previous state and replaces it, so two
concurrent folds would lose one product. Any worker of the queue may run the stage, so the
fold holds a Redis lock named after (model, version, tile, period) on the job's own
connection (:func:`writer_lock`); a job that cannot get it within the stage timeout fails
and is retried. Called outside a job (tests, ``rebuild``), the caller is the only writer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pystac
import rasterio
import shapely
from shapely.geometry import shape

from earthsignature.composites import fold, rolling
from earthsignature.composites.fold import state_key
from earthsignature.composites.periods import (
    folded_periods,
    is_rolling,
    months_of,
    period_range,
    rolling_containing,
    rolling_id,
)
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.polygon_file import write_polygons
from earthsignature.functions.publish import (
    CHILD_PROCESS_PIXELS,
    COG_MEDIA_TYPE,
    FGB_MEDIA_TYPE,
    PMTILES_MEDIA_TYPE,
    POLYGON_WORKERS,
    child_pool,
    submit,
)
from earthsignature.functions.tiles import write_pmtiles
from earthsignature.runtime import Runtime
from earthsignature.storage import catalog, layout
from earthsignature.storage.catalog import CatalogEntry
from earthsignature.storage.errors import ObjectNotFound

log = logging.getLogger(__name__)

#: Seconds a fold waits for another writer of the same tile-period before failing (retried).
LOCK_WAIT_S = 600
#: Seconds after which a lock of a dead writer expires.
LOCK_TTL_S = 3600


def composite_id(tile: str, period: str) -> str:
    """The product id composites have in their STAC item and the API."""
    return f"COMPOSITE_{layout.tile_id(tile)}_{layout.period_id(period)}"


@dataclass(frozen=True)
class FoldReport:
    period: str
    prefix: str
    folded: bool
    """False when the product was already in the composite (nothing done)."""
    products: int
    seconds: float


def handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Fold the committed product of ``msg`` into each of its periods' composites."""
    entry = catalog.read_committed(rt.store, msg.model, msg.version, msg.date, msg.product_id)
    if entry is None:
        raise BadInput("product is not committed: nothing to composite", product_id=msg.product_id)
    update_composites(rt, entry)
    return []


def default_vectors(period: str) -> bool:
    """Whether a commit writes the polygons and vector tiles of ``period``'s composite: only
    the rolling 12 months (the land-use map; most of a fold's time goes to vectors). Month
    and season composites get theirs from ``earthsig composites rebuild --vectors``."""
    return is_rolling(period)


def update_composites(
    rt: Runtime, entry: CatalogEntry, *, vectors: bool | None = None
) -> list[FoldReport]:
    """Fold ``entry`` into its month and season composites, then re-sum the rolling 12
    months that hold its month (each under its own lock). See :func:`rolling_to_update`.

    ``vectors``: polygons and vector tiles for every period (True), none (False; stale ones
    are removed), or as :func:`default_vectors` says (None)."""
    tile = entry.properties.get(catalog.PROP_TILE)
    if not tile:
        raise BadInput("catalog record names no MGRS tile", product_id=entry.product_id)
    month, season = folded_periods(entry.date)
    with (
        writer_lock(entry.model, entry.version, tile, month),
        writer_lock(entry.model, entry.version, tile, season),
    ):  # always month then season: two writers never wait on each other crosswise
        reports = fold_into(rt, entry, tile, [month, season], vectors=vectors)
    for period in rolling_to_update(rt, entry.model, entry.version, tile, month):
        with writer_lock(entry.model, entry.version, tile, period):
            reports.append(
                roll(
                    rt,
                    entry.model,
                    entry.version,
                    tile,
                    period,
                    product_id=entry.product_id,
                    vectors=_vectors(vectors, period),
                )
            )
    return reports


def _vectors(vectors: bool | None, period: str) -> bool:
    return default_vectors(period) if vectors is None else vectors


def rolling_to_update(rt: Runtime, model: str, version: int, tile: str, month: str) -> list[str]:
    """The rolling periods a commit of ``month`` changes: the one ending with ``month``, and
    each of the 11 after it whose own last month has a composite (a rolling composite exists
    for every month with a committed product). A daily pipeline commits in date order, so
    this is usually one; reprocessing an old month updates up to twelve."""
    out = []
    for k, period in enumerate(rolling_containing(month)):
        last = months_of(period)[-1]
        if k == 0 or rt.store.exists(
            state_key(layout.composite_prefix(model, version, last, tile))
        ):
            out.append(period)
    return out


@contextlib.contextmanager
def writer_lock(model: str, version: int, tile: str, period: str) -> Iterator[None]:
    """Hold the tile-period's Redis lock when running in an RQ job (see the module doc)."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        yield
        return
    lock = job.connection.lock(
        f"earthsig:composite:{model}:{version}:{tile}:{period}",
        timeout=LOCK_TTL_S,
        blocking_timeout=LOCK_WAIT_S,
    )
    if not lock.acquire():
        raise TimeoutError(f"composite {tile} {period} is locked by another writer")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # expired meanwhile: the next writer holds it
            lock.release()


def fold_into(
    rt: Runtime,
    entry: CatalogEntry,
    tile: str,
    periods: list[str],
    *,
    vectors: bool | None = True,
) -> list[FoldReport]:
    """Fold one product into tile-period composites (its month and season: one read of the
    product for both) and republish them (idempotent: a composite that already holds the
    product is left as it is). ``vectors`` as in :func:`update_composites`."""
    start = time.perf_counter()
    store = rt.store
    reports: dict[str, FoldReport] = {}
    targets: dict[str, tuple[str, fold.State | None]] = {}
    for period in periods:
        prefix = layout.composite_prefix(entry.model, entry.version, period, tile)
        state = fold.read_state(store, prefix)
        if state is not None and entry.product_id in state.products:
            reports[period] = FoldReport(period, prefix, False, len(state.products), 0.0)
        else:
            targets[period] = (prefix, state)
    if targets:
        with TemporaryDirectory(prefix="earthsig-composite-") as tmp:
            folders = {period: Path(tmp) / str(i) for i, period in enumerate(targets)}
            for folder in folders.values():
                folder.mkdir()
            folded = fold.fold_rasters(
                store,
                entry,
                [fold.Target(prefix, state, folders[p]) for p, (prefix, state) in targets.items()],
            )
            for (period, (prefix, state)), (new, out) in zip(targets.items(), folded, strict=True):
                folder = folders[period]
                keys, footprint = fold.commit_fold(store, prefix, state, new, out, folder)
                _publish(
                    rt,
                    entry.model,
                    entry.version,
                    tile,
                    period,
                    new,
                    out,
                    folder,
                    keys,
                    footprint,
                    _vectors(vectors, period),
                )
                log.info(
                    "folded %s into %s (%d products)", entry.product_id, prefix, len(new.products)
                )
                reports[period] = FoldReport(
                    period, prefix, True, len(new.products), time.perf_counter() - start
                )
    return [reports[p] for p in periods]


def roll(
    rt: Runtime,
    model: str,
    version: int,
    tile: str,
    period: str,
    *,
    product_id: str | None = None,
    vectors: bool = True,
) -> FoldReport:
    """Re-sum the rolling ``period`` from its month states and republish it. With
    ``product_id``, nothing is done when the published item already holds that product
    (a retried commit); the item is written last, so a crash before it redoes the sum."""
    start = time.perf_counter()
    prefix = layout.composite_prefix(model, version, period, tile)
    if product_id is not None:
        with contextlib.suppress(ObjectNotFound):
            item = json.loads(rt.store.get_bytes(prefix + "item.json"))
            held = item["properties"].get("earthsig:products", [])
            if product_id in held:
                return FoldReport(period, prefix, False, len(held), 0.0)
    months = rolling.month_states(rt.store, model, version, tile, period)
    if not months:
        return FoldReport(period, prefix, False, 0, 0.0)
    with TemporaryDirectory(prefix="earthsig-composite-") as tmp:
        folder = Path(tmp)
        summed, out = rolling.sum_rasters(rt.store, months, folder)
        keys, traced = fold.store_composite(rt.store, prefix, out, folder)
        footprint = fold.item_footprint(summed, traced)
        _publish(rt, model, version, tile, period, summed, out, folder, keys, footprint, vectors)
    log.info("summed %d months into %s (%d products)", len(months), prefix, len(summed.products))
    return FoldReport(period, prefix, True, len(summed.products), time.perf_counter() - start)


def _publish(
    rt: Runtime,
    model: str,
    version: int,
    tile: str,
    period: str,
    state: fold.State,
    out: fold.FoldOutputs,
    folder: Path,
    keys: dict[str, str],
    footprint: dict[str, Any],
    vectors: bool,
) -> None:
    """The vectors (or their removal) and, last, the STAC item of a composite just stored."""
    prefix = layout.composite_prefix(model, version, period, tile)
    if vectors:
        keys = keys | publish_vectors(rt, model, version, tile, period, out.composite, folder)
    else:
        for name in ("polygons.fgb", "tiles.pmtiles"):
            rt.store.delete(prefix + name)
    item = composite_item(model, version, tile, period, state, keys, footprint, out.class_areas)
    rt.store.put_bytes(prefix + "item.json", _json(item))


def publish_vectors(
    rt: Runtime, model: str, version: int, tile: str, period: str, raster: Path, folder: Path
) -> dict[str, str]:
    """The composite's FlatGeobuf and PMTiles, by publish's own writers; in a child process
    for a large raster (:func:`write_vectors`)."""
    first, _ = period_range(period)
    as_product = ProductMessage(
        product_id=composite_id(tile, period),
        date=first.isoformat(),
        tile=tile,
        model=model,
        version=version,
        run="composite",
    )
    prefix = layout.composite_prefix(model, version, period, tile)
    fgb, pmtiles = folder / "polygons.fgb", folder / "tiles.pmtiles"
    keys = {"polygons": prefix + "polygons.fgb", "tiles": prefix + "tiles.pmtiles"}
    with rasterio.open(raster) as ds:
        child = ds.width * ds.height >= CHILD_PROCESS_PIXELS
    with child_pool(fresh=True, processes=1) if child else contextlib.nullcontext() as pool:
        written = submit(
            pool,
            write_vectors,
            raster,
            fgb,
            pmtiles,
            as_product,
            mmu_m2=rt.settings.min_mapping_unit_m2,
            tolerance_m=rt.settings.simplify_tolerance_m,
            workers=POLYGON_WORKERS if child else 1,
        ).result()
    if not written:  # nothing left after sieving: the composite has rasters only for now
        return {}
    rt.store.put_file(keys["polygons"], fgb)
    rt.store.put_file(keys["tiles"], pmtiles)
    return keys


def write_vectors(
    raster: Path,
    fgb: Path,
    pmtiles: Path,
    as_product: ProductMessage,
    *,
    mmu_m2: float,
    tolerance_m: float,
    workers: int = 1,
) -> bool:
    """Polygons and vector tiles of a composite raster (False: no polygon after sieving);
    strips in ``workers`` threads, as publish's.

    A full tile's polygonization is the largest allocation of the stage (1014 MiB on the
    learned model's full tile, in publish's strip polygonizer), so for a raster of at least
    ``CHILD_PROCESS_PIXELS`` it runs in a spawned child, as publish's does: the worker's own
    peak stays that of its windows, and the memory is the system's again when the child
    exits."""
    try:
        write_polygons(
            raster, fgb, as_product, mmu_m2=mmu_m2, tolerance_m=tolerance_m, workers=workers
        )
    except BadInput:
        return False
    write_pmtiles(fgb, pmtiles, name=as_product.product_id)
    return True


def composite_item(
    model: str,
    version: int,
    tile: str,
    period: str,
    state: fold.State,
    keys: dict[str, str],
    footprint: dict[str, Any],
    areas: dict[int, float],
) -> dict[str, Any]:
    """The composite's STAC item: a product-shaped record with the period as its range."""
    first, last = period_range(period)
    prefix = layout.composite_prefix(model, version, period, tile)
    item_key = prefix + "item.json"
    item = pystac.Item(
        id=composite_id(tile, period),
        geometry=footprint,
        bbox=list(shapely.bounds(shape(footprint))),
        datetime=dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC),  # API: date filters
        start_datetime=dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC),
        end_datetime=dt.datetime.combine(last, dt.time(23, 59, 59), tzinfo=dt.UTC),
        properties={
            catalog.PROP_MODEL: model,
            catalog.PROP_VERSION: version,
            catalog.PROP_TILE: tile,
            catalog.PROP_CATEGORIES: sorted(areas),
            catalog.PROP_CLASS_AREAS: {str(c): round(a, 2) for c, a in sorted(areas.items())},
            "earthsig:period": period,
            "earthsig:products": state.products,
            "earthsig:dates": state.dates,
            "earthsig:min_confidence": fold.MIN_CONFIDENCE,
        },
    )
    titles = {
        "segmentation": (COG_MEDIA_TYPE, "CORINE level-3 land use of the period (uint16)"),
        "confidence": (COG_MEDIA_TYPE, "Composite confidence, percent; 255 = no data"),
        "observations": (COG_MEDIA_TYPE, "Clear observations per pixel (uint8)"),
        "polygons": (FGB_MEDIA_TYPE, "Land-use polygons, EPSG:4326"),
        "tiles": (PMTILES_MEDIA_TYPE, "Vector tiles for maps"),
    }
    for name, key in keys.items():
        media_type, title = titles[name]
        item.add_asset(
            name,
            pystac.Asset(
                href=catalog.relative_href(item_key, key),
                media_type=media_type,
                roles=["visual"] if name == "tiles" else ["data"],
                title=title,
                extra_fields={catalog.ASSET_KEY: key},
            ),
        )
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def rebuild(
    rt: Runtime, model: str, version: int, tile: str, period: str, *, vectors: bool = True
) -> int:
    """Recompute one tile-period composite from scratch (after deleting it): a month or
    season from the catalog's products, a rolling period by summing its months' states
    (rebuild those first for a clean start; :func:`rebuild_all` does); returns the products
    it holds."""
    tile = layout.tile_id(tile)
    if is_rolling(period):
        with writer_lock(model, version, tile, period):
            rt.store.delete_prefix(layout.composite_prefix(model, version, period, tile))
            return roll(rt, model, version, tile, period, vectors=vectors).products
    first, last = period_range(period)
    entries = sorted(
        (
            e
            for e in catalog.iter_entries(rt.store, model, version, first, last)
            if e.properties.get(catalog.PROP_TILE) == tile
        ),
        key=lambda e: (e.datetime, e.product_id),
    )
    with writer_lock(model, version, tile, period):
        rt.store.delete_prefix(layout.composite_prefix(model, version, period, tile))
        for i, entry in enumerate(entries):  # vectors once, for the last state
            fold_into(rt, entry, tile, [period], vectors=vectors and i == len(entries) - 1)
    return len(entries)


@dataclass(frozen=True)
class Rebuilt:
    tile: str
    period: str
    products: int


def rebuild_all(
    rt: Runtime,
    model: str,
    version: int,
    *,
    tile: str | None = None,
    period: str | None = None,
    vectors: bool | None = None,
) -> list[Rebuilt]:
    """Recompute a model version's composites from its committed products, from a clean
    state: every tile (or ``tile``) and every period its products fall in (or ``period``;
    a month also re-sums the rolling periods holding it, a rolling period first rebuilds
    its months). Months and seasons first, then the rolling periods. ``vectors`` as in
    :func:`update_composites`."""
    tile = layout.tile_id(tile) if tile else None
    first, last = period_range(period) if period else (None, None)
    months: dict[str, set[str]] = {}
    seasons: dict[str, set[str]] = {}
    for entry in catalog.iter_entries(rt.store, model, version, first, last):
        entry_tile = entry.properties.get(catalog.PROP_TILE)
        if not entry_tile or (tile and entry_tile != tile):
            continue
        month, season = folded_periods(entry.date)
        months.setdefault(entry_tile, set()).add(month)
        seasons.setdefault(entry_tile, set()).add(season)
    done = []
    for t in sorted(months):
        if period is None:
            folded = sorted(months[t] | seasons[t])
            rolled = [rolling_id(m) for m in sorted(months[t])]
        elif is_rolling(period):
            folded, rolled = sorted(months[t]), [period]
        else:
            folded = [period]
            rolled = rolling_to_update(rt, model, version, t, period) if period in months[t] else []
        for p in [*folded, *rolled]:
            n = rebuild(rt, model, version, t, p, vectors=_vectors(vectors, p))
            done.append(Rebuilt(t, p, n))
    return done


def _json(item: dict[str, Any]) -> bytes:
    return json.dumps(item, sort_keys=True, separators=(",", ":")).encode()


def fold_committed(
    rt: Runtime,
    model: str,
    version: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    vectors: bool | None = None,
) -> list[FoldReport]:
    """Fold every committed product of ``start..end`` not yet in its composites, in date
    order: the catch-up after a run whose local workers stopped before their queued
    composite jobs ran. Which products the composites hold is read once per tile-period
    (:class:`HeldProducts`), not once per product."""
    entries = sorted(
        (
            e
            for e in catalog.iter_entries(rt.store, model, version, start, end)
            if e.properties.get(catalog.PROP_TILE)
        ),
        key=lambda e: (e.datetime, e.product_id),
    )
    held = HeldProducts(rt, model, version)
    reports: list[FoldReport] = []
    for entry in entries:
        tile = entry.properties[catalog.PROP_TILE]
        periods = held.periods_holding(entry, tile)
        if periods is not None:
            reports.extend(FoldReport(p, "", False, n, 0.0) for p, n in periods)
            continue
        reports.extend(update_composites(rt, entry, vectors=vectors))
        held.forget(tile)
    return reports


class HeldProducts:
    """The products each tile-period composite holds (a state's ``products``, a rolling
    item's ``earthsig:products``), read once each and kept until :meth:`forget`."""

    def __init__(self, rt: Runtime, model: str, version: int) -> None:
        self._rt, self._model, self._version = rt, model, version
        self._held: dict[tuple[str, str], list[str] | None] = {}

    def products(self, tile: str, period: str) -> list[str] | None:
        """None: no composite (no state, or no item for a rolling period)."""
        key = (tile, period)
        if key not in self._held:
            prefix = layout.composite_prefix(self._model, self._version, period, tile)
            found: list[str] | None = None
            if is_rolling(period):
                with contextlib.suppress(ObjectNotFound):
                    item = json.loads(self._rt.store.get_bytes(prefix + "item.json"))
                    found = list(item["properties"].get("earthsig:products", []))
            else:
                state = fold.read_state(self._rt.store, prefix)
                found = None if state is None else state.products
            self._held[key] = found
        return self._held[key]

    def periods_holding(self, entry: CatalogEntry, tile: str) -> list[tuple[str, int]] | None:
        """``(period, products)`` of every composite a commit of ``entry`` updates (as
        :func:`update_composites` would: month, season, :func:`rolling_to_update`) when all
        of them already hold it; None when one does not."""
        month, season = folded_periods(entry.date)
        periods = [month, season]
        for k, period in enumerate(rolling_containing(month)):
            if k == 0 or self.products(tile, months_of(period)[-1]) is not None:
                periods.append(period)
        out = []
        for period in periods:
            products = self.products(tile, period)
            if products is None or entry.product_id not in products:
                return None
            out.append((period, len(products)))
        return out

    def forget(self, tile: str) -> None:
        """Drop what is known of ``tile`` (after folding a product into its composites)."""
        self._held = {k: v for k, v in self._held.items() if k[0] != tile}
