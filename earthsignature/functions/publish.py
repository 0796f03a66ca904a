"""Publish a product: segmentation COG, polygons, vector tiles, then the catalog record last.

Models with a confidence output also get a confidence COG (uint8 percent, no-data
:data:`~earthsignature.storage.layout.CONFIDENCE_NODATA`, average overviews) under
``confidence/`` and a ``confidence`` asset; every polygon carries the mean confidence of its
pixels (null without a confidence raster).

Every output is built in a local temporary folder and stored with one atomic put under its
deterministic key; the STAC Item under ``catalog/`` is written only after all of them are
stored, so a product is visible if and only if it is complete. Re-publishing the same
segmentation writes the same keys with the same bytes (GDAL writes no timestamps; the
record's ``created`` comes from the run, see :func:`created_time`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import multiprocessing
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.features import shapes
from shapely.geometry import shape

from earthsignature import corine
from earthsignature.functions.cog import to_cog
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.polygon_file import write_polygons
from earthsignature.functions.polygons import (
    DEFAULT_STRIP_ROWS,
    WGS84,
)
from earthsignature.functions.tiles import write_pmtiles
from earthsignature.polygons.encoded import write_encoded
from earthsignature.runtime import Runtime
from earthsignature.storage import catalog, layout, records
from earthsignature.storage.catalog import CatalogEntry

log = logging.getLogger(__name__)

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
FGB_MEDIA_TYPE = "application/vnd.flatgeobuf"
PMTILES_MEDIA_TYPE = "application/vnd.pmtiles"
EO_EXTENSION = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
#: Largest side, in pixels, of the raster the valid-data footprint is traced on.
FOOTPRINT_PX = 1024
#: Band description of the segmentation COG (GIS tools show it as the band's name).
SEGMENTATION_BAND = "CORINE Land Cover level-3 code (0 = no data)"
#: Rasters of at least this many pixels are published by two child processes: the COG
#: alongside the polygons, the tiles' low and high zoom levels side by side (two cores
#: instead of one). The worker process only waits, so GDAL calls that hold the GIL for
#: seconds (the FlatGeobuf and PMTiles writers) never starve its heartbeat thread (a
#: job silent past the heartbeat grace is run a second time).
CHILD_PROCESS_PIXELS = 16_000_000
#: Threads the polygons child vectorizes strips in (sieve, polygonize, simplify), beside
#: the COG child: the strips are most of the polygons' time.
POLYGON_WORKERS = 2


def publish_product(
    rt: Runtime,
    msg: ProductMessage,
    segmentation_path: Path,
    *,
    strip_rows: int = DEFAULT_STRIP_ROWS,
    parallel: bool | None = None,
    timings: dict[str, float] | None = None,
    confidence: Path | None = None,
) -> CatalogEntry:
    """Store the product's outputs from a local uint16 CORINE-code GeoTIFF, then commit it.

    ``confidence``: the model's uint8 confidence GeoTIFF on the same grid (percent), when the
    model has that output; published as its own COG and averaged per polygon.

    ``strip_rows`` bounds how many raster rows are vectorized at a time; ``parallel`` builds
    the COG, polygons and PMTiles in child processes (default: for rasters of at least
    :data:`CHILD_PROCESS_PIXELS`); ``timings``, when given, receives the seconds each part
    took in this process (benchmarks). Raises BadInput for a raster
    that is not a single-band uint16 CORINE map on the product's grid, or that has no valid
    pixel.
    """
    timed = _Timer(timings)
    store = rt.store
    if msg.cloud_mask is None:
        raise BadInput("no cloud mask in the message: the cloud stage has not run")
    keys = {
        "segmentation": layout.segmentation_key(msg.model, msg.version, msg.date, msg.product_id),
        "cloud_mask": msg.cloud_mask,
        "polygons": layout.polygons_key(msg.model, msg.version, msg.date, msg.product_id),
        "tiles": layout.tiles_key(msg.model, msg.version, msg.date, msg.product_id),
        "encoded": layout.encoded_key(msg.model, msg.version, msg.date, msg.product_id),
    }
    if confidence is not None:
        keys["confidence"] = layout.confidence_key(msg.model, msg.version, msg.date, msg.product_id)
    acquired = acquisition_time(msg)
    created = created_time(rt, msg)
    with tempfile.TemporaryDirectory(prefix="earthsig-publish-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        pixels = check_segmentation(segmentation_path, msg)
        if confidence is not None:
            check_confidence(confidence, segmentation_path)
        if parallel is None:
            parallel = pixels >= CHILD_PROCESS_PIXELS
        big = pixels >= CHILD_PROCESS_PIXELS
        pool = stack.enter_context(child_pool(fresh=big)) if parallel else None
        fgb = folder / "polygons.fgb"
        polygons = partial(
            write_polygons,
            segmentation_path,
            fgb,
            msg,
            mmu_m2=rt.settings.min_mapping_unit_m2,
            tolerance_m=rt.settings.simplify_tolerance_m,
            strip_rows=strip_rows,
            confidence=confidence,
            workers=POLYGON_WORKERS if big else 1,
        )
        # the polygons take longest: first in the pool, the class areas counted meanwhile
        fgb_job = None if pool is None else pool.submit(polygons)
        with timed("areas"):
            areas = class_areas(segmentation_path)
        if not areas:
            raise BadInput("segmentation has no valid pixel", product_id=msg.product_id)
        cog = folder / "segmentation.tif"
        with timed("cog"):
            cog_job = submit(pool, write_cog, segmentation_path, cog)
        conf_cog = folder / "confidence.tif"
        with timed("confidence_cog"):
            conf_job = (
                None
                if confidence is None
                else submit(pool, write_confidence_cog, confidence, conf_cog)
            )
        with timed("fgb"):
            count = (fgb_job or submit(None, polygons)).result()
        encoded = folder / "polygons.gbx"
        encoded_job = submit(pool, write_encoded, fgb, encoded)
        pmtiles = folder / "tiles.pmtiles"
        with timed("pmtiles"):
            write_pmtiles(fgb, pmtiles, name=msg.product_id, executor=pool)
        with timed("encoded (waited)"):
            if not encoded_job.result():
                del keys["encoded"]
        with timed("cog_and_footprint (waited)"):
            footprint = cog_job.result()
            if conf_job is not None:
                conf_job.result()
        with timed("store"):
            store.put_file(keys["segmentation"], cog)
            store.put_file(keys["polygons"], fgb)
            store.put_file(keys["tiles"], pmtiles)
            if "encoded" in keys:
                store.put_file(keys["encoded"], encoded)
            if confidence is not None:
                store.put_file(keys["confidence"], conf_cog)
    with timed("catalog"):
        item = build_item(msg, keys, footprint, areas, acquired, created)
        entry = catalog.commit(store, item)
        records.clear_record(store, msg.model, msg.version, msg.date, msg.product_id)
    log.info("published %s (%d polygons, %d classes)", msg.product_id, count, len(areas))
    return entry


class _Timer:
    """Context managers that add each part's wall time to a dict (when one is given)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.into is not None:
                self.into[part] = self.into.get(part, 0.0) + time.perf_counter() - start


