"""Stage cloud: a 1-bit cloud-mask COG on the 10 m grid from SCL, and the cloud fraction.

SCL (20 m) is read window by window, upsampled to the 10 m grid by nearest neighbour, and
classified (3, 8, 9, 10 cloud; 0, 1 invalid). The fraction is the cloud share of valid pixels
inside the run's area of interest (``msg.aoi_wkt``, else ``settings.aoi_wkt``; reprojected to
the tile's CRS). Products over ``settings.cloud_threshold`` (or entirely cloudy) and
products outside the area are skipped, all-no-data products fail.
``settings.cloud_mask_method`` chooses the mask: SCL's, a learned model's (:mod:`cloudlearned`),
or their union; SCL always says which pixels are valid. A product that stops here keeps only
its record: the mask is published only for products that go on, and the product's ``raw/``
bands are removed.

The same pass measures the product's haze (:mod:`~earthsignature.functions.haze`: AOT, SCL thin
cirrus, blue brightness of clear land) into ``msg.haze`` and into skip records.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.warp import transform_geom
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely import wkt
from shapely.geometry import box, mapping, shape

from earthsignature.functions import cloudlearned, cloudmask
from earthsignature.functions.cog import to_cog
from earthsignature.functions.errors import BadInput, ProductSkipped, StageError
from earthsignature.functions.haze import HazeCounter
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.split import Grid
from earthsignature.runtime import Runtime
from earthsignature.storage import layout

WINDOW_ROWS = 1024
TEN_METRE_BANDS = ("B02", "B03", "B04", "B08")


def handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Publish the mask, set ``cloud_mask`` and ``cloud_fraction``; skip cloudy products."""
    try:
        return _handle(msg, rt)
    except StageError:
        rt.store.delete(layout.mask_key(msg.date, msg.tile, msg.product_id))
        rt.store.delete_prefix(layout.raw_prefix(msg.date, msg.tile, msg.product_id))
        raise


def _handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    if "SCL" not in msg.bands:
        raise BadInput(f"product {msg.product_id} has no SCL band in raw/")
    store = rt.store
    ref_band = next((b for b in TEN_METRE_BANDS if b in msg.bands), None)
    with store.gdal_env(), rasterio.open(store.gdal_path(msg.bands["SCL"])) as scl:
        if ref_band is None:
            factor = 2
        else:
            with rasterio.open(store.gdal_path(msg.bands[ref_band])) as ref:
                factor = round(scl.res[0] / ref.res[0])
        width, height = scl.width * factor, scl.height * factor
        a, b, c, d, e, f = tuple(scl.transform)[:6]
        transform = rasterio.Affine(a / factor, b, c, d, e / factor, f)
        aoi = shape(
            transform_geom(
                "EPSG:4326", scl.crs, mapping(wkt.loads(msg.aoi_wkt or rt.settings.aoi_wkt))
            )
        )
        bounds = box(c, f + e * scl.height, c + a * scl.width, f)
        if not aoi.intersects(bounds):
            raise ProductSkipped(
                f"product {msg.product_id} lies outside the area of interest", cloud_fraction=None
            )
        whole = aoi.contains(bounds)
        cloud = valid = valid_anywhere = 0
        haze = _haze_counter(msg)
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": 1,
            "dtype": "uint8",
            "crs": scl.crs,
            "transform": transform,
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "compress": "DEFLATE",
        }
        with tempfile.TemporaryDirectory(prefix="earthsig-cloud-") as tmpdir:
            plain = Path(tmpdir) / "mask.tif"
            grid = Grid(scl.crs, transform, width, height)
            method = rt.settings.cloud_mask_method
            with ExitStack() as stack, rasterio.open(plain, "w", **profile) as out:
                learned = stack.enter_context(
                    cloudlearned.learned_classes(msg, rt, grid, Path(tmpdir))
                )
                aot, blue = (_open_band(stack, rt, msg, band) for band in ("AOT", "B02"))
                for row in range(0, scl.height, WINDOW_ROWS // factor):
                    rows = min(WINDOW_ROWS // factor, scl.height - row)
                    scl_window = Window(0, row, scl.width, rows)
                    native = scl.read(1, window=scl_window)
                    window = cloudmask.upsample(native, factor)
                    out_window = Window(0, row * factor, width, rows * factor)
                    inside = None
                    if not whole:
                        inside = geometry_mask(
                            [mapping(aoi)],
                            out_shape=window.shape,
                            transform=window_transform(out_window, transform),
                            invert=True,
                        )
                    mask = cloudlearned.window_mask(window, learned, out_window, method)
                    n_cloud, n_valid, n_any = cloudmask.mask_counts(
                        mask, cloudmask.valid_mask(window), inside
                    )
                    cloud, valid, valid_anywhere = (
                        cloud + n_cloud,
                        valid + n_valid,
                        (valid_anywhere + n_any),
                    )
                    out.write(mask.astype("uint8"), 1, window=out_window)
                    on_scl = window_bounds(scl_window, scl.transform), native.shape
                    haze.add(
                        native,
                        None if inside is None else inside[::factor, ::factor],
                        _read_on(aot, *on_scl),
                        _read_on(blue, *on_scl),
                    )
            figure = haze.figure().model_dump()
            if valid_anywhere == 0:
                raise BadInput(f"product {msg.product_id} has no valid pixel (SCL all no data)")
            if valid == 0:
                raise ProductSkipped(
                    f"product {msg.product_id} has no valid pixel inside the area of interest",
                    cloud_fraction=None,
                    haze=figure,
                )
            fraction = cloudmask.cloud_percent(cloud, valid)
            threshold = rt.settings.cloud_threshold
            if fraction >= 100.0 or fraction > threshold:
                raise ProductSkipped(
                    f"cloud fraction {fraction:.2f} % is over the threshold of {threshold:.1f} %",
                    cloud_fraction=fraction,
                    threshold=threshold,
                    haze=figure,
                )
            key = layout.mask_key(msg.date, msg.tile, msg.product_id)
            with store.staged_file(key) as staged:
                to_cog(plain, staged, nbits=1, description="cloud mask (1 = cloud or shadow)")
    msg.cloud_mask = key
    msg.cloud_fraction = fraction
    msg.haze = haze.figure()
    return [msg]


def _open_band(
    stack: ExitStack, rt: Runtime, msg: ProductMessage, band: str
) -> rasterio.DatasetReader | None:
    """The product's fetched ``band`` (inside ``store.gdal_env()``), or None when not fetched."""
    if band not in msg.bands:
        return None
    return stack.enter_context(rasterio.open(rt.store.gdal_path(msg.bands[band])))


def _read_on(
    ds: rasterio.DatasetReader | None, bounds: tuple[float, float, float, float], shape: Any
) -> np.ndarray | None:
    """Band 1 of ``ds`` over ``bounds``, resampled (nearest) to ``shape``: any resolution."""
    if ds is None:
        return None
    window = from_bounds(*bounds, transform=ds.transform)
    return ds.read(1, window=window, out_shape=shape, resampling=Resampling.nearest)


def _haze_counter(msg: ProductMessage) -> HazeCounter:
    """A counter with the catalogue's scale and offset of AOT and B02 (defaults otherwise)."""
    ref = msg.product_ref()
    (aot_scale, aot_offset), (blue_scale, blue_offset) = (
        ref.scale_offset("AOT"),
        ref.scale_offset("B02"),
    )
    return HazeCounter(
        aot_scale=aot_scale, aot_offset=aot_offset, blue_scale=blue_scale, blue_offset=blue_offset
    )
