"""The object-store layout of ARCHITECTURE.md, in one place.

Hive-style partitions (``model=<name>/version=<v>/date=YYYY-MM-DD``) that GDAL, DuckDB and QGIS
read directly. Every part that comes from outside (product ids, model names, tiles, bands,
dates) is validated here, so no key can escape its prefix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from earthsignature.storage.errors import InvalidKey

_PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
#: An MGRS tile id as Sentinel-2 names it (UTM zone, latitude band, 100 km column and row
#: letters; I and O never occur, rows stop at V): the one pattern every parser of tiles uses.
MGRS_TILE = r"(?P<zone>[0-9]{1,2})(?P<band>[C-HJ-NP-X])(?P<col>[A-HJ-NP-Z])(?P<row>[A-HJ-NP-V])"
_TILE = re.compile(MGRS_TILE)
#: A tile inside a product id or name: an ``_``-separated part, ``T`` prefix optional.
_TILE_IN_TEXT = re.compile(rf"(?:^|_)T?({MGRS_TILE})(?:_|$)")
_BAND = re.compile(r"^[A-Za-z0-9_]{1,32}$")
_RUN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

RAW = "raw"
MASKS = "masks"
SEGMENTATIONS = "segmentations"
CONFIDENCE = "confidence"
#: No-data value of confidence COGs (valid values are 0..100 %).
CONFIDENCE_NODATA = 255
POLYGONS = "polygons"
#: Polygons pre-encoded as geobuf for the API (earthsignature/polygons/encoded.py).
ENCODED = "encoded"
TILES = "tiles"
CATALOG = "catalog"
RECORDS = "records"
WORK = "work"
COMPOSITES = "composites"
#: A composite period: a calendar month ``2024-05``, a season ``2024-JJA`` (``DJF`` is named by
#: the year of its January), a rolling 12 months ``R12-2024-05`` (June 2023 to May 2024) or a
#: calendar year ``2024`` (see earthsignature/composites/periods).
_PERIOD = re.compile(
    r"^(?:R12-[0-9]{4}-(?:0[1-9]|1[0-2])|[0-9]{4}(?:-(?:0[1-9]|1[0-2])|-(?:DJF|MAM|JJA|SON))?)$"
)


def product_id(value: str) -> str:
    """A Sentinel-2 product id: letters, digits, ``_ . -``; no slashes, no ``..``."""
    if not isinstance(value, str) or not _PRODUCT_ID.fullmatch(value) or ".." in value:
        raise InvalidKey(str(value), "product ids are 1-200 of [A-Za-z0-9_.-], no '..'")
    return value


def is_product_id(value: object) -> bool:
    """Whether ``value`` is usable as a product id in keys (see :func:`product_id`)."""
    try:
        product_id(value)  # type: ignore[arg-type]
    except InvalidKey:
        return False
    return True


def safe_product_id(value: object) -> str:
    """``value`` when it is a valid product id, else ``rejected-<digest>`` of it.

    Records about items whose id cannot be a key (``../../x``, absolute paths, too long,
    control characters) are kept under this stable stand-in; the original goes in the record.
    """
    if is_product_id(value):
        return str(value)
    return "rejected-" + hashlib.sha256(repr(value).encode()).hexdigest()[:24]


def model_name(value: str) -> str:
    """A model name as Triton accepts it, restricted to lower-case [a-z0-9_.-]."""
    if not isinstance(value, str) or not _MODEL_NAME.fullmatch(value) or ".." in value:
        raise InvalidKey(str(value), "model names are 1-64 of [a-z0-9_.-], no '..'")
    return value


def model_version(value: int | str) -> int:
    """A Triton model version: a positive integer."""
    try:
        version = int(value)
    except (TypeError, ValueError):
        raise InvalidKey(str(value), "model versions are positive integers") from None
    if version < 1 or str(value).strip() != str(version):
        raise InvalidKey(str(value), "model versions are positive integers")
    return version


def tile_id(value: str) -> str:
    """An MGRS tile id such as ``29RKH`` (a leading ``T`` is dropped)."""
    if isinstance(value, str) and value.startswith("T") and len(value) == 6:
        value = value[1:]
    if not isinstance(value, str) or not _TILE.fullmatch(value):
        raise InvalidKey(str(value), "MGRS tiles look like 29RKH")
    return value


def tile_in_text(text: str) -> str | None:
    """The MGRS tile named in a product id or name (``S2A_MSIL2A_..._T31TEJ_...``,
    ``S2A_29RKH_20200219_0_L2A``), else None."""
    match = _TILE_IN_TEXT.search(text)
    return match[1] if match else None


def band_name(value: str) -> str:
    """An asset/band name such as ``B04`` or ``scl``."""
    if not isinstance(value, str) or not _BAND.fullmatch(value):
        raise InvalidKey(str(value), "band names are 1-32 of [A-Za-z0-9_]")
    return value


def run_id(value: str) -> str:
    """A pipeline run id used under ``work/``."""
    if not isinstance(value, str) or not _RUN.fullmatch(value):
        raise InvalidKey(str(value), "run ids are 1-64 of [A-Za-z0-9_-]")
    return value


def acquisition_date(value: dt.date | dt.datetime | str) -> dt.date:
    """The partition date: a date, a datetime (its UTC date), or ``YYYY-MM-DD``."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10]) if len(str(value)) >= 10 else _bad(value)
    except ValueError:
        return _bad(value)


