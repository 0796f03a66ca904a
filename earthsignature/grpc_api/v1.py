"""SnapEarth API V1 (``snapearth.api.v1.database.DatabaseProductService``).

Rasters travel as base64 GeoTIFF text in string fields, clipped to the request's area by
windowed reads of the stored COGs. Responses are streamed newest acquisition first; the model
version is the server's unless the call metadata names one (``x-earthsig-model``,
``x-earthsig-version``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from shapely.geometry.base import BaseGeometry

from earthsignature.grpc_api import cql, ingest, rasters
from earthsignature.grpc_api.errors import BadRequest, handle_errors
from earthsignature.grpc_api.index import IndexedProduct
from earthsignature.grpc_api.query import (
    Query,
    check_area,
    check_dates,
    feature_from_geobuf,
    parse_categories,
    parse_model,
    parse_product_ids,
    parse_time,
    parse_wkt,
    resolve_limit,
)
from earthsignature.grpc_api.state import ApiState, require_area_or_ids
from earthsignature.proto.stubs import v1_pb2, v1_pb2_grpc


def timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(dt.UTC))
    return stamp


def _time(request: Any, name: str) -> dt.datetime | None:
    if not request.HasField(name):
        return None
    stamp = getattr(request, name)
    try:
        return stamp.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise BadRequest(
            f"{name} (seconds={stamp.seconds}, nanos={stamp.nanos}) is outside "
            "0001-01-01 .. 9999-12-31"
        ) from None


def upload_from_feature(
    data: Any, segmentation: str, cloud_mask: str, state: ApiState, context: grpc.ServicerContext
) -> ingest.Upload:
    """An Upload from a geobuf Feature (metadata) and two base64 GeoTIFFs."""
    _footprint, props = feature_from_geobuf(data, "data")  # publish traces the footprint
    if not props.get("product_id"):
        raise BadRequest("the feature's properties must include product_id")
    if not props.get("datetime"):
        raise BadRequest("the feature's properties must include datetime (acquisition)")
    model = parse_model(props.get("model"), props.get("version"), state.model_for(context))
    return ingest.Upload(
        product_id=next(iter(parse_product_ids([props["product_id"]]))),
        acquired=parse_time(props["datetime"], "datetime"),
        model=model.model,
        version=model.version,
        segmentation=decode_base64(segmentation, "segmentation"),
        cloud_mask=decode_base64(cloud_mask, "cloud_mask"),
        tile=props.get("tile"),
        product_type=str(props.get("product_type") or "S2MSI2A"),
        published=parse_time(props["published"], "published") if props.get("published") else None,
    )


def decode_base64(text: str, name: str) -> bytes:
    if not text:
        raise BadRequest(f"{name} is empty: give a base64 GeoTIFF")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{name} is not valid base64: {exc}") from None


class DatabaseProductService(v1_pb2_grpc.DatabaseProductServiceServicer):
    """The V1 servicer."""

    def __init__(self, state: ApiState) -> None:
        self.state = state

    def _limit(self, n_results: int | None) -> int:
        settings = self.state.settings
        return resolve_limit(n_results, settings.api_default_results, settings.api_max_results)

    def _responses(
        self,
        products: Iterable[IndexedProduct],
        aoi: BaseGeometry | None,
        limit: int,
        context: grpc.ServicerContext,
    ) -> Iterator[v1_pb2.SegmentationResponse]:
        sent = 0
        max_pixels = self.state.settings.api_max_pixels
        for product in products:
            if sent >= limit or not context.is_active():
                return
            entry = product.entry
            segmentation = rasters.clip_to_base64(
                self.state.store,
                entry.assets["segmentation"],
                aoi,
                max_pixels=max_pixels,
            )
            if segmentation is None:
                continue  # the footprint meets the area but the raster's pixels do not
            cloud = rasters.clip_to_base64(
                self.state.store, entry.assets["cloud_mask"], aoi, max_pixels=max_pixels, nbits=1
            )
            sent += 1
            yield v1_pb2.SegmentationResponse(
                wkt=product.footprint.wkt,
                segmentation=segmentation,
                cloud_mask=cloud or "",
                product_id=entry.product_id,
                product_type=str(entry.properties.get("earthsig:product_type", "")),
                publication_date=timestamp(entry.published),
                creation_date=timestamp(entry.created),
                cloud_cover=entry.cloud_cover or 0.0,
                quicklook=str(entry.properties.get("quicklook", "")),
                browse_url=str(entry.properties.get("browse_url", "")),
                download_url=str(entry.properties.get("download_url", "")),
            )

    @handle_errors
    def ListSegmentation(
        self, request: v1_pb2.ListSegmentationRequest, context: grpc.ServicerContext
    ) -> Iterator[v1_pb2.SegmentationResponse]:
        start, end = _time(request, "start_date"), _time(request, "end_date")
        check_dates(start, end)
        limit = self._limit(request.n_results if request.HasField("n_results") else None)
        query = Query(
            model=self.state.model_for(context),
            aoi=parse_wkt(request.wkt) if request.HasField("wkt") and request.wkt else None,
            start=start,
            end=end,
            product_ids=parse_product_ids(request.product_ids),
            categories=parse_categories(request.categories),
        )
        require_area_or_ids(query)
        yield from self._responses(self.state.find(query), query.aoi, limit, context)

    @handle_errors
    def SearchSegmentation(
        self, request: v1_pb2.SearchSegmentationRequest, context: grpc.ServicerContext
    ) -> Iterator[v1_pb2.SegmentationResponse]:
        search = cql.parse(request.query)
        check_area(search.aoi, self.state.settings.api_max_area_km2)
        limit = self._limit(request.n_results if request.HasField("n_results") else None)
        model = self.state.model_for(context)
        candidates = self.state.index.search(
            None if search.names_model else model.model,
            None if search.names_model else model.version,
        )
        matching = (p for p in candidates if search.matches(p))
        yield from self._responses(matching, search.aoi, limit, context)

    @handle_errors
    def ListProductIds(
        self, request: v1_pb2.ListProductIdsRequest, context: grpc.ServicerContext
    ) -> Iterator[v1_pb2.ProductId]:
        start, end = _time(request, "start_date"), _time(request, "end_date")
        check_dates(start, end)
        query = Query(
            model=self.state.model_for(context),
            aoi=parse_wkt(request.wkt) if request.HasField("wkt") and request.wkt else None,
            start=start,
            end=end,
            categories=parse_categories(request.categories),
        )
        for product in self.state.find(query):
            if not context.is_active():
                return
            yield v1_pb2.ProductId(
                wkt=product.footprint.wkt,
                product_id=product.entry.product_id,
                publication_date=timestamp(product.entry.published),
                creation_date=timestamp(product.entry.created),
            )

    @handle_errors
    def CreateProduct(
        self, request: v1_pb2.CreateProductRequest, context: grpc.ServicerContext
    ) -> v1_pb2.CreateProductResponse:
        upload = upload_from_feature(
            request.data, request.segmentation, request.cloud_mask, self.state, context
        )
        self.state.create(upload)
        return v1_pb2.CreateProductResponse()
