"""Per-class areas per date and class-to-class transitions, by windowed reads of the COGs.

Only the windows covering the area of interest (reprojected to each raster's CRS) are read,
``window_px`` a side at a time, so a full tile never sits in memory. Cloudy pixels (cloud mask
1) are counted apart as :data:`CLOUD`, never as a class; nodata (0) is not counted. Products of
the same date (different tiles) add up. For a change, the second date is read on the first
date's grid through a nearest-neighbour ``WarpedVRT``, whatever its own grid.

With ``min_confidence`` (percent, 1..100), clear mapped pixels whose model confidence (the
product's ``confidence`` COG) is below it are left out of the classes and counted apart as
``low_confidence_m2``; products of a model without a confidence output are a BadInput.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import numpy as np
import rasterio
import shapely
from rasterio.enums import Resampling
from rasterio.errors import CRSError, RasterioError
from rasterio.features import geometry_mask
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.errors import GEOSException
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from earthsignature.functions.errors import BadInput
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.catalog import CatalogEntry, iter_entries
from earthsignature.storage.errors import CorruptObject

#: Code under which cloudy pixels are reported (not a CORINE code).
CLOUD = -1
#: Side, in pixels, of the windows read at a time.
DEFAULT_WINDOW_PX = 1024
#: Longest edge, in degrees, of the area before it is reprojected (about 500 m).
DENSIFY_DEG = 0.005
_CODES = 1 << 16  # uint16 codes


@dataclass(frozen=True)
class DateAreas:
    """Areas (m²) by CORINE code on one date, cloud apart, and the products that gave them.

    ``unreadable``: products of the date left out because an object of theirs cannot be read
    (each a :class:`CorruptObject` naming the key); the areas are those of the others.
    """

    date: dt.date
    class_areas: dict[int, float]
    cloud_m2: float
    product_ids: tuple[str, ...]
    unreadable: tuple[CorruptObject, ...] = ()
    low_confidence_m2: float = 0.0


@dataclass(frozen=True)
class Change:
    """Transition areas (m²) ``(from_code, to_code) -> m²`` between two dates.

    ``cloud_m2``: area mapped on both dates but cloudy on either, left out of the matrix.
    """

    date_from: dt.date
    date_to: dt.date
    transitions: dict[tuple[int, int], float]
    cloud_m2: float
    product_ids: tuple[str, ...] = field(default=())
    low_confidence_m2: float = 0.0

    @property
    def changed_m2(self) -> float:
        return sum(a for (f, t), a in self.transitions.items() if f != t)


def parse_aoi(wkt: str) -> BaseGeometry:
    """A valid, non-empty polygonal area from WKT in EPSG:4326; BadInput otherwise."""
    try:
        geom = shapely.from_wkt(wkt)
    except (GEOSException, TypeError, ValueError) as exc:
        raise BadInput(f"area is not valid WKT: {exc}") from None
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise BadInput("area must be a non-empty Polygon or MultiPolygon (EPSG:4326 WKT)")
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise BadInput("area must be in longitude/latitude degrees (EPSG:4326)")
    return geom


def check_min_confidence(min_confidence: int | None) -> int | None:
    """None or 0 (no filter) as None; 1..100 kept; anything else a BadInput."""
    if not min_confidence:
        return None
    if not 0 < min_confidence <= 100:
        raise BadInput(f"min_confidence is a percentage 0..100, got {min_confidence}")
    return int(min_confidence)


def _confidence_key(entry: CatalogEntry) -> str:
    key = entry.assets.get("confidence")
    if key is None:
        raise BadInput(
            f"min_confidence needs confidence maps, but {entry.model} v{entry.version} "
            f"(product {entry.product_id}) has none"
        )
    return key


def _by_date(
    store: ObjectStore, model: str, version: int, start: dt.date, end: dt.date, aoi: BaseGeometry
) -> dict[dt.date, list[CatalogEntry]]:
    out: dict[dt.date, list[CatalogEntry]] = defaultdict(list)
    for entry in iter_entries(store, model, version, start, end):
        if shapely.box(*entry.bbox).intersects(aoi):
            out[entry.date].append(entry)
    return dict(sorted(out.items()))


def _windows(
    src: rasterio.io.DatasetReader, aoi: BaseGeometry, window_px: int
) -> Iterator[tuple[Window, np.ndarray]]:
    """Windows of ``src`` under the area's bounds and, for each, the mask of pixels inside."""
    # densified first, so edges straight in lon/lat keep their shape on the raster's grid
    dense = shapely.segmentize(aoi, DENSIFY_DEG)
    aoi_src = transform_geom("EPSG:4326", src.crs, mapping(dense))
    bounds = shape(aoi_src).bounds
    left, top = ~src.transform * (bounds[0], bounds[3])
    right, bottom = ~src.transform * (bounds[2], bounds[1])
    col0, col1 = max(0, math.floor(min(left, right))), min(src.width, math.ceil(max(left, right)))
    row0, row1 = max(0, math.floor(min(top, bottom))), min(src.height, math.ceil(max(top, bottom)))
    for r in range(row0, row1, window_px):
        for c in range(col0, col1, window_px):
            win = Window(c, r, min(window_px, col1 - c), min(window_px, row1 - r))
            inside = geometry_mask(
                [aoi_src],
                out_shape=(int(win.height), int(win.width)),
                transform=window_transform(win, src.transform),
                invert=True,
            )
            if inside.any():
                yield win, inside


