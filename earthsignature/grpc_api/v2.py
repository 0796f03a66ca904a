"""SnapEarth API V2 (``snapearth.api.v2.database.DatabaseProductService``): geobuf in and out.

The query Feature is described in :mod:`earthsignature.grpc_api.query` and the proto.
ListSegmentation streams, newest product first, FeatureCollections of the product's polygons
clipped to the area and filtered by category, read from FlatGeobuf by bounding box, at most
:data:`FEATURES_PER_MESSAGE` features per message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from itertools import islice
from typing import Any

import grpc
from shapely.geometry import mapping

from earthsignature.grpc_api import vectors
from earthsignature.grpc_api.errors import BadRequest, handle_errors
from earthsignature.grpc_api.index import IndexedProduct
from earthsignature.grpc_api.query import encode_geobuf, from_feature
from earthsignature.grpc_api.state import ApiState, require_area_or_ids
from earthsignature.grpc_api.v1 import upload_from_feature
from earthsignature.proto.stubs import v2_pb2, v2_pb2_grpc

#: Polygons per streamed FeatureCollection, so one message stays well under size limits.
FEATURES_PER_MESSAGE = 5000


def _iso(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else ""


def product_properties(product: IndexedProduct) -> dict[str, Any]:
    entry = product.entry
    return {
        "product_id": entry.product_id,
        "datetime": _iso(entry.datetime),
        "model": entry.model,
        "version": entry.version,
        "cloud_cover": float(entry.cloud_cover) if entry.cloud_cover is not None else -1.0,
    }


class DatabaseProductService(v2_pb2_grpc.DatabaseProductServiceServicer):
    """The V2 servicer."""

    def __init__(self, state: ApiState) -> None:
        self.state = state

    def _query(self, request: Any, context: grpc.ServicerContext, limited: bool) -> Any:
        if not request.HasField("query"):
            raise BadRequest("query is missing: give a geobuf Feature")
        settings = self.state.settings
        return from_feature(
            request.query,
            self.state.model_for(context),
            settings.api_default_results,
            settings.api_max_results if limited else None,
        )

    @handle_errors
    def ListSegmentation(
        self, request: v2_pb2.ListSegmentationRequest, context: grpc.ServicerContext
    ) -> Iterator[v2_pb2.SegmentationResponse]:
        query = self._query(request, context, limited=True)
        require_area_or_ids(query)
        for product in self.state.find(query):
            if not context.is_active():
                return
            features = vectors.read_polygons(
                self.state.store, product.entry.assets["polygons"], query.aoi, query.categories
            )
            chunks = list(_chunks(features, FEATURES_PER_MESSAGE)) or [[]]
            for part, chunk in enumerate(chunks, start=1):
                collection = {
                    "type": "FeatureCollection",
                    "features": chunk,
                    **product_properties(product),
                    "part": part,
                    "parts": len(chunks),
                }
                yield v2_pb2.SegmentationResponse(segmentation=encode_geobuf(collection))

    @handle_errors
    def ListProductIds(
        self, request: v2_pb2.ListProductIdsRequest, context: grpc.ServicerContext
    ) -> Iterator[v2_pb2.ListProductIdsResponse]:
        query = self._query(request, context, limited=False)
        for product in self.state.find(query):
            if not context.is_active():
                return
            entry = product.entry
            feature = {
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
            yield v2_pb2.ListProductIdsResponse(product=encode_geobuf(feature))

    @handle_errors
    def CreateProduct(
        self, request: v2_pb2.CreateProductRequest, context: grpc.ServicerContext
    ) -> v2_pb2.CreateProductResponse:
        self.state.authorize(context)
        if not request.HasField("product"):
            raise BadRequest("product is missing: give a geobuf Feature")
        from earthsignature.grpc_api.query import feature_from_geobuf

        _geometry, props = feature_from_geobuf(request.product, "product")
        upload = upload_from_feature(
            request.product,
            str(props.get("segmentation") or ""),
            str(props.get("cloud_mask") or ""),
            self.state,
            context,
        )
        self.state.create(upload)
        return v2_pb2.CreateProductResponse()


def _chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    items = iter(items)
    while chunk := list(islice(items, size)):
        yield chunk
