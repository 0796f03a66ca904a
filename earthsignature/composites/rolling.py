"""Rolling 12-month composites, summed from the month states (no product is read again).

``R12-2024-05`` counts, per pixel and class, the observations of its twelve months: the sum
of the twelve ``state-<generation>.tif`` of the month composites that exist (months without
a committed product add nothing), saturating at 255 like a fold. The rolling period keeps no
state of its own, so it can never drift from its months: rebuilding it is summing again.
The grid is that of the latest month (other months' states are read on it, nearest
neighbour, as products of another grid are).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np
import rasterio

from earthsignature.composites import fold
from earthsignature.composites.periods import months_of
from earthsignature.storage import layout
from earthsignature.storage.base import ObjectStore


def month_states(
    store: ObjectStore, model: str, version: int, tile: str, period: str
) -> list[tuple[str, fold.State]]:
    """``(prefix, state)`` of each month of the rolling ``period`` that has a composite."""
    out = []
    for month in months_of(period):
        prefix = layout.composite_prefix(model, version, month, tile)
        state = fold.read_state(store, prefix)
        if state is not None:
            out.append((prefix, state))
    return out


def sum_rasters(
    store: ObjectStore, months: list[tuple[str, fold.State]], folder: Path
) -> tuple[fold.State, fold.FoldOutputs]:
    """Write the composite rasters of the summed ``months`` under ``folder``; the returned
    state (generation 0, not stored) names the products and dates it holds."""
    if not months:
        raise ValueError("a rolling composite needs at least one month state")
    grid = months[-1][1].grid
    codes = sorted({c for _, state in months for c in state.codes})
    with ExitStack() as stack:
        stack.enter_context(store.gdal_env())
        sources = []
        for prefix, state in months:
            ds = stack.enter_context(rasterio.open(store.gdal_path(prefix + state.raster_key)))
            sources.append((fold.on_grid(stack, ds, grid), [codes.index(c) for c in state.codes]))
        writer = fold.CompositeWriter(stack, folder, grid)
        for window in fold.windows(grid["width"], grid["height"]):
            total = np.zeros((len(codes), window.height, window.width), dtype=np.uint16)
            for ds, index in sources:
                total[index] += ds.read(window=window)
            writer.write(np.minimum(total, 255).astype(np.uint8), codes, window)
        out = writer.finish()
    footprints = [state.footprint for _, state in months if state.footprint is not None]
    summed = fold.State(
        codes=codes,
        products=sorted({p for _, state in months for p in state.products}),
        generation=0,
        grid=grid,
        dates=sorted({d for _, state in months for d in state.dates}),
        footprint=fold.union_footprints(footprints) if len(footprints) == len(months) else None,
    )
    return summed, out
