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


def _windows(width: int, height: int) -> Iterator[Window]:
    for row in range(0, height, WINDOW):
        for col in range(0, width, WINDOW):
            yield Window(col, row, min(WINDOW, width - col), min(WINDOW, height - row))


def _on_grid(stack: ExitStack, ds: DatasetReader, grid: dict[str, Any]) -> DatasetReader:
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
        seg = _on_grid(stack, seg_src, grid)
        cloud = _on_grid(
            stack,
            stack.enter_context(rasterio.open(store.gdal_path(entry.assets["cloud_mask"]))),
            grid,
        )
        conf = None
        if "confidence" in entry.assets:
            conf = _on_grid(
                stack,
                stack.enter_context(rasterio.open(store.gdal_path(entry.assets["confidence"]))),
                grid,
            )
        old_codes = state.codes if state is not None else []
        codes = sorted(set(old_codes) | set(entry.categories))
        old_index = [codes.index(c) for c in old_codes]
        old = stack.enter_context(rasterio.open(previous)) if previous is not None else None
        profile = {
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
        out = FoldOutputs(
            state=folder / "state.tif",
            composite=folder / "composite.tif",
            confidence=folder / "confidence.tif",
            observations=folder / "observations.tif",
            class_areas={},
        )
        pixels = np.zeros(65536, dtype=np.int64)
        new_state = stack.enter_context(
            rasterio.open(out.state, "w", count=len(codes), dtype="uint8", **profile)
        )
        code_ds = stack.enter_context(
            rasterio.open(out.composite, "w", count=1, dtype="uint16", nodata=0, **profile)
        )
        conf_ds = stack.enter_context(
            rasterio.open(
                out.confidence, "w", count=1, dtype="uint8", nodata=CONFIDENCE_NODATA, **profile
            )
        )
        obs_ds = stack.enter_context(
            rasterio.open(out.observations, "w", count=1, dtype="uint8", **profile)
        )
        for window in _windows(grid["width"], grid["height"]):
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
            result = compose(counts, codes)
            code_ds.write(result.code, 1, window=window)
            pixels += np.bincount(result.code.ravel(), minlength=65536)
            conf_ds.write(result.confidence, 1, window=window)
            obs_ds.write(result.observations, 1, window=window)
        new_state.update_tags(codes=",".join(str(c) for c in codes))
        pixel_m2 = abs(profile["transform"].determinant)
        for code in np.flatnonzero(pixels[1:]) + 1:
            out.class_areas[int(code)] = float(pixels[code]) * pixel_m2
    folded = State(
        codes=codes,
        products=sorted({*(state.products if state else []), entry.product_id}),
        generation=(state.generation + 1) if state else 1,
        grid=grid,
        dates=sorted({*(state.dates if state else []), entry.date.isoformat()}),
    )
    return folded, out


def commit_fold(
    store: ObjectStore, prefix: str, old: State | None, new: State, out: FoldOutputs, folder: Path
) -> tuple[dict[str, str], dict[str, Any]]:
    """Store the composite COGs, the new state raster, then switch ``state.json`` to it and
    delete the old generation. Returns the stored keys by asset name and the footprint."""
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
    store.put_file(prefix + new.raster_key, out.state)
    store.put_bytes(state_key(prefix), json.dumps(asdict(new), sort_keys=True).encode())
    if old is not None:
        store.delete(prefix + old.raster_key)
    return keys, footprint
