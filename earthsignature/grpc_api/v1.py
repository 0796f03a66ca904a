"""SnapEarth API V1 of both revisions: ``snapearth.api.v1.database`` (R1), ``.v1`` (R2).

One servicer class answers both; a :class:`RasterEncoding` is all a revision changes: R1
carries the GeoTIFFs as base64 text in string fields, R2 as the file's bytes (which rpcs exist
comes from the revision's descriptor, see ``server``). Rasters are clipped to the request's
area by windowed reads of the stored COGs. Responses are streamed newest acquisition first; the
model version is the server's unless the call metadata names one (``x-earthsig-model``,
``x-earthsig-version``). A product whose stored raster cannot be read is skipped and the stream
ends with DATA_LOSS naming it (see :func:`~earthsignature.grpc_api.errors.skipping_corrupt`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from shapely.geometry.base import BaseGeometry

from earthsignature.grpc_api import cql, ingest, rasters
from earthsignature.grpc_api.errors import BadRequest, CorruptProducts, handle_errors
from earthsignature.grpc_api.index import IndexedProduct
from earthsignature.grpc_api.query import (
    check_area,
    feature_from_geobuf,
    fields_query,
    parse_model,
    parse_product_ids,
    parse_time,
    resolve_limit,
)
from earthsignature.grpc_api.state import ApiState, require_area_or_ids


@dataclass(frozen=True)
class RasterEncoding:
    """How a revision carries GeoTIFFs: out to clients and in from CreateProduct."""

    encode: Callable[[bytes], str | bytes]
    decode: Callable[[Any, str], bytes]


def decode_base64(text: str, name: str) -> bytes:
    if not text:
        raise BadRequest(f"{name} is empty: give a base64 GeoTIFF")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{name} is not valid base64: {exc}") from None


def _raw_bytes(data: bytes, name: str) -> bytes:
    if not data:
        raise BadRequest(f"{name} is empty: give the GeoTIFF file's bytes")
    return bytes(data)


#: R1: base64 text in string fields.
BASE64_TEXT = RasterEncoding(lambda tiff: base64.b64encode(tiff).decode("ascii"), decode_base64)
#: R2: the GeoTIFF file's bytes in bytes fields.
RAW_BYTES = RasterEncoding(bytes, _raw_bytes)


def timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(dt.UTC))
    return stamp


def upload_from_feature(
    props: dict[str, Any],
    segmentation: bytes,
    cloud_mask: bytes,
    state: ApiState,
    context: grpc.ServicerContext,
) -> ingest.Upload:
    """An Upload from a product Feature's properties and two GeoTIFFs.

    The Feature's geometry is not used: publish traces the footprint from the segmentation.
    """
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
        segmentation=segmentation,
        cloud_mask=cloud_mask,
        tile=props.get("tile"),
        product_type=str(props.get("product_type") or "S2MSI2A"),
        published=parse_time(props["published"], "published") if props.get("published") else None,
    )


class DatabaseProductService:
    """The V1 servicer of one revision: its generated messages and its raster encoding."""

    def __init__(self, state: ApiState, messages: ModuleType, encoding: RasterEncoding) -> None:
        self.state = state
        self.messages = messages
        self.encoding = encoding

    def _limit(self, n_results: int | None) -> int:
        settings = self.state.settings
        return resolve_limit(n_results, settings.api_default_results, settings.api_max_results)

    def _responses(
        self,
        products: Iterable[IndexedProduct],
        aoi: BaseGeometry | None,
        limit: int,
        context: grpc.ServicerContext,
    ) -> Iterator[Any]:
        sent = 0
        max_pixels = self.state.settings.api_max_pixels
        encode = self.encoding.encode
        corrupt = CorruptProducts()
        for product in products:
            if sent >= limit or not context.is_active():
                break
            entry = product.entry
            with corrupt.skipping(entry.product_id):
                segmentation = rasters.clip_to_geotiff(
                    self.state.store,
                    entry.assets["segmentation"],
                    aoi,
                    max_pixels=max_pixels,
                    classes=True,
                )
                if segmentation is None:
                    continue  # the footprint meets the area but the raster's pixels do not
                cloud = rasters.clip_to_geotiff(
                    self.state.store,
                    entry.assets["cloud_mask"],
                    aoi,
                    max_pixels=max_pixels,
                    nbits=1,
                )
            if corrupt.skipped(entry.product_id):
                continue
            sent += 1
            yield self.messages.SegmentationResponse(
                wkt=product.footprint.wkt,
                segmentation=encode(segmentation),
                cloud_mask=encode(cloud) if cloud is not None else encode(b""),
                product_id=entry.product_id,
                product_type=str(entry.properties.get("earthsig:product_type", "")),
                publication_date=timestamp(entry.published),
                creation_date=timestamp(entry.created),
                cloud_cover=entry.cloud_cover or 0.0,
                quicklook=str(entry.properties.get("quicklook", "")),
                browse_url=str(entry.properties.get("browse_url", "")),
                download_url=str(entry.properties.get("download_url", "")),
            )
        corrupt.raise_if_any()

    @handle_errors
    def ListSegmentation(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        limit = self._limit(request.n_results if request.HasField("n_results") else None)
        query = fields_query(request, self.state.model_for(context))
        require_area_or_ids(query)
        yield from self._responses(self.state.find(query), query.aoi, limit, context)

    @handle_errors
    def SearchSegmentation(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
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
    def ListProductIds(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        query = fields_query(request, self.state.model_for(context))
        for product in self.state.find(query):
            if not context.is_active():
                return
            yield self.messages.ProductId(
                wkt=product.footprint.wkt,
                product_id=product.entry.product_id,
                publication_date=timestamp(product.entry.published),
                creation_date=timestamp(product.entry.created),
            )

    @handle_errors
    def CreateProduct(self, request: Any, context: grpc.ServicerContext) -> Any:
        decode = self.encoding.decode
        _footprint, props = feature_from_geobuf(request.data, "data")
        upload = upload_from_feature(
            props,
            decode(request.segmentation, "segmentation"),
            decode(request.cloud_mask, "cloud_mask"),
            self.state,
            context,
        )
        self.state.create(upload)
        return self.messages.CreateProductResponse()