def _pixel_m2(src: rasterio.io.DatasetReader) -> float:
    t = src.transform
    return abs(t.a * t.e - t.b * t.d)


def area_by_date(
    store: ObjectStore,
    aoi: BaseGeometry,
    start: dt.date,
    end: dt.date,
    *,
    model: str,
    version: int,
    window_px: int = DEFAULT_WINDOW_PX,
    min_confidence: int | None = None,
) -> list[DateAreas]:
    """Class areas inside ``aoi`` (EPSG:4326) for each date with committed products;
    ``min_confidence``: leave out pixels the model was less sure of (percent)."""
    threshold = check_min_confidence(min_confidence)
    results = []
    for day, entries in _by_date(store, model, version, start, end, aoi).items():
        counts = np.zeros(_CODES, dtype=np.float64)
        cloud_m2 = low_m2 = 0.0
        used: list[str] = []
        unreadable: list[CorruptObject] = []
        with store.gdal_env():
            for entry in entries:
                try:
                    with _reading(entry):
                        product = _product_areas(store, entry, aoi, window_px, threshold)
                except CorruptObject as exc:
                    unreadable.append(exc)
                    continue
                counts += product[0]
                cloud_m2 += product[1]
                low_m2 += product[2]
                used.append(entry.product_id)
        areas = {int(c): float(counts[c]) for c in np.flatnonzero(counts)}
        results.append(
            DateAreas(
                day, areas, cloud_m2, tuple(used), tuple(unreadable), low_confidence_m2=low_m2
            )
        )
    return results


@contextmanager
def _reading(*entries: CatalogEntry) -> Iterator[None]:
    """Turn GDAL's failure on a damaged object into :class:`CorruptObject` naming its key
    (the one GDAL's message names, else the first entry's segmentation)."""
    try:
        yield
    except (RasterioError, CRSError) as exc:
        keys = [k for e in entries for k in e.assets.values()]
        named = [k for k in keys if k in str(exc) or k.rsplit("/", 1)[-1] in str(exc)]
        key = named[0] if named else entries[0].assets["segmentation"]
        raise CorruptObject(key, str(exc).splitlines()[0][:300]) from exc


@contextmanager
def _open(store: ObjectStore, key: str) -> Iterator[rasterio.io.DatasetReader]:
    """Open a stored raster; one GDAL cannot open, or that lost its georeferencing (a
    truncated header), is a :class:`CorruptObject` naming ``key``."""
    try:
        ds = rasterio.open(store.gdal_path(key))
    except RasterioError as exc:
        raise CorruptObject(key, str(exc).splitlines()[0][:300]) from exc
    with ds:
        if ds.crs is None:
            raise CorruptObject(key, "no georeferencing (damaged or truncated header)")
        yield ds


def _product_areas(
    store: ObjectStore,
    entry: CatalogEntry,
    aoi: BaseGeometry,
    window_px: int,
    threshold: int | None = None,
) -> tuple[np.ndarray, float, float]:
    """One product's class areas (m² by code), cloud area and, with a confidence
    ``threshold``, the clear area left out below it, inside ``aoi``."""
    counts = np.zeros(_CODES, dtype=np.float64)
    cloud_m2 = low_m2 = 0.0
    with ExitStack() as stack:
        seg = stack.enter_context(_open(store, entry.assets["segmentation"]))
        cloud = stack.enter_context(_open(store, entry.assets["cloud_mask"]))
        conf = None
        if threshold is not None:
            conf = stack.enter_context(_open(store, _confidence_key(entry)))
        px = _pixel_m2(seg)
        for win, inside in _windows(seg, aoi, window_px):
            codes = seg.read(1, window=win)
            cloudy = cloud.read(1, window=win).astype(bool)
            mapped = inside & (codes > 0)
            cloud_m2 += float(np.count_nonzero(mapped & cloudy)) * px
            keep = mapped & ~cloudy
            sure = None
            if conf is not None and threshold is not None:
                sure = conf.read(1, window=win) >= threshold
            low_m2 += _add_window(counts, codes, keep, sure, px)
    return counts, cloud_m2, low_m2


