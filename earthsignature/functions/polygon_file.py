"""A raster's polygons as the product's FlatGeobuf (EPSG:4326, spatial index, fixed fields).

Its own module, apart from publish, so that what vectorizes imports only what it needs
(publish pulls in the COG, tiles, catalog and storage code).
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyogrio.raw
import rasterio
import shapely

from earthsignature import corine
from earthsignature.functions.errors import BadInput
from earthsignature.functions.polygons import DEFAULT_STRIP_ROWS, iter_polygon_batches, mmu_pixels

if TYPE_CHECKING:
    from earthsignature.functions.messages import ProductMessage

POLYGON_FIELDS = (
    "code",
    "label",
    "product_id",
    "date",
    "model",
    "version",
    "area_m2",
    "confidence",
)


def write_polygons(
    segmentation: Path,
    dst: Path,
    msg: ProductMessage,
    *,
    mmu_m2: float,
    tolerance_m: float,
    strip_rows: int = DEFAULT_STRIP_ROWS,
    confidence: Path | None = None,
    workers: int = 1,
) -> int:
    """Vectorize the raster strip by strip into a FlatGeobuf with a spatial index.

    Geometries are kept only as the strips being worked on and the polygons pending across a
    border; each batch of complete polygons is kept as WKB and attributes (about the
    FlatGeobuf's own size) and all are written in one call at the end: GDAL's FlatGeobuf
    driver appends by rewriting the whole file, so appending batch by batch cost time
    quadratic in the number of batches; it is handed an Arrow table, which GDAL writes in
    half the time of pyogrio's feature-by-feature path. ``workers`` > 1 vectorizes strips in
    that many threads. With ``confidence``, each polygon's ``confidence`` is the mean of its pixels
    (percent), else null. Returns the number of polygons.
    """
    wkb: list[np.ndarray] = []
    codes_parts: list[np.ndarray] = []
    areas_parts: list[np.ndarray] = []
    mean_parts: list[np.ndarray] = []
    with ExitStack() as stack:
        src = stack.enter_context(rasterio.open(segmentation))
        conf = None if confidence is None else stack.enter_context(rasterio.open(confidence))
        mmu_px = mmu_pixels(mmu_m2, src.transform)
        tolerance_px = tolerance_m / math.sqrt(abs(src.transform.determinant))
        for batch in iter_polygon_batches(
            src,
            mmu_px=mmu_px,
            tolerance_px=tolerance_px,
            strip_rows=strip_rows,
            confidence=conf,
            workers=workers,
        ):
            wkb.append(shapely.to_wkb(batch.geometries))  # 2-D, as polygonize makes them
            codes_parts.append(batch.codes.astype(np.int32))
            areas_parts.append(np.round(batch.areas_m2, 2))
            mean = np.full(len(batch), np.nan) if batch.confidence is None else batch.confidence
            mean_parts.append(np.round(mean, 2))
    if not wkb:
        raise BadInput("no polygon left after sieving", product_id=msg.product_id)
    codes = np.concatenate(codes_parts)
    n = len(codes)
    present = np.unique(codes)
    labels = pa.array([corine.clc_class(int(code)).label for code in present], pa.string())
    mean = np.concatenate(mean_parts)
    columns = [
        codes,
        labels.take(np.searchsorted(present, codes)),
        _repeated(msg.product_id, n),
        _repeated(msg.date, n),
        _repeated(msg.model, n),
        np.full(n, msg.version, dtype=np.int32),
        np.concatenate(areas_parts),
        pa.array(mean, mask=np.isnan(mean)),
    ]
    table = pa.table(
        {
            **dict(zip(POLYGON_FIELDS, columns, strict=True)),
            "geometry": pa.array(np.concatenate(wkb), pa.binary()),
        }
    )
    pyogrio.raw.write_arrow(
        table,
        dst,
        driver="FlatGeobuf",
        layer=msg.product_id,
        geometry_name="geometry",
        geometry_type="Polygon",
        crs="EPSG:4326",
        layer_options={"SPATIAL_INDEX": "YES"},
    )
    return n


def _repeated(value: str, n: int) -> pa.Array:
    """A string column of one value, n times (no n Python strings)."""
    return pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int32), [value]).cast(pa.string())
