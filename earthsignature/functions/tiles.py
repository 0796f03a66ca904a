"""Vector tiles for maps: a PMTiles archive of a product's polygons, built by GDAL.

GDAL's PMTiles driver (through pyogrio) cuts the EPSG:4326 polygons into Mapbox Vector Tiles
in Web Mercator, gzip-compressed, in one clustered ``.pmtiles`` file that web maps
(MapLibre + the pmtiles protocol) read by range requests.

Zoom range 5-13: at zoom 5 a Sentinel-2 tile (110 km) is about 20 screen pixels, the smallest
zoom at which a single product is worth drawing; at zoom 13 a tile pixel is about 19 m
(at the equator, less further north), i.e. two 10 m pixels, so the 0.5 ha minimum mapping
unit is still a few screen pixels wide. Maps over-zoom beyond 13.

Geometries are simplified by :data:`SIMPLIFICATION` tile units (of 4096 per tile side, i.e.
invisible on screen): on a speckled quarter tile this halved GDAL's time and cut its peak
memory from 1.1 GiB to 0.4 GiB. Low-zoom tiles of a whole product can exceed GDAL's 500 kB
tile budget; GDAL then encodes them at a coarser resolution, which is what an overview zoom
needs anyway, so that warning is silenced.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pyogrio.raw

MIN_ZOOM = 5
MAX_ZOOM = 13
#: Name of the vector layer inside every tile.
LAYER = "landcover"
#: Polygon attributes carried into the tiles (styling and pop-ups).
TILE_FIELDS = ("code", "label", "area_m2")
#: GDAL MVT simplification tolerance, in tile coordinate units (4096 per tile side).
SIMPLIFICATION = 2


def write_pmtiles(
    polygons: Path,
    dst: Path,
    *,
    name: str,
    min_zoom: int = MIN_ZOOM,
    max_zoom: int = MAX_ZOOM,
) -> None:
    """Write the polygons of a FlatGeobuf file as a PMTiles archive at dst (a new file)."""
    if not 0 <= min_zoom <= max_zoom <= 24:
        raise ValueError(f"bad zoom range {min_zoom}..{max_zoom}")
    meta, _fids, geometry, field_data = pyogrio.raw.read(polygons, columns=list(TILE_FIELDS))
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
            geometry_type="MultiPolygon",
            crs=meta["crs"],
            driver="PMTiles",
            layer=LAYER,
            dataset_options=options,
        )
