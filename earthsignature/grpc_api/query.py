"""What a request asks for, parsed and validated once: area, dates, ids, categories, limit.

V1 and V2 requests of both revisions carry the same filters (wkt, start_date, end_date,
product_ids, categories: strings in V1, integers in V2, n_results) and become one
:class:`Query` through :func:`fields_query`, so filtering, ordering and capping are the same
everywhere. Every check raises :class:`~earthsignature.grpc_api.errors.BadRequest` with a
message saying what is wrong. Geobuf Features (CreateProduct) are decoded here too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import geobuf
import numpy as np
import shapely
from google.protobuf.message import Message
from pyproj import Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from earthsignature import corine
from earthsignature.grpc_api.errors import BadRequest, LimitExceeded
from earthsignature.proto.stubs import geobuf_pb2
from earthsignature.storage import layout
from earthsignature.storage.errors import InvalidKey

#: Most values one request may list (product_ids, categories), after splitting commas.
MAX_LIST_VALUES = 1000
#: Most vertices of one area (WKT or geobuf); bigger areas are refused before any work.
MAX_VERTICES = 100_000
#: Longest WKT text read at all (about 64 characters per vertex).
MAX_WKT_CHARS = 64 * MAX_VERTICES

#: Geobuf header values the decoder can use (it computes 10**precision and lists of dimensions).
GEOBUF_DIMENSIONS = range(2, 5)
GEOBUF_PRECISION = range(0, 16)

#: Lon/lat to an equal-area projection, for the area cap.
_EQUAL_AREA = Transformer.from_crs("EPSG:4326", "+proj=cea +ellps=WGS84", always_xy=True)


@dataclass(frozen=True)
class ModelVersion:
    """The model version a call reads (server default unless the call names one)."""

    model: str
    version: int


@dataclass(frozen=True)
class Query:
    """Filters of one call; ``limit`` is already capped (None = no limit)."""

    model: ModelVersion
    aoi: BaseGeometry | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    product_ids: frozenset[str] = frozenset()
    categories: frozenset[int] = frozenset()
    limit: int | None = None


# -- single values -------------------------------------------------------------------------


def parse_area(geometry: BaseGeometry, source: str) -> BaseGeometry | None:
    """A Polygon/MultiPolygon in lon/lat, valid; empty collections mean no area."""
    if geometry.is_empty:
        if geometry.geom_type == "GeometryCollection":
            return None
        raise BadRequest(f"{source} is empty")
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise BadRequest(f"{source} must be a POLYGON or MULTIPOLYGON, not {geometry.geom_type}")
    vertices = shapely.get_num_coordinates(geometry)
    if vertices > MAX_VERTICES:
        raise LimitExceeded(f"{source} has {vertices} vertices; the limit is {MAX_VERTICES}")
    if not np.isfinite(shapely.get_coordinates(geometry)).all():
        raise BadRequest(f"{source} has coordinates that are not finite numbers")
    if not geometry.is_valid:
        raise BadRequest(f"{source} is not a valid polygon: {shapely.is_valid_reason(geometry)}")
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise BadRequest(f"{source} must be lon/lat in EPSG:4326 (lon -180..180, lat -90..90)")
    return geometry


def parse_wkt(text: str) -> BaseGeometry:
    """The area of a WKT string (POLYGON or MULTIPOLYGON, EPSG:4326)."""
    if len(text) > MAX_WKT_CHARS:
        raise LimitExceeded(f"wkt is {len(text)} characters long; the limit is {MAX_WKT_CHARS}")
    try:
        geometry = shapely.from_wkt(text)
    except shapely.errors.GEOSException as exc:
        raise BadRequest(f"wkt is not valid WKT: {exc}") from None
    if geometry is None:
        raise BadRequest("wkt is not valid WKT")
    area = parse_area(geometry, "wkt")
    if area is None:
        raise BadRequest("wkt is an empty geometry")
    return area


def area_km2(aoi: BaseGeometry) -> float:
    """Area of a lon/lat polygon whose edges are straight in lon/lat (as the index sees it)."""
    dense = shapely.segmentize(aoi, 1.0)  # degrees: edges follow the parallels, not geodesics
    projected = shapely.transform(
        dense, lambda xy: np.column_stack(_EQUAL_AREA.transform(xy[:, 0], xy[:, 1]))
    )
    return float(projected.area) / 1e6


def check_area(aoi: BaseGeometry | None, max_km2: float | None) -> None:
    """Refuse an area larger (on the WGS84 ellipsoid) than the server's cap."""
    if aoi is None or max_km2 is None:
        return
    km2 = area_km2(aoi)
    if km2 > max_km2:
        raise LimitExceeded(f"the area is {km2:,.0f} km²; the server's limit is {max_km2:,.0f} km²")


def split_values(values: Iterable[Any], name: str = "values") -> list[str]:
    """Repeated and comma-separated values, flattened and stripped; at most MAX_LIST_VALUES."""
    out: list[str] = []
    for value in values:
        out.extend(part.strip() for part in str(value).split(",") if part.strip())
        if len(out) > MAX_LIST_VALUES:
            raise LimitExceeded(f"{name} lists more than {MAX_LIST_VALUES} values")
    return out


def parse_product_ids(values: Iterable[Any]) -> frozenset[str]:
    ids = split_values(values, "product_ids")
    for value in ids:
        try:
            layout.product_id(value)
        except InvalidKey:
            raise BadRequest(
                f"malformed product id {value!r}: ids are 1-200 of [A-Za-z0-9_.-]"
            ) from None
    return frozenset(ids)


def parse_categories(values: Iterable[Any]) -> frozenset[int]:
    codes = split_values(values, "categories")
    bad = [
        code for code in codes if not (code.isascii() and code.isdigit() and corine.is_code(code))
    ]
    if bad:
        raise BadRequest(f"unknown CORINE level-3 categories {bad[:10]} (codes are 111 ... 523)")
    return frozenset(int(code) for code in codes)


