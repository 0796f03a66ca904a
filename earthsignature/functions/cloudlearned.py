"""A learned cloud and shadow mask for the cloud stage: a ``cloudmask`` model of the repository.

The model (e.g. ukis-csmask's U-Net, see :mod:`earthsignature.models.csmask`) is run through
the same runners as the land-cover model (embedded onnxruntime or Triton). Its bands are read
on a grid ``factor`` times coarser than the 10 m grid (30 m: what csmask was trained on),
one strip of chips at a time, cut into overlapping chips (:mod:`chips`: same seam rules as
split/infer/stitch) and predicted in batches of the model's ``max_batch_size``. The classes
(0 clear, 1 cloud, 2 cloud shadow) go to a temporary uint8 GeoTIFF on the coarse grid, which
the cloud stage reads back onto the 10 m grid window by window.

Memory is one strip: ``chip_size`` rows x the tile's width x bands float32 (~22 MB for a full
tile at 30 m), whatever the tile size. Time is what bounds it: see BENCHMARKS.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from earthsignature.functions import cloudmask
from earthsignature.functions.chips import ChipGrid, centre
from earthsignature.functions.errors import BadInput
from earthsignature.functions.split import BandReader, Grid
from earthsignature.models.runners import Backend, get_backend

if TYPE_CHECKING:
    from earthsignature.functions.messages import ProductMessage
    from earthsignature.runtime import Runtime

#: Class indices of a cloudmask model that count as cloud (1 cloud, 2 cloud shadow).
CLOUD_INDICES = (1, 2)


def predict_classes(backend: Backend, chips: np.ndarray) -> np.ndarray:
    """uint8 class indices ``[N, H, W]`` of normalised chips: the one call of the runner."""
    return backend.predict(chips).classes


def write_classes(reader: BandReader, backend: Backend, path: Path) -> None:
    """Predict the whole grid of ``reader`` strip by strip into a uint8 GeoTIFF at ``path``;
    pixels without data are 0 (clear)."""
    spec = backend.spec
    g = reader.grid
    grid = ChipGrid.for_spec(spec, g.height, g.width)
    step, margin, size = grid.step, grid.margin, grid.chip_size
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": g.width,
        "height": g.height,
        "count": 1,
        "dtype": "uint8",
        "crs": g.crs,
        "transform": g.transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "DEFLATE",
    }
    with rasterio.open(path, "w", **profile) as out:
        for row in range(grid.n_rows):
            data, valid = read_mirrored(
                reader, row * step - margin, size, margin, grid.n_cols * step
            )
            chips = np.stack([data[:, :, c * step : c * step + size] for c in range(grid.n_cols)])
            batch = spec.max_batch_size
            classes = np.concatenate(
                [
                    predict_classes(backend, chips[i : i + batch])
                    for i in range(0, len(chips), batch)
                ]
            )
            strip = centre(classes, margin).transpose(1, 0, 2).reshape(step, grid.n_cols * step)
            strip = np.where(
                valid[margin : margin + step, margin : margin + strip.shape[1]], strip, 0
            )
            height = min(step, g.height - row * step)
            out.write(
                strip[:height, : g.width].astype(np.uint8),
                1,
                window=Window(0, row * step, g.width, height),
            )


def read_mirrored(
    reader: BandReader, y0: int, height: int, margin: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``y0..y0+height`` and columns ``-margin..width+margin`` of normalised input (and
    its valid mask, False outside), mirrored past the image's edges. Padding with 0 (the band
    means, as split does) puts a bright, cloud-like frame around the image, which the U-Net
    reads as cloud: 9 of 18 clear BigEarthNet patches were flagged so (BENCHMARKS.md)."""
    g = reader.grid
    ys, ye = max(y0, 0), min(y0 + height, g.height)
    data, valid = reader.read(ys, 0, ye - ys, g.width)
    rows = (ys - y0, y0 + height - ye)
    cols = (margin, width + margin - g.width)
    return (
        np.pad(data, ((0, 0), rows, cols), mode="symmetric"),
        np.pad(valid, (rows, cols), mode="constant", constant_values=False),
    )


def on_grid(
    classes: rasterio.io.DatasetReader, crs: Any, transform: Any, width: int, height: int
) -> WarpedVRT:
    """The coarse class raster seen on the 10 m grid (nearest neighbour)."""
    return WarpedVRT(
        classes,
        crs=crs,
        transform=transform,
        width=width,
        height=height,
        resampling=Resampling.nearest,
    )


def cloud_of(classes: np.ndarray) -> np.ndarray:
    """True where the model says cloud or cloud shadow."""
    return np.isin(classes, CLOUD_INDICES)


@contextmanager
def learned_classes(
    msg: ProductMessage, rt: Runtime, grid: Grid, tmpdir: Path
) -> Iterator[WarpedVRT | None]:
    """The learned class raster of ``msg`` on the 10 m ``grid``; None for method ``scl``."""
    settings = rt.settings
    if settings.cloud_mask_method == "scl":
        yield None
        return
    backend = get_backend(rt, settings.cloud_mask_model, settings.cloud_mask_model_version)
    if backend.spec.kind != "cloudmask":
        raise BadInput(
            "EARTHSIG_CLOUD_MASK_MODEL is not a cloudmask model", model=backend.spec.name
        )
    factor = max(1, round(settings.cloud_mask_resolution_m / abs(grid.transform.a)))
    path = tmpdir / "learned.tif"
    reader = BandReader(msg, rt, backend.spec, factor=factor)
    try:
        write_classes(reader, backend, path)
    finally:
        reader.close()
    with (
        rasterio.open(path) as classes,
        on_grid(classes, grid.crs, grid.transform, grid.width, grid.height) as vrt,
    ):
        yield vrt


def window_mask(
    scl: np.ndarray, learned: WarpedVRT | None, window: Window, method: str
) -> np.ndarray:
    """Cloud (bool) of one 10 m window: SCL's, the learned one's, or their union (``both``)."""
    scl_cloud = np.isin(scl, cloudmask.CLOUD_CLASSES)
    if learned is None:
        return scl_cloud
    learned_cloud = cloud_of(learned.read(1, window=window))
    return learned_cloud | scl_cloud if method == "both" else learned_cloud