def acquisition_time(msg: ProductMessage) -> dt.datetime:
    """The item's acquisition datetime (UTC); its date must be the message's partition date."""
    raw = msg.item.datetime if msg.item is not None else None
    if not raw:
        return dt.datetime.combine(dt.date.fromisoformat(msg.date), dt.time(), tzinfo=dt.UTC)
    try:
        when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"item datetime {raw!r} is not ISO 8601") from None
    when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    if when.date().isoformat() != msg.date:
        raise BadInput(f"item datetime {raw!r} is not on the message date {msg.date}")
    return when


def created_time(rt: Runtime, msg: ProductMessage) -> dt.datetime:
    """When the segmentation was made, stable across retries so re-publishing is byte-equal.

    ``msg.created`` (set once per run by the orchestrator) wins; otherwise the
    ``created`` of an existing record of the same product and model version is kept; only a
    first publication without either takes the current time.
    """
    if msg.created:
        return _parse_iso(msg.created)
    existing = catalog.read_committed(rt.store, msg.model, msg.version, msg.date, msg.product_id)
    if existing is not None and existing.created is not None:
        return existing.created
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def write_cog(segmentation: Path, cog: Path) -> dict[str, Any]:
    """The segmentation COG (mode overviews, CORINE palette); returns the valid footprint."""
    with warnings.catch_warnings():
        # rio-cogeo notes that a colormap makes the band a palette: that is the intent.
        warnings.filterwarnings("ignore", "Dataset color interpretation", UserWarning)
        to_cog(
            segmentation,
            cog,
            overview_resampling="mode",
            colormap=corine.colormap(),
            nodata=corine.NODATA,
            description=SEGMENTATION_BAND,
            band_tags=corine.class_tags(),
        )
    return valid_footprint(cog)


