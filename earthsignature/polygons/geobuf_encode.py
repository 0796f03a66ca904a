"""Fast geobuf encoding of polygon tables: the protobuf wire bytes built with numpy.

The ``geobuf`` package encodes coordinate by coordinate in Python; here all coordinates of a
table are scaled, delta-encoded per ring, zigzagged and varint-encoded in a few array
operations, and each feature is assembled from byte slices. The output is a
``geobufproto.Data`` holding a FeatureCollection, decoded by ``geobuf.decode`` to the same
GeoJSON as ``geobuf.encode`` of the equivalent dict: same keys order, one value per property
per feature, integral floats as integers, rings without their closing point.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import shapely

from earthsignature.polygons.table import PolygonTable

_POLYGON, _MULTIPOLYGON = 3, 6
_GEOBUF_TYPE = {_POLYGON: 4, _MULTIPOLYGON: 5}


def varint(value: int) -> bytes:
    """One unsigned protobuf varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (``tag`` is the whole key byte)."""
    return bytes((tag,)) + varint(len(payload)) + payload


def _packed(tag: int, values: Iterable[int]) -> bytes:
    return _field(tag, b"".join(varint(v) for v in values))


_THRESHOLDS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint bytes of many unsigned values at once, and the byte count of each."""
    v = values.astype(np.uint64)
    sizes = np.searchsorted(_THRESHOLDS, v, side="right") + 1
    width = int(sizes.max()) if len(v) else 1
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    groups = (v[:, None] >> shifts).astype(np.uint8) & np.uint8(0x7F)
    column = np.arange(width)
    groups |= (column < sizes[:, None] - 1).view(np.uint8) << np.uint8(7)  # more bytes follow
    return groups[column < sizes[:, None]], sizes


def zigzag(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).view(np.uint64)


def _int_value(value: int) -> bytes:
    if 0 <= value < 1 << 64:
        return b"\x18" + varint(value)  # pos_int_value
    if -(1 << 64) < value < 0:
        return b"\x20" + varint(-value)  # neg_int_value
    return b"\x11" + struct.pack("<d", float(value))


def value_bytes(value: Any) -> bytes:
    """A geobuf Value message with the geobuf encoder's type rules (None: an empty Value)."""
    if isinstance(value, dict | list):
        return _field(0x32, json.dumps(value, separators=(",", ":")).encode())
    if isinstance(value, str):
        return _field(0x0A, value.encode())
    if isinstance(value, float):
        if math.isnan(value):  # a FlatGeobuf null (e.g. no confidence): an empty Value
            return b""
        return _int_value(int(value)) if value.is_integer() else b"\x11" + struct.pack("<d", value)
    if isinstance(value, bool):
        return b"\x28\x01" if value else b"\x28\x00"
    if isinstance(value, int):
        return _int_value(value)
    return b""


class _Keys:
    """The Data message's key table, in order of first use."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        return self.index.setdefault(key, len(self.index))


def _column_values(column: np.ndarray) -> list[bytes]:
    """Each row's ``values`` field (tag 13) of one column; repeated values encoded once."""
    values = column.tolist()
    try:
        encoded = {v: value_field(v) for v in set(values)}
    except TypeError:  # unhashable values (JSON objects): one by one
        return [value_field(v) for v in values]
    return [encoded[v] for v in values]


def _coordinates(
    geometries: np.ndarray, kinds: np.ndarray, precision: int
) -> tuple[bytes, list[int], dict[int, list[int]]]:
    """Varint bytes of every delta/zigzag coordinate, byte offset of each feature, and the
    geobuf ``lengths`` of the features that need them (holes, several polygons)."""
    kind, coords, offsets = shapely.to_ragged_array(geometries, include_z=False)
    if kind == shapely.GeometryType.POLYGON:
        ring_offsets, polygon_offsets = offsets
        geometry_offsets = np.arange(len(geometries) + 1)
    else:
        ring_offsets, polygon_offsets, geometry_offsets = offsets
    ring_offsets = np.asarray(ring_offsets, dtype=np.int64)
    polygon_offsets = np.asarray(polygon_offsets, dtype=np.int64)
    geometry_offsets = np.asarray(geometry_offsets, dtype=np.int64)
    n_rings = len(ring_offsets) - 1
    keep = np.ones(len(coords), dtype=bool)
    keep[ring_offsets[1:] - 1] = False  # closing points are implied
    scaled = np.rint(coords[keep] * 10.0**precision).astype(np.int64)
    starts = ring_offsets[:-1] - np.arange(n_rings)  # ring starts without closing points
    deltas = scaled.copy()
    deltas[1:] -= scaled[:-1]
    deltas[starts] = scaled[starts]
    data, sizes = varints(zigzag(deltas.ravel()))
    value_ends = np.concatenate([[0], np.cumsum(sizes)])
    point_ends = np.concatenate([starts, [len(scaled)]])
    byte_offsets = value_ends[2 * point_ends[polygon_offsets[geometry_offsets]]].tolist()
    rings = np.diff(polygon_offsets)
    polygons = np.diff(geometry_offsets)
    first_rings = rings[geometry_offsets[:-1]]
    simple = (first_rings == 1) & ((kinds == _POLYGON) | (polygons == 1))
    lengths = {}
    points = np.diff(ring_offsets) - 1
    for g in np.flatnonzero(~simple).tolist():
        p0, p1 = geometry_offsets[g], geometry_offsets[g + 1]
        if kinds[g] == _POLYGON:
            lengths[g] = points[polygon_offsets[p0] : polygon_offsets[p0 + 1]].tolist()
            continue
        out = [int(p1 - p0)]
        for p in range(p0, p1):
            out.append(int(rings[p]))
            out.extend(points[polygon_offsets[p] : polygon_offsets[p + 1]].tolist())
        lengths[g] = out
    return data.tobytes(), byte_offsets, lengths


