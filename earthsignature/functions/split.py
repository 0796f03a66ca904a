"""Stage 4, split: fetched bands -> normalised, overlapping chips in compressed shards.

Reads the model's bands from ``raw/`` window by window (20 m bands through a bilinear
WarpedVRT on the finest band's grid, SCL nearest), converts DN to reflectance with the item's
scale and offset, normalises as the model's metadata says, cuts chips (see :mod:`chips`) and
writes shards of at most ``shard_megabytes`` of model input under ``work/``. Memory is one
group of chips plus one shard, whatever the tile size.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from earthsignature.functions import shards
from earthsignature.functions.chips import ChipGrid, read_padded
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.models.repository import load_spec
from earthsignature.models.spec import ModelSpec
from earthsignature.runtime import Runtime

log = logging.getLogger(__name__)

#: Scene classification values that mean "no data" (0) and "saturated or defective" (1).
SCL_INVALID = (0, 1)
DEFAULT_SCALE = 1e-4


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
    """The model's bands (and SCL) open on one grid, read window by window."""

    def __init__(self, msg: ProductMessage, rt: Runtime, spec: ModelSpec) -> None:
        missing = [b for b in spec.bands if b not in msg.bands]
        if missing:
            raise BadInput("bands missing for the model", missing=missing, model=spec.name)
        self.spec = spec
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(rt.store.gdal_env())
        self.sources = {b: self._open(rt, msg.bands[b], b) for b in spec.bands}
        if "SCL" in msg.bands:
            self.sources["SCL"] = self._open(rt, msg.bands["SCL"], "SCL")
        finest = min(spec.bands, key=lambda b: abs(self.sources[b].res[0]))
        ref = self.sources[finest]
        self.grid = Grid(ref.crs, ref.transform, ref.width, ref.height)
        self.readers = {b: self._on_grid(b, ds) for b, ds in self.sources.items()}
        assets = msg.item.get("assets", {}) if isinstance(msg.item, dict) else {}
        self.scale = np.array(
            [float((assets.get(b) or {}).get("scale") or DEFAULT_SCALE) for b in spec.bands],
            dtype=np.float32,
        )
        self.offset = np.array(
            [float((assets.get(b) or {}).get("offset") or 0.0) for b in spec.bands],
            dtype=np.float32,
        )

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
        resampling = Resampling.nearest if band == "SCL" else Resampling.bilinear
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
        """Normalised input ``[bands, h, w]`` (0 outside the image) and the valid mask."""
        g = self.grid
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + height, g.height), min(x0 + width, g.width)
        window = Window(xs, ys, xe - xs, ye - ys)
        dn = np.stack([self.readers[b].read(1, window=window) for b in self.spec.bands])
        valid = (dn != 0).all(axis=0)
        for b, ds in self.sources.items():
            if b != "SCL" and ds.nodata not in (None, 0):
                valid &= self.readers[b].read(1, window=window) != ds.nodata
        if "SCL" in self.readers:
            scl = self.readers["SCL"].read(1, window=window)
            valid &= ~np.isin(scl, SCL_INVALID)
        reflectance = dn.astype(np.float32) * self.scale[:, None, None] + self.offset[:, None, None]
        normalised = self.spec.normalise(reflectance)
        normalised[:, ~valid] = 0.0
        return (
            read_padded(normalised, y0 - ys, x0 - xs, height, width),
            read_padded(valid, y0 - ys, x0 - xs, height, width, fill=False),
        )

    def close(self) -> None:
        self._stack.close()


def iter_chip_groups(
    reader: BandReader, grid: ChipGrid, group: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Row-major groups of at most ``group`` chips: (chips, valid, origins), one read each."""
    c, step = grid.chip_size, grid.step
    for row in range(grid.n_rows):
        for first in range(0, grid.n_cols, group):
            cols = range(first, min(first + group, grid.n_cols))
            y0, x0 = grid.origin(row, first)
            width = (len(cols) - 1) * step + c
            data, valid = reader.read(y0, x0, c, width)
            offsets = [(col - first) * step for col in cols]
            chips = np.stack([data[:, :, o : o + c] for o in offsets]).astype(np.float16)
            masks = np.stack([valid[:, o : o + c] for o in offsets])
            origins = np.array([grid.origin(row, col) for col in cols], dtype=np.int32)
            yield chips, masks, origins


def handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Write the product's shards; return one message per shard (``shard = i``)."""
    spec = load_spec(rt, msg.model, msg.version)
    capacity = shard_capacity(spec, rt.settings.shard_megabytes)
    reader = BandReader(msg, rt, spec)
    try:
        grid = ChipGrid.for_spec(spec, reader.grid.height, reader.grid.width)
        buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        buffered = 0
        n_shards = 0

        def flush(count: int) -> None:
            nonlocal buffer, buffered, n_shards
            chips, valid, origins = (np.concatenate(parts) for parts in zip(*buffer, strict=True))
            data = shards.encode(
                {"chips": chips[:count], "valid": valid[:count], "origins": origins[:count]}
            )
            rt.store.put_bytes(shards.shard_key(msg, n_shards), data)
            n_shards += 1
            rest = (chips[count:], valid[count:], origins[count:])
            buffer, buffered = ([rest], len(rest[0])) if len(rest[0]) else ([], 0)

        for group in iter_chip_groups(reader, grid, min(capacity, 64)):
            buffer.append(group)
            buffered += len(group[0])
            while buffered >= capacity:
                flush(capacity)
        if buffered:
            flush(buffered)
        grid_json = reader.grid.to_json()
    finally:
        reader.close()
    log.info("%s: %d chips in %d shards", msg.product_id, len(grid), n_shards)
    done = msg.model_copy(update={"n_shards": n_shards, "extra": {**msg.extra, "grid": grid_json}})
    return [done.model_copy(update={"shard": i}) for i in range(n_shards)]
