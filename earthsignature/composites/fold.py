"""Fold one committed product into its tile-period composite, window by window.

The state of a composite is, per pixel, how many clear and confident observations gave each
class: a multi-band uint8 GeoTIFF (band k counts ``codes[k]``, saturating at 255) on the
tile's grid, ``state-<generation>.tif``, and ``state.json`` naming it, the codes, the grid,
the product ids folded in and their footprints' union. Folding a product reads the previous
state and the product one window at a time (never every class of a whole tile at once; a
product folded into its month and season is read once for both), adds the product's clear pixels
(not cloud, not no data, confidence at least :data:`MIN_CONFIDENCE` % when the model has a
confidence output), and writes the new state and the composite (rules in
:mod:`earthsignature.composites.rules`) beside it.

Crash safety: the new state goes under a new generation key; ``state.json`` (one atomic put)
then switches to it, and only after that is the old generation deleted. A retry after a
crash before the switch redoes the fold from the old state; after it, finds the product in
``products`` and does nothing. So a product is never counted twice. Products of the tile on
another grid are read through a nearest-neighbour WarpedVRT onto the state's grid.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry import MultiPolygon, Polygon, shape

from earthsignature import corine
from earthsignature.composites.rules import CONFIDENCE_NODATA, add_observations, compose
from earthsignature.functions.cog import to_cog
from earthsignature.functions.publish import write_cog, write_confidence_cog
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.catalog import CatalogEntry
from earthsignature.storage.errors import ObjectNotFound

log = logging.getLogger(__name__)

#: Pixels whose confidence is below this (percent) are left out of composites.
MIN_CONFIDENCE = 50
#: Side of the square windows a fold reads and writes.
WINDOW = 1024


@dataclass
class State:
    """``state.json``: what the current state raster holds."""

    codes: list[int]
    products: list[str]
    generation: int
    grid: dict[str, Any]
    """``crs``, ``transform`` (six affine coefficients), ``width``, ``height``."""
    dates: list[str] = field(default_factory=list)
    footprint: dict[str, Any] | None = None
    """GeoJSON (EPSG:4326): the union of the folded products' footprints (None in states
    written before it was kept: then traced from the composite, see :func:`item_footprint`)."""

    @property
    def raster_key(self) -> str:
        return f"state-{self.generation}.tif"


def state_key(prefix: str) -> str:
    return prefix + "state.json"


def read_state(store: ObjectStore, prefix: str) -> State | None:
    try:
        return State(**json.loads(store.get_bytes(state_key(prefix))))
    except ObjectNotFound:
        return None


def union_footprints(footprints: list[dict[str, Any]]) -> dict[str, Any]:
    """The union of GeoJSON footprints (EPSG:4326), as GeoJSON: a composite covers the area
    its products cover. (Traced from the composite instead, every cloud gap of every date
    would be a hole: a 2.7 MB footprint on a full tile.)"""
    union = shapely.union_all([shape(f) for f in footprints])
    return json.loads(shapely.to_geojson(shapely.make_valid(union)))  # type: ignore[no-any-return]


def item_footprint(state: State, traced: dict[str, Any]) -> dict[str, Any]:
    """The footprint of a composite's item: the state's (its products' union), or, for a state
    without one, ``traced`` (the composite's valid pixels) with its holes filled."""
    if state.footprint is not None:
        return state.footprint
    geom = shape(traced)
    parts = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    filled = shapely.union_all([Polygon(p.exterior) for p in parts if isinstance(p, Polygon)])
    return json.loads(shapely.to_geojson(filled))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class FoldOutputs:
    """Local files a fold wrote: the new state and the three composite rasters (plain TIFFs)."""

    state: Path
    composite: Path
    confidence: Path
    observations: Path
    class_areas: dict[int, float]
    """m² of each code in the composite."""


def windows(width: int, height: int) -> Iterator[Window]:
    for row in range(0, height, WINDOW):
        for col in range(0, width, WINDOW):
            yield Window(col, row, min(WINDOW, width - col), min(WINDOW, height - row))


def on_grid(stack: ExitStack, ds: DatasetReader, grid: dict[str, Any]) -> DatasetReader:
    """``ds`` itself when it is on ``grid``, else a nearest-neighbour view of it on ``grid``."""
    transform = Affine(*grid["transform"][:6])
    crs = CRS.from_user_input(grid["crs"])
    if (
        (ds.width, ds.height) == (grid["width"], grid["height"])
        and ds.crs == crs
        and ds.transform.almost_equals(transform)
    ):
        return ds
    return stack.enter_context(  # type: ignore[no-any-return]
        WarpedVRT(
            ds,
            crs=crs,
            transform=transform,
            width=grid["width"],
            height=grid["height"],
            resampling=Resampling.nearest,
        )
    )


def grid_of(ds: DatasetReader) -> dict[str, Any]:
    return {
        "crs": ds.crs.to_string(),
        "transform": list(ds.transform)[:6],
        "width": ds.width,
        "height": ds.height,
    }


def profile_of(grid: dict[str, Any]) -> dict[str, Any]:
    """Creation options of every raster on ``grid`` (tiled, DEFLATE)."""
    return {
        "driver": "GTiff",
        "width": grid["width"],
        "height": grid["height"],
        "crs": CRS.from_user_input(grid["crs"]),
        "transform": Affine(*grid["transform"][:6]),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "DEFLATE",
        "BIGTIFF": "IF_SAFER",
    }


class CompositeWriter:
    """Writes the composite rasters (code, confidence, observations) window by window from
    per-class counts, and tallies the area of each code."""

    def __init__(self, stack: ExitStack, folder: Path, grid: dict[str, Any]) -> None:
        profile = profile_of(grid)
        self.out = FoldOutputs(
            state=folder / "state.tif",
            composite=folder / "composite.tif",
            confidence=folder / "confidence.tif",
            observations=folder / "observations.tif",
            class_areas={},
        )
        self._pixel_m2 = abs(profile["transform"].determinant)
        self._pixels = np.zeros(65536, dtype=np.int64)
        self._code = stack.enter_context(
            rasterio.open(self.out.composite, "w", count=1, dtype="uint16", nodata=0, **profile)
        )
        self._conf = stack.enter_context(
            rasterio.open(
                self.out.confidence,
                "w",
                count=1,
                dtype="uint8",
                nodata=CONFIDENCE_NODATA,
                **profile,
            )
        )
        self._obs = stack.enter_context(
            rasterio.open(self.out.observations, "w", count=1, dtype="uint8", **profile)
        )

    def write(self, counts: np.ndarray, codes: list[int], window: Window) -> None:
        result = compose(counts, codes)
        self._code.write(result.code, 1, window=window)
        self._pixels += np.bincount(result.code.ravel(), minlength=65536)
        self._conf.write(result.confidence, 1, window=window)
        self._obs.write(result.observations, 1, window=window)

    def finish(self) -> FoldOutputs:
        for code in np.flatnonzero(self._pixels[1:]) + 1:
            self.out.class_areas[int(code)] = float(self._pixels[code]) * self._pixel_m2
        return self.out


@dataclass(frozen=True)
class Target:
    """One composite a product is folded into: its key prefix, its current state (None: the
    first product) and the local folder its new rasters are written to."""

    prefix: str
    state: State | None
    folder: Path


class _Fold:
    """The new state raster and the composite writer of one :class:`Target`, open for a
    window-by-window pass."""

    def __init__(self, stack: ExitStack, store: ObjectStore, target: Target, entry: CatalogEntry):
        state = target.state
        self.old_codes = state.codes if state is not None else []
        self.codes = sorted(set(self.old_codes) | set(entry.categories))
        self.old_index = [self.codes.index(c) for c in self.old_codes]
        self.old: DatasetReader | None = None
        if state is not None:
            previous = target.folder / "previous.tif"
            store.download(target.prefix + state.raster_key, previous)
            self.old = stack.enter_context(rasterio.open(previous))
        self.grid = state.grid if state is not None else None
        self.target = target
        self.writer: CompositeWriter | None = None
        self.state_out: Any = None

    def open(self, stack: ExitStack, grid: dict[str, Any]) -> None:
        self.grid = grid
        self.writer = CompositeWriter(stack, self.target.folder, grid)
        self.state_out = stack.enter_context(
            rasterio.open(
                self.writer.out.state, "w", count=len(self.codes), dtype="uint8", **profile_of(grid)
            )
        )

    def add(self, window: Window, labels: np.ndarray, clear: np.ndarray) -> None:
        assert self.writer is not None
        counts = np.zeros((len(self.codes), window.height, window.width), dtype=np.uint8)
        if self.old is not None:
            counts[self.old_index] = self.old.read(window=window)
        add_observations(counts, self.codes, labels, clear)
        self.state_out.write(counts, window=window)
        self.writer.write(counts, self.codes, window)

    def finish(self, entry: CatalogEntry) -> tuple[State, FoldOutputs]:
        assert self.writer is not None and self.grid is not None
        self.state_out.update_tags(codes=",".join(str(c) for c in self.codes))
        state = self.target.state
        prior = state.footprint if state is not None else entry.geometry
        footprint = union_footprints([entry.geometry, prior]) if entry.geometry and prior else None
        folded = State(
            codes=self.codes,
            products=sorted({*(state.products if state else []), entry.product_id}),
            generation=(state.generation + 1) if state else 1,
            grid=self.grid,
            dates=sorted({*(state.dates if state else []), entry.date.isoformat()}),
            footprint=footprint,
        )
        return folded, self.writer.finish()


def fold_rasters(
    store: ObjectStore,
    entry: CatalogEntry,
    targets: list[Target],
    *,
    min_confidence: int = MIN_CONFIDENCE,
) -> list[tuple[State, FoldOutputs]]:
    """Add ``entry``'s clear pixels to each target's state (a month and a season: the
    product is read once for both, window by window, when they share a grid); write each
    new state raster and composite rasters under its folder. Stores nothing. Returns the
    new state and outputs of each target, in order.

    Targets whose states hold the same products (a season's first month: both empty, or
    both the month's earlier products) have the same counts: they are folded once and the
    files copied."""
    first_of: dict[str, int] = {}
    same_as: dict[int, int] = {}
    for i, t in enumerate(targets):
        key = _content_key(t.state)
        if key in first_of:
            same_as[i] = first_of[key]
        else:
            first_of[key] = i
    with ExitStack() as stack:
        stack.enter_context(store.gdal_env())
        seg_src = stack.enter_context(rasterio.open(store.gdal_path(entry.assets["segmentation"])))
        cloud_src = stack.enter_context(rasterio.open(store.gdal_path(entry.assets["cloud_mask"])))
        conf_src = None
        if "confidence" in entry.assets:
            conf_src = stack.enter_context(
                rasterio.open(store.gdal_path(entry.assets["confidence"]))
            )
        folds = {i: _Fold(stack, store, targets[i], entry) for i in first_of.values()}
        by_grid: dict[str, list[int]] = {}
        for i, f in folds.items():
            grid = f.grid if f.grid is not None else grid_of(seg_src)
            f.open(stack, grid)
            by_grid.setdefault(json.dumps(grid, sort_keys=True), []).append(i)
        for members in by_grid.values():
            shared = folds[members[0]].grid
            assert shared is not None
            with ExitStack() as views:
                seg = on_grid(views, seg_src, shared)
                cloud = on_grid(views, cloud_src, shared)
                conf = None if conf_src is None else on_grid(views, conf_src, shared)
                for window in windows(shared["width"], shared["height"]):
                    labels = seg.read(1, window=window)
                    clear = (labels != corine.NODATA) & (cloud.read(1, window=window) == 0)
                    if conf is not None:
                        confidence = conf.read(1, window=window)
                        clear &= (confidence >= min_confidence) & (confidence != CONFIDENCE_NODATA)
                    for i in members:
                        folds[i].add(window, labels, clear)
        results = {i: f.finish(entry) for i, f in folds.items()}
    for i, j in same_as.items():
        results[i] = _copied(results[j], targets[i])
    return [results[i] for i in range(len(targets))]


def _content_key(state: State | None) -> str:
    """Equal for states with the same counts (same products folded on the same grid)."""
    if state is None:
        return ""
    return json.dumps([state.products, state.codes, state.grid], sort_keys=True)


def _copied(result: tuple[State, FoldOutputs], target: Target) -> tuple[State, FoldOutputs]:
    """Another target's fold result as ``target``'s: its files copied, its own generation."""
    state, out = result
    names = ("state", "composite", "confidence", "observations")
    paths = {name: target.folder / getattr(out, name).name for name in names}
    for name, path in paths.items():
        shutil.copyfile(getattr(out, name), path)
    generation = target.state.generation + 1 if target.state is not None else 1
    return replace(state, generation=generation), replace(out, **paths)


def store_composite(
    store: ObjectStore, prefix: str, out: FoldOutputs, folder: Path
) -> tuple[dict[str, str], dict[str, Any]]:
    """Store the three composite rasters as COGs; returns their keys by asset name and the
    footprint."""
    keys = {
        "segmentation": prefix + "composite.tif",
        "confidence": prefix + "confidence.tif",
        "observations": prefix + "observations.tif",
    }
    cogs = {name: folder / f"{name}.cog.tif" for name in keys}
    footprint = write_cog(out.composite, cogs["segmentation"])
    write_confidence_cog(out.confidence, cogs["confidence"])
    to_cog(out.observations, cogs["observations"], overview_resampling="nearest")
    for name, key in keys.items():
        store.put_file(key, cogs[name])
    return keys, footprint


def commit_fold(
    store: ObjectStore, prefix: str, old: State | None, new: State, out: FoldOutputs, folder: Path
) -> tuple[dict[str, str], dict[str, Any]]:
    """Store the composite COGs, the new state raster, then switch ``state.json`` to it and
    delete the old generation. Returns the stored keys by asset name and the item's
    footprint (:func:`item_footprint`; kept in ``new`` from now on)."""
    keys, traced = store_composite(store, prefix, out, folder)
    footprint = item_footprint(new, traced)
    new.footprint = footprint
    store.put_file(prefix + new.raster_key, out.state)
    store.put_bytes(state_key(prefix), json.dumps(asdict(new), sort_keys=True).encode())
    if old is not None:
        store.delete(prefix + old.raster_key)
    return keys, footprint
