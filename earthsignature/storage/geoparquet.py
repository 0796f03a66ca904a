"""GeoParquet export of the committed polygons, for DuckDB, GeoPandas, QGIS and friends.

Each product's FlatGeobuf is streamed in Arrow batches (GDAL's Arrow stream through pyogrio),
cast to one schema, and appended to a single Parquet file with the GeoParquet 1.1 ``geo``
metadata (WKB geometry in OGC:CRS84 lon/lat, its geometry types and bounding box), so no more
than one batch is in memory. Needs the ``export`` extra (pyarrow).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from earthsignature.errors import ConfigurationError
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.catalog import iter_entries

if TYPE_CHECKING:
    import pyarrow as pa

#: Polygons per Arrow batch (and Parquet row group).
BATCH_ROWS = 65_536
GEOPARQUET_VERSION = "1.1.0"


@dataclass(frozen=True)
class ExportResult:
    products: int
    polygons: int
    bbox: tuple[float, float, float, float] | None


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError:
        raise ConfigurationError(
            "the GeoParquet export needs pyarrow, from the 'export' extra:"
            ' pip install -e ".[export]"'
        ) from None
    return pyarrow


def schema() -> pa.Schema:
    """Columns of the export: the FlatGeobuf fields (date as a date) and WKB geometry."""
    pa = _pyarrow()
    return pa.schema(
        [
            ("code", pa.int32()),
            ("label", pa.string()),
            ("product_id", pa.string()),
            ("date", pa.date32()),
            ("model", pa.string()),
            ("version", pa.int32()),
            ("area_m2", pa.float64()),
            ("geometry", pa.binary()),
        ]
    )


def _geo_metadata(bbox: tuple[float, float, float, float] | None) -> bytes:
    column: dict[str, Any] = {"encoding": "WKB", "geometry_types": ["Polygon"]}
    if bbox is not None:
        column["bbox"] = list(bbox)
    # no "crs": GeoParquet's default, OGC:CRS84 (longitude, latitude on WGS84)
    return json.dumps(
        {
            "version": GEOPARQUET_VERSION,
            "primary_column": "geometry",
            "columns": {"geometry": column},
        }
    ).encode()


def _batches(path: str) -> Any:
    """Arrow record batches of one FlatGeobuf, geometry as WKB in a ``geometry`` column."""
    from pyogrio.raw import open_arrow

    with open_arrow(path, use_pyarrow=True, batch_size=BATCH_ROWS) as (meta, reader):
        geometry_name = meta.get("geometry_name") or "wkb_geometry"
        for batch in reader:
            yield batch, geometry_name


def _cast(batch: Any, geometry_name: str, target: pa.Schema) -> pa.RecordBatch:
    pa = _pyarrow()
    columns = []
    for field in target:
        source = geometry_name if field.name == "geometry" else field.name
        column = batch.column(batch.schema.get_field_index(source))
        if field.name == "date" and not pa.types.is_date32(column.type):
            column = pa.compute.cast(pa.compute.cast(column, pa.string()), pa.date32())
        columns.append(column.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=target)


def export_polygons(
    store: ObjectStore,
    dst: Path,
    *,
    model: str,
    version: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> ExportResult:
    """Write every committed product's polygons of ``model`` v``version`` (optionally of
    ``start..end``) into one GeoParquet file at ``dst``; returns what was written."""
    pa = _pyarrow()
    target = schema()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial")
    products = polygons = 0
    bounds = np.array([np.inf, np.inf, -np.inf, -np.inf])
    writer = pa.parquet.ParquetWriter(tmp, target, compression="zstd")
    try:
        with store.gdal_env():
            for entry in iter_entries(store, model, version, start, end):
                for batch, geometry_name in _batches(store.gdal_path(entry.assets["polygons"])):
                    out = _cast(batch, geometry_name, target)
                    geoms = shapely.from_wkb(out.column("geometry").to_numpy(zero_copy_only=False))
                    box = shapely.total_bounds(geoms)
                    bounds = np.concatenate(
                        [np.minimum(bounds[:2], box[:2]), np.maximum(bounds[2:], box[2:])]
                    )
                    writer.write_batch(out)
                    polygons += out.num_rows
                products += 1
        bbox = tuple(float(v) for v in bounds) if polygons else None
        writer.add_key_value_metadata({"geo": _geo_metadata(bbox)})  # type: ignore[arg-type]
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    tmp.replace(dst)
    return ExportResult(products, polygons, bbox)  # type: ignore[arg-type]
