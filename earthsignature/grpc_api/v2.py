"""SnapEarth API V2, both revisions (``snapearth.api.v2.database`` R1, ``snapearth.api.v2`` R2).

Requests carry V1's filters (wkt, dates, product ids, integer categories, n_results); the model
version comes from the call metadata as in V1. Answers are geobuf FeatureCollections.
ListSegmentation streams, newest product first, the product's polygons clipped to the area and
filtered by category, at most :data:`FEATURES_PER_MESSAGE` features per message: from the
polygons pre-encoded at publish (:mod:`~earthsignature.polygons.encoded`, only edge polygons
clipped and re-encoded) or else read from FlatGeobuf by bounding box and encoded from whole
arrays by :mod:`~earthsignature.polygons.geobuf_encode` (same bytes as the ``geobuf`` package).
With no filter at all it answers the newest products, at most n_results (default and cap of the
server). ListProductIds streams the matching products, :data:`PRODUCTS_PER_MESSAGE` Features per
FeatureCollection. CreateProduct takes a product Feature whose properties hold the two rasters
as base64 GeoTIFF text (``segmentation``, ``cloud_mask``); see the proto.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import grpc
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from earthsignature.grpc_api import vectors
from earthsignature.grpc_api.errors import BadRequest, CorruptProducts, handle_errors
from earthsignature.grpc_api.index import IndexedProduct
from earthsignature.grpc_api.query import (
    encode_geobuf,
    feature_from_geobuf,
    fields_query,
    resolve_limit,
)
from earthsignature.grpc_api.state import ApiState
from earthsignature.grpc_api.v1 import decode_base64, upload_from_feature
from earthsignature.polygons.area import Area
from earthsignature.polygons.encoded import PRECISION, Encoded, Located, finish, locate
from earthsignature.polygons.geobuf_encode import encode_bodies, feature_bodies, varint
from earthsignature.storage.errors import CorruptObject, ObjectNotFound

log = logging.getLogger(__name__)

#: Polygons per streamed FeatureCollection, so one message stays well under size limits.
FEATURES_PER_MESSAGE = 5000
#: Products whose polygons are clipped together (one clip of their edge polygons, not one each);
#: a batch's answers are held until streamed.
PRODUCTS_PER_BATCH = 10
#: Products per ListProductIds FeatureCollection.
PRODUCTS_PER_MESSAGE = 1000


def _iso(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else ""


def product_properties(product: IndexedProduct) -> dict[str, Any]:
    row = product.row
    return {
        "product_id": row.product_id,
        "datetime": _iso(product.datetime),
        "model": row.model,
        "version": row.version,
        "cloud_cover": float(row.cloud_cover) if row.cloud_cover is not None else -1.0,
    }


def product_feature(product: IndexedProduct) -> dict[str, Any]:
    """A product as a GeoJSON Feature: its footprint and catalog properties."""
    entry = product.entry
    return {
        "type": "Feature",
        "id": entry.product_id,
        "geometry": mapping(product.footprint),
        "properties": {
            **product_properties(product),
            "created": _iso(entry.created),
            "published": _iso(entry.published),
            "categories": [int(c) for c in entry.categories],
        },
    }


def serialized_response(geobuf: bytes) -> bytes:
    """A serialized ``SegmentationResponse`` holding serialized geobuf ``Data`` (field 1).

    The server's response serializer passes bytes through (``server._serialize``), so the
    polygons are neither parsed into a message nor serialized again (about 0.66 MB per answer
    of ten products); the bytes are the message's, as ``SerializeToString`` would write them.
    """
    return b"\n" + varint(len(geobuf)) + geobuf


class DatabaseProductService:
    """The V2 servicer of one revision (its generated messages)."""

    def __init__(self, state: ApiState, messages: ModuleType) -> None:
        self.state = state
        self.messages = messages

    @handle_errors
    def ListSegmentation(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        settings = self.state.settings
        n_results = request.n_results if request.HasField("n_results") else None
        limit = resolve_limit(n_results, settings.api_default_results, settings.api_max_results)
        query = fields_query(request, self.state.model_for(context))
        corrupt, served, found, at = CorruptProducts(), 0, self.state.find(query), 0
        area = Area(query.aoi) if query.aoi is not None and found else None
        while served < limit and at < len(found) and context.is_active():
            batch = found[at : at + min(PRODUCTS_PER_BATCH, limit - served)]
            at += len(batch)
            with self.state.geos.request():
                answers = self._answers(batch, area, query.categories, corrupt)
            for product, answer in answers:
                if answer is None:
                    continue  # a skipped product leaves its place to the next one
                if not context.is_active():
                    break
                served += 1
                bodies = answer.bodies
                parts = max(1, -(-len(bodies) // FEATURES_PER_MESSAGE))
                for part in range(1, parts + 1):
                    chunk = bodies[(part - 1) * FEATURES_PER_MESSAGE : part * FEATURES_PER_MESSAGE]
                    custom = {**product_properties(product), "part": part, "parts": parts}
                    encoded = encode_bodies(chunk, answer.names, custom, answer.precision)
                    yield serialized_response(encoded)
        corrupt.raise_if_any()

    def _answers(
        self,
        batch: list[IndexedProduct],
        area: Area | None,
        categories: frozenset[int],
        corrupt: CorruptProducts,
    ) -> list[tuple[IndexedProduct, Encoded | None]]:
        """Each product's polygon bodies (None: skipped, its object corrupt): pre-encoded ones
        clipped together (:func:`~earthsignature.polygons.encoded.finish`), the others, and
        those whose pre-encoded object is unusable, from the FlatGeobuf. The edge polygons'
        intersections use the idle cores (``state.geos``) while this is the only request."""
        located = {}
        if area is not None:
            for i, product in enumerate(batch):
                found = self._located(product, area, categories)
                if found is not None:
                    located[i] = found
        finished = dict(zip(located, finish(list(located.values())), strict=True))
        aoi = area.geometry if area is not None else None
        answers: list[tuple[IndexedProduct, Encoded | None]] = []
        for i, product in enumerate(batch):
            answer = finished.get(i)
            if answer is None:
                with corrupt.skipping(product.row.product_id):
                    answer = self._flatgeobuf(product, aoi, categories)
            answers.append((product, answer))
        return answers

    def _located(
        self, product: IndexedProduct, aoi: Area, categories: frozenset[int]
    ) -> Located | None:
        """The product's pre-encoded polygons meeting ``aoi``; None when it has none or they
        are unusable (logged)."""
        try:
            key = product.asset("encoded")
        except KeyError:
            return None  # published before pre-encoding, a composite: the FlatGeobuf path
        try:
            headers, token = self.state.encoded_headers, product.row.published
            threads = self.state.geos
            return locate(self.state.store, key, aoi, categories, headers, token, threads)
        except (CorruptObject, ObjectNotFound) as exc:
            log.warning("%s: pre-encoded polygons unusable (%s)", product.product_id, exc)
            return None

    def _flatgeobuf(
        self, product: IndexedProduct, aoi: BaseGeometry | None, categories: frozenset[int]
    ) -> Encoded:
        table = vectors.read_table(self.state.store, product.asset("polygons"), aoi, categories)
        return Encoded(table.names, feature_bodies(table), PRECISION)

    @handle_errors
    def ListProductIds(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        query = fields_query(request, self.state.model_for(context))
        found = self.state.find(query)
        for start in range(0, len(found), PRODUCTS_PER_MESSAGE):
            if not context.is_active():
                return
            chunk = found[start : start + PRODUCTS_PER_MESSAGE]
            collection = {
                "type": "FeatureCollection",
                "features": [product_feature(product) for product in chunk],
            }
            yield self.messages.SegmentationResponse(segmentation=encode_geobuf(collection))

    @handle_errors
    def CreateProduct(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not request.HasField("product"):
            raise BadRequest("product is missing: give a geobuf Feature")
        _geometry, props = feature_from_geobuf(request.product, "product")
        rasters = {}
        for name in ("segmentation", "cloud_mask"):
            value = props.get(name)
            if not isinstance(value, str):
                raise BadRequest(
                    f"the product's properties must include {name} as base64 GeoTIFF text"
                )
            rasters[name] = decode_base64(value, name)
        upload = upload_from_feature(
            props, rasters["segmentation"], rasters["cloud_mask"], self.state, context
        )
        self.state.create(upload)
        return self.messages.CreateProductResponse()
