"""Stage 4, split: fetched bands -> normalised, overlapping chips in shards.

Reads the model's bands from ``raw/`` window by window (20 m bands upsampled bilinearly onto
the finest band's grid, SCL nearest: :mod:`upsample` for Sentinel-2's exact 2x, a WarpedVRT
for any other grid), converts DN to reflectance with the item's scale and offset, normalises
as the model's metadata says, cuts chips (see :mod:`chips`) and writes shards of at most
``shard_megabytes`` of model input under ``work/``. Memory is one group of chips plus two
shards (one being written by a background thread), whatever the tile size: 0.75-0.9 GiB
peak on a full tile with the default 256 MiB shards (BENCHMARKS.md, issue 19 item 4).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from earthsignature.functions import shards
from earthsignature.functions.chips import ChipGrid
from earthsignature.functions.cloudmask import valid_mask
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductGrid, ProductMessage
from earthsignature.functions.upsample import Upsampled2x, is_half_resolution
from earthsignature.memory import release_free_memory
from earthsignature.models.repository import load_spec
from earthsignature.models.spec import ModelSpec
from earthsignature.runtime import Runtime

log = logging.getLogger(__name__)

#: GDAL block cache of split (MiB): one chip row of blocks per band is all it reuses, and
#: GDAL's default (5 % of RAM) would grow the worker by gigabytes on a full tile.
GDAL_CACHE_MB = 128
#: Threads reading bands (GDAL reads and numpy release the GIL) and encoding shards.
READ_THREADS = 2


@dataclass(frozen=True)
class Grid:
    """The product's 10 m grid (the finest band's)."""

    crs: Any
    transform: Any
    width: int
    height: int

    def to_json(self) -> dict[str, Any]:
        return {
            "crs": self.crs.to_string(),
            "transform": list(self.transform)[:6],
            "width": self.width,
            "height": self.height,
        }


def shard_capacity(spec: ModelSpec, megabytes: int) -> int:
    """Chips per shard so that one shard's float32 model input fits the budget."""
    per_chip = len(spec.bands) * spec.chip_size * spec.chip_size * 4
    return max(1, (megabytes * 1024 * 1024) // per_chip)


class BandReader:
    """The model's bands (and SCL) open on one grid, read window by window: the finest band's,
    or ``factor`` times coarser (bands averaged; the learned cloud mask reads 30 m)."""

    def __init__(
        self, msg: ProductMessage, rt: Runtime, spec: ModelSpec, *, factor: int = 1
    ) -> None:
        missing = [b for b in spec.bands if b not in msg.bands]
        if missing:
            raise BadInput("bands missing for the model", missing=missing, model=spec.name)
        self.spec = spec
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(rt.store.gdal_env())
        self._stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
        self._pool = self._stack.enter_context(ThreadPoolExecutor(READ_THREADS))
        self.sources = {b: self._open(rt, msg.bands[b], b) for b in spec.bands}
        if "SCL" in msg.bands:
            self.sources["SCL"] = self._open(rt, msg.bands["SCL"], "SCL")
        finest = min(spec.bands, key=lambda b: abs(self.sources[b].res[0]))
        ref = self.sources[finest]
        self.factor = factor
        self.grid = Grid(
            ref.crs,
            ref.transform if factor == 1 else ref.transform * rasterio.Affine.scale(factor),
            -(-ref.width // factor),
            -(-ref.height // factor),
        )
        self.readers = {b: self._on_grid(b, ds) for b, ds in self.sources.items()}
        ref = msg.product_ref()  # as fetch read the bands: the catalogue's scale and offset
        scale, offset = zip(*(ref.scale_offset(b) for b in spec.bands), strict=True)
        self.scale = np.array(scale, dtype=np.float32)
        self.offset = np.array(offset, dtype=np.float32)

    def _open(self, rt: Runtime, key: str, band: str) -> Any:
        try:
            return self._stack.enter_context(rasterio.open(rt.store.gdal_path(key)))
        except RasterioIOError as exc:
            reason = "band unreadable" if rt.store.exists(key) else "band missing from store"
            raise BadInput(reason, band=band, key=key, error=str(exc)) from exc

    def _on_grid(self, band: str, ds: Any) -> Any:
        g = self.grid
        if ds.crs != g.crs:
            raise BadInput("bands are on different CRSs", band=band, crs=str(ds.crs))
        if ds.transform == g.transform and (ds.width, ds.height) == (g.width, g.height):
            return ds
        integer = np.issubdtype(np.dtype(ds.dtypes[0]), np.integer)
        if self.factor == 1 and integer and is_half_resolution(ds, g.transform, g.width, g.height):
            return Upsampled2x(ds, nearest=band == "SCL", width=g.width, height=g.height)
        resampling = Resampling.nearest if band == "SCL" else Resampling.bilinear
        if band != "SCL" and self.factor > 1:
            resampling = Resampling.average
        return self._stack.enter_context(
            WarpedVRT(
                ds,
                crs=g.crs,
                transform=g.transform,
                width=g.width,
                height=g.height,
                resampling=resampling,
                src_nodata=ds.nodata if ds.nodata is not None else 0,
                nodata=0,
            )
        )

    def read(self, y0: int, x0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Normalised input ``[bands, h, w]`` (0 outside the image) and the valid mask.

        Bands are read straight into the padded window (no padded copy afterwards)."""
        g = self.grid
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + height, g.height), min(x0 + width, g.width)
        window = Window(xs, ys, xe - xs, ye - ys)
        inside = (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))
        out = np.zeros((len(self.spec.bands), height, width), dtype=np.float32)

        def band(i: int) -> np.ndarray:
            """Band i into out[i] as normalised reflectance; returns where it has data."""
            b = self.spec.bands[i]
            dn = self.readers[b].read(1, window=window)
            valid = dn != 0
            nodata = self.sources[b].nodata
            if nodata not in (None, 0):
                valid &= dn != nodata
            target = out[i][inside]
            target[...] = dn  # a plain cast: a mixed-type ufunc is 5x slower
            target *= self.scale[i]
            target += self.offset[i]
            self.spec.normalise_band(i, target)
            return valid

        def scl() -> np.ndarray:
            return valid_mask(self.readers["SCL"].read(1, window=window))

        jobs = [self._pool.submit(band, i) for i in range(len(self.spec.bands))]
        if "SCL" in self.readers:
            jobs.append(self._pool.submit(scl))
        valid = np.zeros((height, width), dtype=bool)
        valid[inside] = jobs[0].result()
        for job in jobs[1:]:
            valid[inside] &= job.result()
        np.copyto(out, np.float32(0.0), where=~valid)
        return out, valid

    def close(self) -> None:
        self._stack.close()


def iter_chips(
    reader: BandReader, grid: ChipGrid, group: int
) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[int, int]]]:
    """Row-major chips as (float32 input, valid, origin): views into one read of at most
    ``group`` chips side by side, valid until the next read."""
    c, step = grid.chip_size, grid.step
    for row in range(grid.n_rows):
        for first in range(0, grid.n_cols, group):
            cols = range(first, min(first + group, grid.n_cols))
            y0, x0 = grid.origin(row, first)
            data, valid = reader.read(y0, x0, c, (len(cols) - 1) * step + c)
            for col in cols:
                o = (col - first) * step
                yield data[:, :, o : o + c], valid[:, o : o + c], grid.origin(row, col)


def handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Write the product's shards; return one message per shard (``shard = i``).

    Shards are stored by a background thread while the next chips are read, at most one
    shard behind.
    """
    release_free_memory()
    spec = load_spec(rt, msg.model, msg.version)
    capacity = shard_capacity(spec, rt.settings.shard_megabytes)
    reader = BandReader(msg, rt, spec)
    writer = ThreadPoolExecutor(1)
    pending: Future[None] | None = None
    try:
        grid = ChipGrid.for_spec(spec, reader.grid.height, reader.grid.width)
        n_shards = 0
        shape = (len(spec.bands), spec.chip_size, spec.chip_size)
        shard: dict[str, np.ndarray] = {}  # chips, valid, origins of the shard being filled
        filled = 0

        def store(index: int, arrays: dict[str, np.ndarray]) -> None:
            with rt.store.staged_file(shards.shard_key(msg, index), suffix=".npz") as path:
                shards.write(path, arrays)

        def flush() -> None:
            nonlocal n_shards, pending, shard, filled
            arrays = {name: a[:filled] for name, a in shard.items()}
            if pending is not None:
                pending.result()
            pending = writer.submit(store, n_shards, arrays)
            n_shards += 1
            shard, filled = {}, 0

        for chip, valid, origin in iter_chips(reader, grid, min(capacity, 64)):
            if not shard:
                shard = {
                    "chips": np.empty((capacity, *shape), dtype=np.float16),
                    "valid": np.empty((capacity, *shape[1:]), dtype=bool),
                    "origins": np.empty((capacity, 2), dtype=np.int32),
                }
            shard["chips"][filled] = chip  # float32 -> float16 on the copy
            shard["valid"][filled] = valid
            shard["origins"][filled] = origin
            filled += 1
            if filled == capacity:
                flush()
        if filled:
            flush()
        if pending is not None:
            pending.result()
        grid_json = reader.grid.to_json()
    finally:
        writer.shutdown(wait=True)
        reader.close()
        release_free_memory()
    log.info("%s: %d chips in %d shards", msg.product_id, len(grid), n_shards)
    product_grid = ProductGrid.model_validate(grid_json)
    done = msg.model_copy(update={"n_shards": n_shards, "grid": product_grid})
    return [done.model_copy(update={"shard": i}) for i in range(n_shards)]
