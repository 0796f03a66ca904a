"""What both API versions share: settings, the store, the index, model selection, ingestion."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from earthsignature.grpc_api import ingest
from earthsignature.grpc_api.auth import (
    WRITE_METHODS,
    metadata_value,
    require_read_token,
    require_token,
)
from earthsignature.grpc_api.errors import BadRequest
from earthsignature.grpc_api.index import IndexedProduct, ProductIndex
from earthsignature.grpc_api.query import ModelVersion, Query, check_area, parse_model
from earthsignature.polygons.encoded import HeaderCache
from earthsignature.polygons.threads import GeosThreads
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.catalog import CatalogEntry

#: Call metadata keys a V1 call uses to choose a model version.
MODEL_HEADER = "x-earthsig-model"
VERSION_HEADER = "x-earthsig-version"


@dataclass
class ApiState:
    """Shared by the V1 and V2 servicers of one server."""

    settings: Settings
    store: ObjectStore
    index: ProductIndex
    #: Parsed headers of pre-encoded polygon objects, shared by the V2 servicers.
    encoded_headers: HeaderCache = field(default_factory=HeaderCache)
    #: Threads a lone V2 request spreads its polygon clipping over (one pool per process).
    geos: GeosThreads = field(default_factory=GeosThreads)

    @property
    def default_model(self) -> ModelVersion:
        return ModelVersion(self.settings.model_name, self.settings.model_version)

    def model_for(self, context: grpc.ServicerContext) -> ModelVersion:
        """The server default, or what the call metadata names (x-earthsig-model/-version)."""
        return parse_model(
            metadata_value(context, MODEL_HEADER),
            metadata_value(context, VERSION_HEADER),
            self.default_model,
        )

    def find(self, query: Query) -> list[IndexedProduct]:
        """Products matching a query, newest first, at most ``query.limit``."""
        check_area(query.aoi, self.settings.api_max_area_km2)
        found = self.index.search(
            query.model.model,
            query.model.version,
            aoi=query.aoi,
            start=query.start,
            end=query.end,
            product_ids=query.product_ids,
            categories=query.categories,
        )
        return found if query.limit is None else found[: query.limit]

    def check_access(self, method: str, context: grpc.ServicerContext) -> None:
        """Before any servicer method runs: writes need the token, reads the read token if set."""
        if method in WRITE_METHODS:
            require_token(context, self.settings.api_token)
        else:
            require_read_token(context, self.settings.api_read_token, self.settings.api_token)

    def create(self, upload: ingest.Upload) -> CatalogEntry:
        """Ingest and index the product at once (visible before the next refresh)."""
        entry = ingest.ingest(Runtime(settings=self.settings, store=self.store), upload)
        self.index.add(entry)
        return entry


def require_area_or_ids(query: Query) -> None:
    if query.aoi is None and not query.product_ids:
        raise BadRequest("give an area (wkt / query geometry) or product_ids")