def write_confidence_cog(confidence: Path, cog: Path) -> None:
    """The confidence COG: uint8 percent, no-data 255, overviews by average."""
    to_cog(confidence, cog, overview_resampling="average", nodata=layout.CONFIDENCE_NODATA)


@contextmanager
def child_pool(fresh: bool, processes: int = 2) -> Iterator[Executor]:
    """Spawned child processes (no fork: the worker has threads and GDAL state); with
    ``fresh`` (full tiles), a new one for every task: a child's freed heap stays mapped
    (glibc), so the pre-encoded side file read after the polygons in the same child peaked
    near their sum (1.4-1.8 GiB). Small rasters reuse them (a start costs seconds)."""
    pool = ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("spawn"),
        max_tasks_per_child=1 if fresh else None,
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def submit(pool: Executor | None, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Run func in pool, or here and now when there is none (small rasters, tests)."""
    if pool is not None:
        return pool.submit(func, *args, **kwargs)
    done: Future[Any] = Future()
    try:
        done.set_result(func(*args, **kwargs))
    except BaseException as exc:
        done.set_exception(exc)
    return done


def check_segmentation(path: Path, msg: ProductMessage) -> int:
    """Refuse a raster that is not one uint16 band with a CRS on the product's grid; returns
    its number of pixels."""
    try:
        with rasterio.open(path) as ds:
            if ds.count != 1 or ds.dtypes[0] != "uint16":
                raise BadInput(
                    f"segmentation must be one uint16 band, got {ds.count} x {ds.dtypes[0]}"
                )
            if ds.crs is None or not ds.crs.is_projected:
                raise BadInput("segmentation needs a projected CRS (the product's UTM zone)")
            if ds.nodata not in (None, corine.NODATA):
                raise BadInput(f"segmentation no-data must be 0, got {ds.nodata}")
            grid = msg.grid
            if grid and (
                (ds.width, ds.height) != (grid.width, grid.height)
                or ds.crs != CRS.from_user_input(grid.crs)
                or not ds.transform.almost_equals(Affine(*grid.transform[:6]))
            ):
                raise BadInput("segmentation is not on the product grid", grid=grid.model_dump())
            return int(ds.width) * int(ds.height)
    except RasterioIOError as exc:
        raise BadInput(f"segmentation cannot be read: {exc}") from exc


def check_confidence(path: Path, segmentation: Path) -> None:
    """Refuse a confidence raster that is not one uint8 band on the segmentation's grid."""
    try:
        with rasterio.open(path) as ds, rasterio.open(segmentation) as seg:
            if ds.count != 1 or ds.dtypes[0] != "uint8":
                raise BadInput(
                    f"confidence must be one uint8 band, got {ds.count} x {ds.dtypes[0]}"
                )
            if (
                (ds.width, ds.height) != (seg.width, seg.height)
                or ds.crs != seg.crs
                or not ds.transform.almost_equals(seg.transform)
            ):
                raise BadInput("confidence is not on the segmentation's grid")
    except RasterioIOError as exc:
        raise BadInput(f"confidence cannot be read: {exc}") from exc


def class_areas(path: Path) -> dict[int, float]:
    """Area in m² of each CORINE code in the raster, counted block by block.

    Raises BadInput for a value that is not a level-3 code.
    """
    counts = np.zeros(65536, dtype=np.int64)
    with rasterio.open(path) as ds:
        for _, window in ds.block_windows(1):
            counts += np.bincount(ds.read(1, window=window).ravel(), minlength=65536)
        pixel_area = abs(ds.transform.a * ds.transform.e - ds.transform.b * ds.transform.d)
    counts[corine.NODATA] = 0
    present = np.flatnonzero(counts)
    check_codes(present)
    return {int(code): float(counts[code]) * pixel_area for code in present}


def check_codes(values: Iterable[Any]) -> None:
    """BadInput naming the values that are neither no data (0) nor a CORINE level-3 code."""
    unknown = [int(c) for c in values if int(c) != corine.NODATA and not corine.is_code(int(c))]
    if unknown:
        raise BadInput(f"segmentation holds values that are not CORINE codes: {unknown[:10]}")


def valid_footprint(path: Path) -> dict[str, Any]:
    """GeoJSON (EPSG:4326) outline of the valid pixels, traced on at most FOOTPRINT_PX px."""
    with rasterio.open(path) as ds:
        factor = max(1, math.ceil(max(ds.width, ds.height) / FOOTPRINT_PX))
        out_h, out_w = math.ceil(ds.height / factor), math.ceil(ds.width / factor)
        data = ds.read(1, out_shape=(out_h, out_w), resampling=Resampling.nearest)
        transform = ds.transform * Affine.scale(ds.width / out_w, ds.height / out_h)
        crs = ds.crs
    valid = (data != corine.NODATA).astype(np.uint8)
    parts = [shape(g) for g, _ in shapes(valid, mask=valid.astype(bool), transform=transform)]
    outline = shapely.union_all(parts)
    step = abs(transform.a)
    outline = shapely.simplify(outline, step, preserve_topology=True)
    outline = shapely.segmentize(outline, 64 * step)  # follow the projection's curvature
    to_wgs84 = Transformer.from_crs(crs, WGS84, always_xy=True)
    lonlat = shapely.transform(
        outline, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1]))
    )
    return json.loads(shapely.to_geojson(shapely.make_valid(lonlat)))


