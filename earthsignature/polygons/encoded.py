"""Polygons pre-encoded as geobuf at publish, so a V2 query only clips the area's edge polygons.

Published beside the FlatGeobuf (``encoded/model=.../version=.../date=.../<product>.gbx``,
the catalog asset ``encoded``), in the FlatGeobuf's feature order (its Hilbert order, so nearby
polygons are stored together), cut into blocks of :data:`BLOCK` features:

- ``MAGIC``, the header's length (uint64 LE), the header (JSON: ``precision``, ``names``, the
  feature ``count``, ``blocks``), each block's bounding box (float64 x 4) and the blocks' byte
  offsets from the end of that table (uint64, one more than blocks);
- per block, all little-endian: its feature count n (uint32); each feature's bounding box
  (float64 x 4), code (int32) and the start and end of its ``area_m2`` value inside its body
  (uint32 x 2, the one value a clipped polygon changes); the n + 1 offsets (uint32) into the
  block's WKB blob, then those into its bodies blob; the WKB blob; the bodies blob. A body is
  the feature's geobuf Feature message without the key indices
  (:func:`~earthsignature.polygons.geobuf_encode.feature_bodies`: the geometry field, then the
  values, ``area_m2`` computed as the query computes it).

A query reads the header (kept parsed in a :class:`HeaderCache`: committed objects never
change) and the blocks meeting the area's bounding box (range reads), copies the bodies of
polygons whose box lies inside the area (:func:`locate`), and clips and re-encodes the others
as :func:`~earthsignature.polygons.table.clip` does (the intersections perhaps in another thread,
:mod:`~earthsignature.polygons.threads`), the edge polygons of several products at once
(:func:`finish`), exactly as the FlatGeobuf path
(:func:`~earthsignature.grpc_api.vectors.read_table` + ``feature_bodies``) would: the same
features in the same order, the same bytes.

This module is the format, below both its writer (publish) and its reader (the V2 API).
"""

from __future__ import annotations

import json
import shutil
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from itertools import compress
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import shapely
from shapely.geometry.base import BaseGeometry

from earthsignature.polygons.area import Area
from earthsignature.polygons.geobuf_encode import (
    area_fields,
    feature_bodies,
    geometry_fields,
    value_field,
)
from earthsignature.polygons.table import PolygonTable, assemble, equal_area_m2, intersect
from earthsignature.polygons.table import crossing as table_crossing
from earthsignature.polygons.threads import GeosThreads
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.errors import CorruptObject

MAGIC = b"ESGBX1\n\0"
#: Features per block: a 10 x 10 km query of a 110 km tile reads a few dozen blocks.
BLOCK = 64
#: Bytes read first (header and block table of products up to ~1,500 blocks).
FIRST_READ = 1 << 16
PRECISION = 7
AREA = "area_m2"
CODE = "code"
_BBOX = 32  # float64 x 4


@dataclass(frozen=True)
class Encoded:
    """Feature bodies of one product inside an area, and their property names."""

    names: tuple[str, ...]
    bodies: list[bytes]
    precision: int


def _blob(parts: list[bytes]) -> tuple[np.ndarray, bytes]:
    offsets = np.zeros(len(parts) + 1, dtype="<u4")
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return offsets, b"".join(parts)


#: Features read from the FlatGeobuf at a time (a multiple of :data:`BLOCK`, so blocks never
#: straddle two chunks): the writer's
#: memory is one chunk's geometries and bodies, whatever the product's size (a whole
#: full-tile FlatGeobuf read at once peaked at 1.27 GB).
CHUNK = BLOCK * 64


