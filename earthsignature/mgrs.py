"""Where a Sentinel-2 tile lies: its UTM CRS and the upper-left corner of its 10 m grid.

Sentinel-2 tiles are 109.8 km squares on the MGRS 100 km grid of their UTM zone. ESA's tiling
grid places each tile's upper-left corner within 60 m of ``(E_sw, N_sw + 100 km)`` of its MGRS
square; the exact corners of the tiles in ``../shared/data`` are kept in :data:`KNOWN_ORIGINS`
(read from their STAC items and ``MTD_TL.xml``), others are computed with that formula.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pyproj import Transformer

from earthsignature.storage.layout import MGRS_TILE

#: Side of a tile in metres (10980 px at 10 m).
TILE_METRES = 109_800

#: Exact upper-left corners (UTM metres) of real tiles, from their STAC items / MTD_TL.xml.
KNOWN_ORIGINS: dict[str, tuple[int, int]] = {
    "29RKH": (199_980, 2_800_020),
    "39QTA": (199_980, 2_100_000),
    "28QCH": (300_000, 2_300_040),
    "06VVN": (399_960, 6_800_040),
    "01KAB": (99_960, 8_200_000),
    "34VEL": (499_980, 6_600_000),
}

_TILE = re.compile(rf"^T?{MGRS_TILE}$")
_BANDS = "CDEFGHJKLMNPQRSTUVWX"
_COLUMN_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROWS = "ABCDEFGHJKLMNPQRSTUV"


@dataclass(frozen=True)
class TileGrid:
    """A tile's UTM CRS (EPSG code) and the upper-left corner of its pixel grid."""

    tile: str
    epsg: int
    ulx: float
    uly: float

    @property
    def zone(self) -> int:
        return int(self.tile[:-3])

    @property
    def latitude_band(self) -> str:
        return self.tile[-3]

    @property
    def grid_square(self) -> str:
        return self.tile[-2:]


def parse_tile(tile: str) -> tuple[int, str, str, str]:
    """``"31TCJ"`` -> ``(31, "T", "C", "J")``; a leading ``T`` is allowed. Raises ValueError."""
    match = _TILE.match(tile.upper())
    if not match or not 1 <= int(match["zone"]) <= 60:
        raise ValueError(f"not an MGRS tile id: {tile!r} (expected e.g. 31TCJ)")
    return int(match["zone"]), match["band"], match["col"], match["row"]


def square_south_west(tile: str) -> tuple[int, int]:
    """South-west corner (easting, northing) of the tile's MGRS 100 km square."""
    zone, band, col, row = parse_tile(tile)
    columns = _COLUMN_SETS[(zone - 1) % 3]
    if col not in columns:
        raise ValueError(f"column letter {col!r} is not used in UTM zone {zone}")
    easting = (columns.index(col) + 1) * 100_000
    row_index = (_ROWS.index(row) - (5 if zone % 2 == 0 else 0)) % 20
    northing_mod = row_index * 100_000
    # The 2000 km row cycle repeats; pick the repetition nearest the latitude band's centre.
    lat_centre = -80 + 8 * _BANDS.index(band) + 4
    lon_centre = -183 + 6 * zone
    to_utm = Transformer.from_crs(4326, utm_epsg(zone, band), always_xy=True)
    _x, y_centre = to_utm.transform(lon_centre, lat_centre)
    cycles = round((y_centre - 50_000 - northing_mod) / 2_000_000)
    return easting, northing_mod + 2_000_000 * cycles


def utm_epsg(zone: int, band: str) -> int:
    """WGS 84 / UTM EPSG code: 326zz north of the equator (bands N..X), else 327zz."""
    return (32600 if band >= "N" else 32700) + zone


def tile_grid(tile: str) -> TileGrid:
    """The tile's CRS and grid origin: exact for :data:`KNOWN_ORIGINS`, else within 60 m."""
    zone, band, col, row = parse_tile(tile)
    name = f"{zone:02d}{band}{col}{row}"
    if name in KNOWN_ORIGINS:
        ulx, uly = KNOWN_ORIGINS[name]
    else:
        easting, northing = square_south_west(name)
        ulx, uly = easting, northing + 100_000
    return TileGrid(tile=name, epsg=utm_epsg(zone, band), ulx=float(ulx), uly=float(uly))


def is_close_origin(a: tuple[float, float], b: tuple[float, float], tolerance: float = 60) -> bool:
    """Whether two tile corners agree within ``tolerance`` metres (ESA's grid offsets)."""
    return math.hypot(a[0] - b[0], a[1] - b[1]) <= tolerance * math.sqrt(2)
