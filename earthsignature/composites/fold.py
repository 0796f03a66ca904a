"""Fold one committed product into its tile-period composite, window by window.

The state of a composite is, per pixel, how many clear and confident observations gave each
class: a multi-band uint8 GeoTIFF (band k counts ``codes[k]``, saturating at 255) on the
tile's grid, ``state-<generation>.tif``, and ``state.json`` naming it, the codes, the grid and
the product ids folded in. Folding a product reads the previous state and the product one
window at a time (never every class of a whole tile at once), adds the product's clear pixels
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
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

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


def fold_rasters(
    store: ObjectStore,
    prefix: str,
    entry: CatalogEntry,
    state: State | None,
    folder: Path,
    *,
    min_confidence: int = MIN_CONFIDENCE,
) -> tuple[State, FoldOutputs]:
    """Add ``entry``'s clear pixels to ``state`` (None: a first product); write the new state
    raster and the composite rasters under ``folder``. Stores nothing."""
    previous = None
    if state is not None:
        previous = folder / "previous.tif"
        store.download(prefix + state.raster_key, previous)
    with ExitStack() as stack:
        stack.enter_context(store.gdal_env())
        seg_src = stack.enter_context(rasterio.open(store.gdal_path(entry.assets["segmentation"])))
        grid = state.grid if state is not None else grid_of(seg_src)
        seg = on_grid(stack, seg_src, grid)
        cloud = on_grid(
            stack,
            stack.enter_context(rasterio.open(store.gdal_path(entry.assets["cloud_mask"]))),
            grid,
        )
        conf = None
        if "confidence" in entry.assets:
            conf = on_grid(
                stack,
                stack.enter_context(rasterio.open(store.gdal_path(entry.assets["confidence"]))),
                grid,
            )
        old_codes = state.codes if state is not None else []
        codes = sorted(set(old_codes) | set(entry.categories))
        old_index = [codes.index(c) for c in old_codes]
        old = stack.enter_context(rasterio.open(previous)) if previous is not None else None
        writer = CompositeWriter(stack, folder, grid)
        new_state = stack.enter_context(
            rasterio.open(
                writer.out.state, "w", count=len(codes), dtype="uint8", **profile_of(grid)
            )
        )
        for window in windows(grid["width"], grid["height"]):
            counts = np.zeros((len(codes), window.height, window.width), dtype=np.uint8)
            if old is not None:
                counts[old_index] = old.read(window=window)
            labels = seg.read(1, window=window)
            clear = (labels != corine.NODATA) & (cloud.read(1, window=window) == 0)
            if conf is not None:
                confidence = conf.read(1, window=window)
                clear &= (confidence >= min_confidence) & (confidence != CONFIDENCE_NODATA)
            add_observations(counts, codes, labels, clear)
            new_state.write(counts, window=window)
            writer.write(counts, codes, window)
        new_state.update_tags(codes=",".join(str(c) for c in codes))
        out = writer.finish()
    folded = State(
        codes=codes,
        products=sorted({*(state.products if state else []), entry.product_id}),
        generation=(state.generation + 1) if state else 1,
        grid=grid,
        dates=sorted({*(state.dates if state else []), entry.date.isoformat()}),
    )
    return folded, out


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
    delete the old generation. Returns the stored keys by asset name and the footprint."""
    keys, footprint = store_composite(store, prefix, out, folder)
    store.put_file(prefix + new.raster_key, out.state)
    store.put_bytes(state_key(prefix), json.dumps(asdict(new), sort_keys=True).encode())
    if old is not None:
        store.delete(prefix + old.raster_key)
    return keys, footprint