def write_encoded(fgb: Path, dst: Path) -> bool:
    """Write the pre-encoded polygons of a published FlatGeobuf; False (nothing written) when
    it lacks the ``code`` or ``area_m2`` field.

    Streams the FlatGeobuf :data:`CHUNK` features at a time (in its stored order) into a
    scratch file of blocks beside ``dst``, then writes the header, the block table and the
    blocks; the scratch file is removed either way."""
    info = pyogrio.read_info(fgb)
    names = tuple(str(n) for n in info["fields"])
    if CODE not in names or AREA not in names or info["geometry_type"] is None:
        return False
    count = int(info["features"])
    scratch = dst.with_name(dst.name + ".blocks")
    block_boxes: list[np.ndarray] = []
    sizes: list[int] = []
    try:
        with scratch.open("wb") as out:
            step = max(CHUNK // BLOCK, 1) * BLOCK
            for skip in range(0, count, step):
                _meta, _fids, wkb, columns = pyogrio.raw.read(
                    fgb, skip_features=skip, max_features=step
                )
                for box, block in _encode_blocks(names, wkb, list(columns)):
                    block_boxes.append(box)
                    sizes.append(len(block))
                    out.write(block)
        header = json.dumps(
            {"precision": PRECISION, "names": names, "count": count, "blocks": len(sizes)}
        ).encode()
        offsets = np.zeros(len(sizes) + 1, dtype="<u8")
        np.cumsum(sizes, out=offsets[1:])
        with dst.open("wb") as out, scratch.open("rb") as blocks:
            out.write(MAGIC + struct.pack("<Q", len(header)) + header)
            out.write(np.array(block_boxes, dtype="<f8").reshape(-1, 4).tobytes())
            out.write(offsets.tobytes())
            shutil.copyfileobj(blocks, out, 1 << 20)
    finally:
        scratch.unlink(missing_ok=True)
    return True


def _encode_blocks(
    names: tuple[str, ...], wkb: np.ndarray, columns: list[np.ndarray]
) -> Iterator[tuple[np.ndarray, bytes]]:
    """Each block of :data:`BLOCK` features of one chunk: its bounding box and its bytes."""
    geometries = shapely.from_wkb(wkb)
    columns[names.index(AREA)] = np.round(equal_area_m2(geometries), 1)
    bodies = feature_bodies(PolygonTable(geometries, names, tuple(columns)), PRECISION)
    heads = [len(g) for g in geometry_fields(geometries, PRECISION)]
    # the area value sits after the geometry and the values of the columns before it
    before = [0] * len(bodies)
    for column in columns[: names.index(AREA)]:
        for i, v in enumerate(column.tolist()):
            before[i] += len(value_field(v))
    area_at = np.array(heads, dtype=np.int64) + np.array(before, dtype=np.int64)
    area_len = np.array([len(value_field(v)) for v in columns[names.index(AREA)].tolist()])
    splits = np.column_stack([area_at, area_at + area_len]).astype("<u4")
    bounds = shapely.bounds(geometries).astype("<f8")
    codes = np.asarray(columns[names.index(CODE)]).astype("<i4")
    for start in range(0, len(bodies), BLOCK):
        stop = min(start + BLOCK, len(bodies))
        wkb_offsets, wkb_blob = _blob(list(wkb[start:stop]))
        body_offsets, body_blob = _blob(bodies[start:stop])
        box = bounds[start:stop]
        yield (
            np.array([box[:, 0].min(), box[:, 1].min(), box[:, 2].max(), box[:, 3].max()]),
            b"".join(
                (
                    struct.pack("<I", stop - start),
                    box.tobytes(),
                    codes[start:stop].tobytes(),
                    splits[start:stop].tobytes(),
                    wkb_offsets.tobytes(),
                    body_offsets.tobytes(),
                    wkb_blob,
                    body_blob,
                )
            ),
        )


@dataclass(frozen=True)
class _Header:
    """An object's header and block table: what every read of it needs first."""

    names: tuple[str, ...]
    precision: int
    boxes: np.ndarray  # per block: xmin, ymin, xmax, ymax
    offsets: np.ndarray  # per block and one more: from ``start``
    start: int  # where the blocks start

    @property
    def nbytes(self) -> int:
        return int(self.boxes.nbytes + self.offsets.nbytes) + 512


class HeaderCache:
    """Parsed headers of committed pre-encoded objects, least recently used dropped first.

    A committed object never changes under its key while its catalog record stays the same, so
    callers key entries by the object's key and a token of its record (the API: the product's
    ``published`` time, new on every re-publish). Bounded by the bytes of the block tables;
    ``hits`` and ``misses`` count lookups (a miss costs one more range read and a parse).
    """

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._bytes = 0
        self._entries: OrderedDict[Hashable, _Header] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, store: ObjectStore, key: str, token: Hashable) -> _Header:
        with self._lock:
            header = self._entries.get((key, token))
            if header is not None:
                self._entries.move_to_end((key, token))
                self.hits += 1
                return header
            self.misses += 1
        header = _header(store, key)  # outside the lock: reads of other objects go on
        with self._lock:
            if (key, token) not in self._entries and header.nbytes <= self.max_bytes:
                self._entries[(key, token)] = header
                self._bytes += header.nbytes
                while self._bytes > self.max_bytes:
                    _old, dropped = self._entries.popitem(last=False)
                    self._bytes -= dropped.nbytes
        return header

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "entries": len(self._entries),
                "bytes": self._bytes,
            }