def _bad(value: object) -> dt.date:
    raise InvalidKey(str(value), "dates are YYYY-MM-DD")


def _model_partition(model: str, version: int | str) -> str:
    """``model=<name>/version=<v>``, checked."""
    return f"model={model_name(model)}/version={model_version(version)}"


def _partition(model: str, version: int | str, date: dt.date | str) -> str:
    return f"{_model_partition(model, version)}/date={acquisition_date(date).isoformat()}"


def raw_prefix(date: dt.date | str, tile: str, product: str) -> str:
    """Folder of a product's fetched bands."""
    return (
        f"{RAW}/date={acquisition_date(date).isoformat()}/tile={tile_id(tile)}"
        f"/{product_id(product)}/"
    )


def raw_key(date: dt.date | str, tile: str, product: str, band: str) -> str:
    """``raw/date=.../tile=.../<product_id>/<band>.tif``"""
    return f"{raw_prefix(date, tile, product)}{band_name(band)}.tif"


def mask_key(date: dt.date | str, tile: str, product: str) -> str:
    """``masks/date=.../tile=.../<product_id>/cloud.tif`` (1-bit COG)."""
    return (
        f"{MASKS}/date={acquisition_date(date).isoformat()}/tile={tile_id(tile)}"
        f"/{product_id(product)}/cloud.tif"
    )


def segmentation_key(model: str, version: int | str, date: dt.date | str, product: str) -> str:
    """``segmentations/model=.../version=.../date=.../<product_id>.tif`` (uint16 COG)."""
    return f"{SEGMENTATIONS}/{_partition(model, version, date)}/{product_id(product)}.tif"


def confidence_key(model: str, version: int | str, date: dt.date | str, product: str) -> str:
    """``confidence/model=.../version=.../date=.../<product_id>.tif``: uint8 COG, the winning
    class's softmax probability in percent (0..100), no-data 255, average overviews."""
    return f"{CONFIDENCE}/{_partition(model, version, date)}/{product_id(product)}.tif"


def polygons_key(model: str, version: int | str, date: dt.date | str, product: str) -> str:
    """``polygons/model=.../version=.../date=.../<product_id>.fgb`` (FlatGeobuf, EPSG:4326)."""
    return f"{POLYGONS}/{_partition(model, version, date)}/{product_id(product)}.fgb"


def encoded_key(model: str, version: int | str, date: dt.date | str, product: str) -> str:
    """``encoded/model=.../version=.../date=.../<product_id>.gbx``: the polygons pre-encoded as
    geobuf Features with a block index (``polygons/encoded.py``), read by the V2 API only."""
    return f"{ENCODED}/{_partition(model, version, date)}/{product_id(product)}.gbx"


def tiles_key(model: str, version: int | str, date: dt.date | str, product: str) -> str:
    """``tiles/model=.../version=.../date=.../<product_id>.pmtiles``"""
    return f"{TILES}/{_partition(model, version, date)}/{product_id(product)}.pmtiles"