_SMALL = [varint(n) for n in range(1 << 14)]


#: A Feature field's key (``features``, tag 1 of FeatureCollection) and length, by length.
_FRAMES = [b"\n" + size for size in _SMALL]


def _size(n: int) -> bytes:
    return _SMALL[n] if n < 16384 else varint(n)


def geometry_fields(geometries: np.ndarray, precision: int = 7) -> list[bytes]:
    """Each polygon's Feature ``geometry`` field (tag 1, with its length), from whole arrays."""
    if len(geometries) == 0:
        return []
    kinds = shapely.get_type_id(geometries)
    data, offsets, lengths = _coordinates(geometries, kinds, precision)
    heads = {k: bytes((0x08, t)) for k, t in _GEOBUF_TYPE.items()}
    out = []
    for g, kind in enumerate(kinds.tolist()):
        coords = data[offsets[g] : offsets[g + 1]]
        parts = [heads[kind], b"\x1a", _size(len(coords)), coords]
        if g in lengths:
            parts[1:1] = [_packed(0x12, lengths[g])]
        geometry = b"".join(parts)
        out.append(b"\n" + _size(len(geometry)) + geometry)
    return out


def value_field(value: Any) -> bytes:
    """One Feature ``values`` entry (tag 13) as the encoder writes it."""
    return _field(0x6A, value_bytes(value))


_DOUBLE = struct.Struct("<d")


def area_fields(values: np.ndarray) -> list[bytes]:
    """:func:`value_field` of each of many non-negative floats (the same bytes, faster)."""
    out = []
    for v in values.tolist():
        if v.is_integer() and 0 <= v < 1 << 63:
            value = b"\x18" + varint(int(v))
            out.append(b"\x6a" + _size(len(value)) + value)
        elif math.isnan(v) or v < 0 or math.isinf(v):
            out.append(value_field(v))
        else:
            out.append(b"\x6a\x09\x11" + _DOUBLE.pack(v))
    return out


def feature_bodies(table: PolygonTable, precision: int = 7) -> list[bytes]:
    """Each row's Feature message body without its ``properties`` key indices (tag 14).

    The key indices depend on the collection's key table, so :func:`encode_bodies` appends
    them; bodies can thus be stored once (``polygons/encoded``) and reused in any collection.
    """
    geometries = geometry_fields(table.geometries, precision)
    if not table.columns:
        return geometries
    columns = [_column_values(c) for c in table.columns]
    return [g + b"".join(v) for g, *v in zip(geometries, *columns, strict=True)]


def encode_bodies(
    bodies: list[bytes],
    names: Iterable[str],
    collection_properties: Mapping[str, Any],
    precision: int = 7,
) -> bytes:
    """A serialized ``geobufproto.Data`` FeatureCollection of Feature bodies.

    ``names`` are the bodies' property names in value order (the table's columns); the
    collection's key table lists ``collection_properties`` first, then those names.
    """
    keys = _Keys()
    custom_values = []
    custom_pairs = []
    for i, (name, value) in enumerate(collection_properties.items()):
        custom_pairs += [keys(name), i]
        custom_values.append(value_field(value))
    pieces: list[bytes] = []
    if bodies:
        pairs = []
        for j, name in enumerate(names):
            pairs += [keys(name), j]
        properties = _packed(0x72, pairs) if pairs else b""
        extra = len(properties)
        # each feature: its field key and length, its body, the key indices (list slices: no
        # Python loop around each body's three pieces)
        pieces = [properties] * (3 * len(bodies))
        pieces[0::3] = [
            _FRAMES[n] if n < len(_FRAMES) else b"\n" + varint(n)
            for n in [len(body) + extra for body in bodies]
        ]
        pieces[1::3] = bodies
    collection = b"".join(pieces) + b"".join(custom_values)
    if custom_pairs:
        collection += _packed(0x7A, custom_pairs)
    head = b"".join(_field(0x0A, key.encode()) for key in keys.index)
    head += b"\x10\x02\x18" + varint(precision)
    return head + _field(0x22, collection)


def encode_table(
    table: PolygonTable, collection_properties: Mapping[str, Any], precision: int = 7
) -> bytes:
    """A serialized ``geobufproto.Data`` FeatureCollection of the table's rows.

    ``collection_properties`` become the collection's custom properties (as top-level members
    of the decoded GeoJSON), the columns each feature's properties.
    """
    bodies = feature_bodies(table, precision)
    return encode_bodies(bodies, table.names, collection_properties, precision)
