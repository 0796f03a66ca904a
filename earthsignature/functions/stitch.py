"""Stitch shard predictions into the product's segmentation (overlap-tile, no seams).

Each prediction holds chip centres that tile the image without overlap (see :mod:`chips`), so
stitching writes each centre once, window by window, into a tiled GeoTIFF on the product's
10 m grid: class index -> CORINE code (uint16), 0 where the input had no valid data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from earthsignature import corine
from earthsignature.functions import shards
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.models.repository import load_spec
from earthsignature.runtime import Runtime


def write_centres(
    dst: rasterio.io.DatasetWriter,
    prediction: dict[str, np.ndarray],
    lut: np.ndarray,
) -> None:
    """Write one prediction's centres (cropped to the image) as CORINE codes."""
    for classes, valid, (y, x) in zip(
        prediction["classes"], prediction["valid"], prediction["origins"], strict=True
    ):
        h, w = min(classes.shape[0], dst.height - y), min(classes.shape[1], dst.width - x)
        if h <= 0 or w <= 0:
            continue
        codes = np.where(valid[:h, :w], lut[classes[:h, :w]], np.uint16(corine.NODATA))
        dst.write(codes.astype(np.uint16), 1, window=Window(int(x), int(y), w, h))


def stitch_segmentation(rt: Runtime, msg: ProductMessage, out_path: Path) -> None:
    """Every shard prediction of the product -> uint16 CORINE GeoTIFF at ``out_path``."""
    grid = msg.grid
    if grid is None or msg.n_shards is None:
        raise BadInput("stitch needs split's grid and shard count", product=msg.product_id)
    spec = load_spec(rt, msg.model, msg.version)
    lut = spec.code_lut()
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": 1,
        "width": grid.width,
        "height": grid.height,
        "crs": CRS.from_user_input(grid.crs),
        "transform": Affine(*grid.transform[:6]),
        "nodata": corine.NODATA,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "DEFLATE",
        "zlevel": 1,
        "predictor": 2,
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(out_path, "w", **profile) as dst:
        for index in range(msg.n_shards):
            prediction = shards.decode(rt.store.get_bytes(shards.prediction_key(msg, index)))
            write_centres(dst, prediction, lut)