def catalog_key(model: str, version: int | str, date: dt.date | str, product: str) -> str:
    """``catalog/model=.../version=.../date=.../<product_id>.json``: the commit record."""
    return f"{CATALOG}/{_partition(model, version, date)}/{product_id(product)}.json"


def catalog_prefix(
    model: str | None = None, version: int | str | None = None, date: dt.date | str | None = None
) -> str:
    """The narrowest catalog prefix for what is known (model, then version, then date)."""
    prefix = f"{CATALOG}/"
    if model is None:
        return prefix
    prefix += f"model={model_name(model)}/"
    if version is None:
        return prefix
    prefix += f"version={model_version(version)}/"
    if date is None:
        return prefix
    return prefix + f"date={acquisition_date(date).isoformat()}/"


def record_key(model: str, version: int | str, date: dt.date | str, product: str) -> str:
    """``records/model=.../version=.../date=.../<product_id>.json``: skipped/failed outcomes."""
    return f"{RECORDS}/{_partition(model, version, date)}/{product_id(product)}.json"


def period_id(value: str) -> str:
    """A composite period id: ``YYYY-MM``, ``YYYY-DJF|MAM|JJA|SON``, ``R12-YYYY-MM`` (the 12
    months ending with that month) or ``YYYY``."""
    if not isinstance(value, str) or not _PERIOD.fullmatch(value):
        raise InvalidKey(str(value), "periods look like 2024-05, 2024-JJA, R12-2024-05 or 2024")
    return value


def composites_prefix(model: str, version: int | str, period: str | None = None) -> str:
    """``composites/model=.../version=.../[period=.../]``: every composite of a model version
    (of one period)."""
    prefix = f"{COMPOSITES}/{_model_partition(model, version)}/"
    return prefix if period is None else f"{prefix}period={period_id(period)}/"


def composite_prefix(model: str, version: int | str, period: str, tile: str) -> str:
    """``composites/model=.../version=.../period=.../tile=.../``: one tile-period composite
    (``composite.tif``, ``confidence.tif``, ``observations.tif``, ``polygons.fgb``,
    ``tiles.pmtiles``, ``item.json``) and its incremental state (``state.json``,
    ``state-<generation>.tif``)."""
    return f"{composites_prefix(model, version, period)}tile={tile_id(tile)}/"


def work_prefix(
    product: str, run: str, model: str | None = None, version: int | str | None = None
) -> str:
    """``work/<product_id>/<run>/``: intermediate chips and shard predictions; with a model
    version, its own ``model=<name>/version=<n>/`` below it.

    Two versions of one product can run under one run id (the scheduler's ``daily-<day>``
    fired again after a rollout switched the version): each needs its own chips, shard
    predictions and clean-up, or one version's vectorize would read the other's predictions
    and remove its inputs."""
    prefix = f"{WORK}/{product_id(product)}/{run_id(run)}/"
    if model is None and version is None:
        return prefix
    if model is None or version is None:
        raise InvalidKey(f"{model}/{version}", "a model version needs both name and version")
    return f"{prefix}{_model_partition(model, version)}/"


@dataclass(frozen=True)
class PartitionedKey:
    """The parts of a ``<kind>/model=/version=/date=/<product_id>.<ext>`` key."""

    kind: str
    model: str
    version: int
    date: dt.date
    product_id: str


_PARTITIONED = re.compile(
    r"^(?P<kind>[a-z]+)/model=(?P<model>[^/]+)/version=(?P<version>[^/]+)"
    r"/date=(?P<date>[^/]+)/(?P<product>[^/]+)\.(?:tif|fgb|pmtiles|json)$"
)


def parse_partitioned_key(key: str) -> PartitionedKey:
    """Split a segmentation/polygons/tiles/catalog/records key back into its parts."""
    match = _PARTITIONED.match(key)
    if not match:
        raise InvalidKey(key, "not a model/version/date partitioned key")
    return PartitionedKey(
        kind=match["kind"],
        model=model_name(match["model"]),
        version=model_version(match["version"]),
        date=acquisition_date(match["date"]),
        product_id=product_id(match["product"]),
    )
