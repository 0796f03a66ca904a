"""Stitch shard predictions into the product's segmentation (overlap-tile, no seams).

Each prediction holds chip centres that tile the image without overlap (see :mod:`chips`), so
stitching writes each centre once, window by window, into a tiled GeoTIFF on the product's
10 m grid: class index -> CORINE code (uint16), 0 where the input had no valid data. For
models with a ``confidence`` output, the confidence (uint8, percent) is stitched the same way
into a second GeoTIFF, :data:`~earthsignature.storage.layout.CONFIDENCE_NODATA` where the
input had no valid data. A model declaring the ``sea`` post-processing gets its inland water
outside the land polygons written as sea (523, :mod:`~earthsignature.models.seamask`), window
by window, with the polygons projected once per product.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine, array_bounds
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from earthsignature import corine
from earthsignature.functions import shards
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.models.repository import load_spec
from earthsignature.models.seamask import LandMask
from earthsignature.runtime import Runtime
from earthsignature.storage import layout


def write_centres(
    dst: rasterio.io.DatasetWriter,
    prediction: dict[str, np.ndarray],
    lut: np.ndarray,
    confidence: rasterio.io.DatasetWriter | None = None,
    land: LandMask | None = None,
) -> None:
    """Write one prediction's centres (cropped to the image) as CORINE codes, and its
    confidence into ``confidence`` when given; with ``land`` (the model's ``sea``
    post-processing), inland water outside the land polygons is written as 523."""
    conf_maps = prediction.get("confidence")
    for i, (classes, valid, (y, x)) in enumerate(
        zip(prediction["classes"], prediction["valid"], prediction["origins"], strict=True)
    ):
        h, w = min(classes.shape[0], dst.height - y), min(classes.shape[1], dst.width - x)
        if h <= 0 or w <= 0:
            continue
        window = Window(int(x), int(y), w, h)
        codes = np.where(valid[:h, :w], lut[classes[:h, :w]], np.uint16(corine.NODATA))
        if land is not None:
            codes = land.apply(codes, window_transform(window, dst.transform))
        dst.write(codes.astype(np.uint16), 1, window=window)
        if confidence is not None and conf_maps is not None:
            conf = np.where(valid[:h, :w], conf_maps[i][:h, :w], np.uint8(layout.CONFIDENCE_NODATA))
            confidence.write(conf.astype(np.uint8), 1, window=window)


def stitch_segmentation(
    rt: Runtime, msg: ProductMessage, out_path: Path, confidence_path: Path | None = None
) -> bool:
    """Every shard prediction of the product -> uint16 CORINE GeoTIFF at ``out_path``, and,
    when the model has a confidence output and ``confidence_path`` is given, the uint8
    confidence GeoTIFF there. Returns whether a confidence raster was written."""
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
    with_confidence = spec.has_confidence and confidence_path is not None
    land = None
    if "sea" in spec.postprocess:
        land = LandMask(profile["crs"], array_bounds(grid.height, grid.width, profile["transform"]))
    with ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=256))
        dst = stack.enter_context(rasterio.open(out_path, "w", **profile))
        conf = None
        if with_confidence:
            conf_profile = {**profile, "dtype": "uint8", "nodata": layout.CONFIDENCE_NODATA}
            conf = stack.enter_context(rasterio.open(confidence_path, "w", **conf_profile))
        for index in range(msg.n_shards):
            prediction = shards.decode(rt.store.get_bytes(shards.prediction_key(msg, index)))
            if with_confidence and "confidence" not in prediction:
                raise BadInput(
                    "shard prediction has no confidence though the model declares it",
                    product=msg.product_id,
                    shard=index,
                )
            write_centres(dst, prediction, lut, conf, land)
    return with_confidence