def _header(store: ObjectStore, key: str) -> _Header:
    """Header, block boxes, block offsets and where the blocks start."""
    head = store.get_range(key, 0, FIRST_READ)
    if head[: len(MAGIC)] != MAGIC or len(head) < len(MAGIC) + 8:
        raise CorruptObject(key, "not a pre-encoded polygons object")
    (size,) = struct.unpack_from("<Q", head, len(MAGIC))
    at = len(MAGIC) + 8
    try:
        header = json.loads(head[at : at + size])
        n = int(header["blocks"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptObject(key, f"bad pre-encoded header: {exc}") from None
    table_end = at + size + n * _BBOX + (n + 1) * 8
    if table_end > len(head):
        head += store.get_range(key, len(head), table_end - len(head))
    if table_end > len(head):
        raise CorruptObject(key, "truncated pre-encoded block table")
    boxes = np.frombuffer(head, "<f8", n * 4, at + size).reshape(n, 4).copy()
    offsets = np.frombuffer(head, "<u8", n + 1, at + size + n * _BBOX).astype(np.int64)
    try:
        names = tuple(str(name) for name in header["names"])
        precision = int(header["precision"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptObject(key, f"bad pre-encoded header: {exc!r}") from None
    return _Header(names, precision, boxes, offsets, table_end)


def _meets(boxes: np.ndarray, bounds: tuple[float, ...]) -> np.ndarray:
    xmin, ymin, xmax, ymax = bounds
    return (
        (boxes[:, 0] <= xmax)
        & (boxes[:, 2] >= xmin)
        & (boxes[:, 1] <= ymax)
        & (boxes[:, 3] >= ymin)
    )


def _runs(picked: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive block numbers as (first, last + 1) runs, one range read each."""
    if len(picked) == 0:
        return []
    breaks = np.flatnonzero(np.diff(picked) != 1) + 1
    return [(int(r[0]), int(r[-1]) + 1) for r in np.split(picked, breaks)]


def read_encoded(
    store: ObjectStore,
    key: str,
    aoi: BaseGeometry | Area,
    categories: frozenset[int] = frozenset(),
    headers: HeaderCache | None = None,
    token: Hashable = None,
) -> Encoded:
    """Bodies of the product's polygons meeting ``aoi`` (of the given codes; all when empty),
    clipped to it; CorruptObject when the object is not a readable pre-encoded file.

    ``headers`` keeps parsed headers between calls (``token`` tells versions of ``key`` apart).
    """
    return finish([locate(store, key, aoi, categories, headers, token)])[0]


@dataclass(frozen=True)
class Located:
    """One product's polygons meeting an area, read but not clipped yet (see :func:`finish`)."""

    names: tuple[str, ...]
    precision: int
    bodies: list[bytes]
    edge: np.ndarray  # positions in ``bodies`` of polygons whose box crosses the area's edge
    geometries: np.ndarray  # those polygons, whole
    area_spans: np.ndarray  # their ``area_m2`` value's start and end in their body
    inside: np.ndarray  # which of them the area contains (kept as they are)
    crossing: np.ndarray  # positions of those crossing the area's edge
    intersections: Callable[[], np.ndarray]  # those polygons' intersections with the area


def locate(
    store: ObjectStore,
    key: str,
    aoi: BaseGeometry | Area,
    categories: frozenset[int] = frozenset(),
    headers: HeaderCache | None = None,
    token: Hashable = None,
    threads: GeosThreads | None = None,
) -> Located:
    """Read the polygons of ``key`` meeting ``aoi``: bodies, and the edge ones' geometries.

    Every read and every check of the object happens here (CorruptObject, ObjectNotFound), so a
    caller can fall back per product before :func:`finish` clips several products at once.
    Give an :class:`Area` when reading several products for one area (built once, not each).
    The edge polygons' intersections with the area start here, in ``threads``' pool when the
    process is otherwise idle (the caller reads the next product meanwhile), else at once.
    """
    area = Area.of(aoi)
    header = headers.get(store, key, token) if headers is not None else _header(store, key)
    names, precision, offsets, start = header.names, header.precision, header.offsets, header.start
    bounds = area.bounds
    picked = [
        _candidates(store, key, start, offsets, first, stop, bounds, categories)
        for first, stop in _runs(np.flatnonzero(_meets(header.boxes, bounds)))
    ]
    nothing = Located(names, precision, [], *_NO_EDGE)
    if not picked:
        return nothing
    data = b"".join(run.data for run in picked) if len(picked) > 1 else picked[0].data
    spans = np.concatenate([run.spans for run in picked])
    if len(picked) > 1:
        base = np.cumsum([0] + [len(run.data) for run in picked[:-1]])
        spans[:, :4] += np.repeat(base, [len(run.spans) for run in picked])[:, None]
    if len(spans) == 0:
        return nothing
    inside, edge = area.classify(np.concatenate([run.boxes for run in picked]))
    spans = spans[inside | edge]
    edge = np.flatnonzero(edge[inside | edge])
    bodies = list(map(data.__getitem__, map(slice, spans[:, 2].tolist(), spans[:, 3].tolist())))
    if len(edge) == 0:
        return Located(names, precision, bodies, *_NO_EDGE)
    try:
        geometries = shapely.from_wkb([data[a:b] for a, b in spans[edge, :2].tolist()])
    except shapely.errors.GEOSException as exc:
        raise CorruptObject(key, f"bad polygon in pre-encoded blocks: {exc}") from None
    inside_area, crossing = table_crossing(geometries, area.geometry)
    cut = geometries[crossing]
    if threads is not None:
        intersections = threads.intersection(cut, area.geometry, lambda: area.wkb, area.rectangle)
    else:
        intersections = _now(intersect(cut, area.geometry, area.rectangle))
    return Located(
        names, precision, bodies, edge, geometries, spans[edge, 4:6], inside_area, crossing,
        intersections,
    )  # fmt: skip


def _now(result: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: result


_NO_ROWS = np.empty(0, dtype=np.int64)
_NO_GEOMETRIES = np.empty(0, dtype=object)
_NO_EDGE = (
    _NO_ROWS, _NO_GEOMETRIES, np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=bool), _NO_ROWS,
    lambda: _NO_GEOMETRIES,
)  # fmt: skip


def finish(located: list[Located]) -> list[Encoded]:
    """Clip the edge polygons of several products (:func:`locate`) and splice their bodies.

    One area computation and one geobuf encoding for all the products of an answer instead of
    one each: their fixed costs are most of a small product's.
    """
    if not located:
        return []
    clipped_parts, owners, rows_parts = [], [], []
    for k, found in enumerate(located):
        if len(found.edge) == 0:
            continue
        clipped, rows = assemble(
            found.geometries, found.inside, found.crossing, found.intersections()
        )
        # polygons the area contains though their box crosses it: kept as they are (stored)
        cut = np.zeros(len(found.geometries), dtype=bool)
        cut[found.crossing] = True
        clipped_parts.append(clipped[cut[rows]])
        rows_parts.append(rows)
        owners.append(k)
    bodies = [found.bodies for found in located]
    if clipped_parts:
        clipped = np.concatenate(clipped_parts)
        areas = area_fields(np.round(equal_area_m2(clipped), 1))
        heads = iter(geometry_fields(clipped, PRECISION))
        fields = iter(areas)
        for k, rows in zip(owners, rows_parts, strict=True):
            found = located[k]
            cut = np.zeros(len(found.geometries), dtype=bool)
            cut[found.crossing] = True
            kept = list(found.bodies)
            for j in rows[cut[rows]].tolist():
                i = int(found.edge[j])
                body = kept[i]
                value_start, value_end = found.area_spans[j].tolist()
                kept[i] = b"".join(
                    (next(heads), body[_geometry_end(body) : value_start], next(fields),
                     body[value_end:])
                )  # fmt: skip
            keep = np.ones(len(kept), dtype=bool)
            keep[found.edge] = False
            keep[found.edge[rows]] = True
            bodies[k] = kept if keep.all() else list(compress(kept, keep.tolist()))
    return [
        Encoded(found.names, kept, found.precision)
        for found, kept in zip(located, bodies, strict=True)
    ]


@dataclass(frozen=True)
class _Run:
    """Consecutive blocks read at once and their features meeting the area's box."""

    data: bytes
    spans: np.ndarray  # per feature: WKB start, end, body start, end (in data), area span
    boxes: np.ndarray


def _candidates(
    store: ObjectStore,
    key: str,
    start: int,
    offsets: np.ndarray,
    first: int,
    stop: int,
    bounds: tuple[float, ...],
    categories: frozenset[int],
) -> _Run:
    """Read blocks ``first`` to ``stop`` - 1 and locate their features meeting ``bounds``."""
    length = int(offsets[stop] - offsets[first])
    data = store.get_range(key, start + int(offsets[first]), length)
    if len(data) != length:
        raise CorruptObject(key, "truncated pre-encoded blocks")
    # each block's tables, as views; then every feature of the run at once
    counts, box_parts, code_parts, split_parts, wkb_parts, body_parts, wkb_at = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    for b in range(first, stop):
        at = int(offsets[b] - offsets[first])
        (n,) = struct.unpack_from("<I", data, at)
        at += 4
        counts.append(n)
        box_parts.append(np.frombuffer(data, "<f8", n * 4, at))
        code_parts.append(np.frombuffer(data, "<i4", n, at + n * _BBOX))
        split_parts.append(np.frombuffer(data, "<u4", n * 2, at + n * (_BBOX + 4)))
        offsets_at = at + n * (_BBOX + 12)
        wkb_parts.append(np.frombuffer(data, "<u4", n + 1, offsets_at))
        body_parts.append(np.frombuffer(data, "<u4", n + 1, offsets_at + (n + 1) * 4))
        wkb_at.append(offsets_at + (2 * n + 2) * 4)  # the WKB blob, then the bodies blob
    box = np.concatenate(box_parts).reshape(-1, 4)
    wanted = _meets(box, bounds)
    if categories:
        wanted &= np.isin(np.concatenate(code_parts), np.fromiter(categories, dtype=np.int32))
    i = np.flatnonzero(wanted)
    sizes = np.array(counts, dtype=np.int64)
    block = np.repeat(np.arange(len(counts)), sizes)[i]  # each wanted feature's block
    # a feature's offsets: its block's n + 1 offsets start at (its block's number + its index)
    at = (i + block).astype(np.int64)
    wkb_ends = np.concatenate(wkb_parts).astype(np.int64)
    body_ends = np.concatenate(body_parts).astype(np.int64)
    wkb_base = np.array(wkb_at, dtype=np.int64)[block]
    body_base = wkb_base + wkb_ends[np.cumsum(sizes + 1)[block] - 1]  # + the WKB blob's size
    span = np.empty((len(i), 6), dtype=np.int64)
    span[:, 0], span[:, 1] = wkb_base + wkb_ends[at], wkb_base + wkb_ends[at + 1]
    span[:, 2], span[:, 3] = body_base + body_ends[at], body_base + body_ends[at + 1]
    span[:, 4:] = np.concatenate(split_parts).reshape(-1, 2)[i]
    return _Run(data, span, box[i])


def _geometry_end(body: bytes) -> int:
    """Length of a body's leading geometry field (tag 1, a varint length, the message)."""
    size, shift, at = 0, 0, 1
    while True:
        byte = body[at]
        size |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return at + size
        shift += 7