def _add_window(
    counts: np.ndarray, codes: np.ndarray, keep: np.ndarray, sure: np.ndarray | None, px: float
) -> float:
    """Add one window's ``keep`` pixels (only the ``sure`` ones, when given) to ``counts``
    (m² by code); returns the m² kept out as below the confidence threshold."""
    low_m2 = 0.0
    if sure is not None:
        low_m2 = float(np.count_nonzero(keep & ~sure)) * px
        keep = keep & sure
    clear = codes[keep]
    if clear.size:
        counts[: clear.max() + 1] += np.bincount(clear) * px
    return low_m2


def _on_grid(
    stack: ExitStack,
    store: ObjectStore,
    entries: list[CatalogEntry],
    grid: rasterio.io.DatasetReader,
    with_confidence: bool = False,
) -> list[tuple[WarpedVRT, WarpedVRT, WarpedVRT | None]]:
    """Each entry's segmentation, cloud mask and (when asked) confidence read on ``grid``
    (nearest neighbour)."""
    opts = {
        "crs": grid.crs,
        "transform": grid.transform,
        "width": grid.width,
        "height": grid.height,
        "resampling": Resampling.nearest,
    }
    out = []
    for entry in entries:
        seg = stack.enter_context(_open(store, entry.assets["segmentation"]))
        cloud = stack.enter_context(_open(store, entry.assets["cloud_mask"]))
        conf_vrt = None
        if with_confidence:
            conf = stack.enter_context(_open(store, _confidence_key(entry)))
            conf_vrt = stack.enter_context(WarpedVRT(conf, nodata=255, **opts))
        out.append(
            (
                stack.enter_context(WarpedVRT(seg, nodata=0, **opts)),
                stack.enter_context(WarpedVRT(cloud, nodata=0, **opts)),
                conf_vrt,
            )
        )
    return out


def change(
    store: ObjectStore,
    aoi: BaseGeometry,
    date_from: dt.date,
    date_to: dt.date,
    *,
    model: str,
    version: int,
    window_px: int = DEFAULT_WINDOW_PX,
    min_confidence: int | None = None,
) -> Change:
    """Class-to-class transition areas inside ``aoi`` from ``date_from`` to ``date_to``.

    Pixels mapped on both dates count; cloudy on either goes to ``cloud_m2``; with
    ``min_confidence``, clear pixels below it on either date go to ``low_confidence_m2``.
    """
    threshold = check_min_confidence(min_confidence)
    firsts = _by_date(store, model, version, date_from, date_from, aoi).get(date_from, [])
    seconds = _by_date(store, model, version, date_to, date_to, aoi).get(date_to, [])
    transitions: dict[tuple[int, int], float] = defaultdict(float)
    cloud_m2 = low_m2 = 0.0
    with store.gdal_env():
        for entry in firsts:
            with ExitStack() as stack, _reading(entry, *seconds):
                seg = stack.enter_context(_open(store, entry.assets["segmentation"]))
                cloud = stack.enter_context(_open(store, entry.assets["cloud_mask"]))
                conf = None
                if threshold is not None:
                    conf = stack.enter_context(_open(store, _confidence_key(entry)))
                others = _on_grid(stack, store, seconds, seg, with_confidence=conf is not None)
                px = _pixel_m2(seg)
                for win, inside in _windows(seg, aoi, window_px):
                    a = seg.read(1, window=win)
                    cloudy = cloud.read(1, window=win).astype(bool)
                    b = np.zeros_like(a)
                    sure = np.ones(a.shape, dtype=bool)
                    if conf is not None and threshold is not None:
                        sure = conf.read(1, window=win) >= threshold
                    for seg2, cloud2, conf2 in others:  # the first product mapping a pixel wins
                        fill = b == 0
                        b = np.where(fill, seg2.read(1, window=win), b)
                        cloudy |= fill & cloud2.read(1, window=win).astype(bool) & (b > 0)
                        if conf2 is not None and threshold is not None:
                            low2 = conf2.read(1, window=win) < threshold
                            sure &= ~(fill & (b > 0) & low2)
                    both = inside & (a > 0) & (b > 0)
                    cloud_m2 += float(np.count_nonzero(both & cloudy)) * px
                    low_m2 += float(np.count_nonzero(both & ~cloudy & ~sure)) * px
                    keep = both & ~cloudy & sure
                    pairs = a[keep].astype(np.uint32) << 16 | b[keep].astype(np.uint32)
                    values, n = np.unique(pairs, return_counts=True)
                    for v, k in zip(values.tolist(), n.tolist(), strict=True):
                        transitions[(v >> 16, v & 0xFFFF)] += k * px
    ids = tuple(e.product_id for e in (*firsts, *seconds))
    return Change(
        date_from,
        date_to,
        dict(sorted(transitions.items())),
        cloud_m2,
        ids,
        low_confidence_m2=low_m2,
    )