def build_item(
    msg: ProductMessage,
    keys: dict[str, str],
    footprint: dict[str, Any],
    areas: dict[int, float],
    acquired: dt.datetime,
    created: dt.datetime,
) -> dict[str, Any]:
    """The STAC Item of the product, in the shape documented in storage/catalog.py."""
    item_key = layout.catalog_key(msg.model, msg.version, msg.date, msg.product_id)
    ref = msg.item
    cloud_cover = msg.cloud_fraction  # ours, from the mask; else the catalogue's scene value
    if cloud_cover is None and ref is not None:
        cloud_cover = ref.cloud_cover
    properties: dict[str, Any] = {
        "created": _iso(created),
        "published": ref.published if ref is not None else None,
        catalog.PROP_MODEL: msg.model,
        catalog.PROP_VERSION: msg.version,
        "eo:cloud_cover": None if cloud_cover is None else round(float(cloud_cover), 4),
        catalog.PROP_CATEGORIES: sorted(areas),
        catalog.PROP_CLASS_AREAS: {str(c): round(a, 2) for c, a in sorted(areas.items())},
        catalog.PROP_TILE: msg.tile,
        catalog.PROP_PRODUCT_TYPE: (ref.product_type if ref is not None else None) or "S2MSI2A",
    }
    if ref is not None and ref.platform:
        properties["platform"] = ref.platform
    if ref is not None and ref.assets:  # fetch can read it again (an API upload's has no bands)
        properties[catalog.PROP_SOURCE_ITEM] = ref.to_dict()  # reprocessing reuses it, no search
    if msg.haze is not None:
        properties[catalog.PROP_HAZE] = msg.haze.model_dump()
    item = pystac.Item(
        id=msg.product_id,
        geometry=footprint,
        bbox=list(shapely.bounds(shape(footprint))),
        datetime=acquired,
        properties=properties,
        stac_extensions=[EO_EXTENSION],
    )
    assets = {
        "segmentation": (COG_MEDIA_TYPE, ["data"], "CORINE level-3 land cover (uint16, 0 = none)"),
        "cloud_mask": (COG_MEDIA_TYPE, ["cloud"], "Cloud mask (1 = cloud or shadow)"),
        "polygons": (FGB_MEDIA_TYPE, ["data"], "Land-cover polygons, EPSG:4326"),
        "tiles": (PMTILES_MEDIA_TYPE, ["visual"], "Vector tiles for maps"),
        "encoded": (
            "application/octet-stream",
            ["metadata"],
            "The polygons pre-encoded as geobuf Features for the API (polygons/encoded.py)",
        ),
        "confidence": (
            COG_MEDIA_TYPE,
            ["data"],
            "Model confidence (uint8): the winning class's softmax probability in percent, "
            "0..100; 255 = no data",
        ),
    }
    for name, (media_type, roles, title) in assets.items():
        if name not in keys:  # confidence: only for models with that output
            continue
        item.add_asset(
            name,
            pystac.Asset(
                href=catalog.relative_href(item_key, keys[name]),
                media_type=media_type,
                roles=roles,
                title=title,
                extra_fields={catalog.ASSET_KEY: keys[name]},
            ),
        )
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def _parse_iso(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"created time {value!r} is not ISO 8601") from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