def parse_time(value: Any, name: str) -> dt.datetime:
    """An ISO 8601 date or date-time (UTC when it has no offset)."""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO 8601 string, not {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} {value!r} is not an ISO 8601 date or date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def check_dates(start: dt.datetime | None, end: dt.datetime | None) -> None:
    if start and end and start > end:
        raise BadRequest(f"start_date {start.isoformat()} is after end_date {end.isoformat()}")


def resolve_limit(n_results: int | None, default: int, cap: int) -> int:
    """The number of responses: the request's (>= 1), else the default, at most the cap."""
    if n_results is None:
        return min(default, cap)
    if isinstance(n_results, bool) or not isinstance(n_results, int):
        raise BadRequest(f"n_results must be an integer, not {n_results!r}")
    if n_results < 1:
        raise BadRequest(f"n_results must be at least 1, got {n_results}")
    return min(n_results, cap)


def parse_model(model: Any, version: Any, default: ModelVersion) -> ModelVersion:
    """The model version a call names, falling back to the server default per part."""
    try:
        name = layout.model_name(str(model)) if model not in (None, "") else default.model
        number = layout.model_version(version) if version not in (None, "") else default.version
    except (InvalidKey, OverflowError) as exc:
        raise BadRequest(f"bad model or version: {exc}") from None
    return ModelVersion(name, number)


# -- geobuf --------------------------------------------------------------------------------


def decode_geobuf(data: geobuf_pb2.Data) -> dict[str, Any]:
    """GeoJSON of a geobuf message; malformed content is a BadRequest."""
    if data.WhichOneof("data_type") is None:
        raise BadRequest("geobuf Data holds no feature, feature collection or geometry")
    if data.HasField("dimensions") and data.dimensions not in GEOBUF_DIMENSIONS:
        raise BadRequest(f"geobuf dimensions must be 2, 3 or 4, not {data.dimensions}")
    if data.precision not in GEOBUF_PRECISION:
        raise BadRequest(f"geobuf precision must be 0 ... 15, not {data.precision}")
    values = _coordinate_values(data)
    if values > 3 * MAX_VERTICES:
        raise LimitExceeded(
            f"geobuf holds {values} coordinate values; the limit is {3 * MAX_VERTICES}"
        )
    # Defaults of the proto2 schema are not on the wire; the decoder needs them explicit.
    data = _with_defaults(data)
    try:
        decoded = geobuf.decode(data.SerializePartialToString())
        json.dumps(decoded)
    except Exception as exc:  # the decoder fails with Index/Key/Type errors on bad input
        raise BadRequest(f"malformed geobuf: {type(exc).__name__}: {exc}") from None
    return dict(decoded)


def _coordinate_values(data: geobuf_pb2.Data) -> int:
    """Coordinate numbers in a geobuf message, counted before decoding it."""
    kind = data.WhichOneof("data_type")
    if kind == "geometry":
        stack = [data.geometry]
    elif kind == "feature":
        stack = [data.feature.geometry]
    else:
        stack = [f.geometry for f in data.feature_collection.features]
    count = 0
    while stack:
        geometry = stack.pop()
        count += len(geometry.coords)
        stack.extend(geometry.geometries)
    return count


def _with_defaults(data: geobuf_pb2.Data) -> geobuf_pb2.Data:
    copy = geobuf_pb2.Data()
    copy.CopyFrom(data)
    copy.precision = data.precision
    copy.dimensions = data.dimensions
    return copy


def encode_geobuf(obj: Mapping[str, Any], precision: int = 7) -> geobuf_pb2.Data:
    """A GeoJSON Feature/FeatureCollection as a geobufproto.Data message."""
    return geobuf_pb2.Data.FromString(geobuf.encode(dict(obj), precision))


def feature_from_geobuf(data: geobuf_pb2.Data, what: str) -> tuple[BaseGeometry, dict[str, Any]]:
    """The geometry and properties of a geobuf that must hold one Feature."""
    obj = decode_geobuf(data)
    if obj.get("type") != "Feature":
        raise BadRequest(f"{what} must be a geobuf Feature, not a {obj.get('type')}")
    try:
        geometry = shape(obj["geometry"])
    except Exception as exc:
        raise BadRequest(f"{what} geometry is malformed: {exc}") from None
    properties = obj.get("properties") or {}
    if not isinstance(properties, dict):
        raise BadRequest(f"{what} properties must be an object")
    return geometry, properties


def request_time(request: Message, name: str) -> dt.datetime | None:
    """A Timestamp field of a request (None when unset), as an aware datetime."""
    if not request.HasField(name):
        return None
    stamp = getattr(request, name)
    try:
        return stamp.ToDatetime(tzinfo=dt.UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError, OSError):
        raise BadRequest(
            f"{name} (seconds={stamp.seconds}, nanos={stamp.nanos}) is outside "
            "0001-01-01 .. 9999-12-31"
        ) from None


def fields_query(request: Message, model: ModelVersion, limit: int | None = None) -> Query:
    """The filters of a List* request of any version and revision (fields a request lacks,
    e.g. product_ids of ListProductIdsRequest, are no filter)."""
    start, end = request_time(request, "start_date"), request_time(request, "end_date")
    check_dates(start, end)
    wkt = getattr(request, "wkt", "")
    ids = getattr(request, "product_ids", ())
    return Query(
        model=model,
        aoi=parse_wkt(wkt) if wkt else None,
        start=start,
        end=end,
        product_ids=parse_product_ids(ids),
        categories=parse_categories(getattr(request, "categories", ())),
        limit=limit,
    )
