"""SnapEarth API V2 (``snapearth.api.v2.database.DatabaseProductService``): geobuf in and out.

The query Feature is described in :mod:`earthsignature.grpc_api.query` and the proto.
ListSegmentation streams, newest product first, FeatureCollections of the product's polygons
clipped to the area and filtered by category, read from FlatGeobuf by bounding box, at most
:data:`FEATURES_PER_MESSAGE` features per message, encoded from whole arrays by
:mod:`~earthsignature.grpc_api.geobuf_encode` (same bytes as the ``geobuf`` package's encoder).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import grpc
from shapely.geometry import mapping

from earthsignature.grpc_api import vectors
from earthsignature.grpc_api.errors import BadRequest, handle_errors
from earthsignature.grpc_api.geobuf_encode import encode_table
from earthsignature.grpc_api.index import IndexedProduct
from earthsignature.grpc_api.query import encode_geobuf, feature_from_geobuf, from_feature
from earthsignature.grpc_api.state import ApiState, require_area_or_ids
from earthsignature.grpc_api.v1 import upload_from_feature
from earthsignature.proto.stubs import geobuf_pb2, v2_pb2, v2_pb2_grpc

#: Polygons per streamed FeatureCollection, so one message stays well under size limits.
FEATURES_PER_MESSAGE = 5000


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
            table = vectors.read_table(
                self.state.store, product.asset("polygons"), query.aoi, query.categories
            )
            parts = max(1, -(-len(table) // FEATURES_PER_MESSAGE))
            for part in range(1, parts + 1):
                rows = table.rows((part - 1) * FEATURES_PER_MESSAGE, part * FEATURES_PER_MESSAGE)
                custom = {**product_properties(product), "part": part, "parts": parts}
                data = geobuf_pb2.Data.FromString(encode_table(rows, custom))
                yield v2_pb2.SegmentationResponse(segmentation=data)

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
        if not request.HasField("product"):
            raise BadRequest("product is missing: give a geobuf Feature")
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
