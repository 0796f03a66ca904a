"""Stage discover: search the STAC API for new products and make one message per product.

Products already committed for the target model version are left out; products whose scene
cloud cover (from the catalogue) is over the threshold are recorded as skipped, with the
reason, and not fetched. Items that cannot be processed at all (hostile or malformed id, no
tile, a CRS that contradicts the tile) are recorded as failed at stage ``discover`` and never
reach a key: the record is kept under the id when it is a valid one, else under
:func:`~earthsignature.storage.layout.safe_product_id`, with the original id in its details.
One bad item never stops the search.

Items come from an item source: the STAC API at ``settings.stac_api_url``, or, for a
``file://`` URL, the STAC item files in that folder (the offline demo's generated scenes).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pystac_client import Client
from shapely import wkt
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.stac import ProductRef, from_stac_item, quote_id
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import catalog, layout
from earthsignature.storage.records import OutcomeRecord, write_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    """A product discover chose not to process: why, and the figures behind it."""

    ref: ProductRef
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DiscoverResult:
    """Messages to fetch, products skipped, ids already committed, and items refused
    (original id, reason). Discover has written the record of each skipped or refused one;
    the orchestrator only reports them."""

    products: list[ProductMessage] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)


def _bound(value: dt.date | dt.datetime, *, end: bool) -> str:
    """ISO 8601 UTC; a plain date covers its whole day (so start == end is one day)."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time.max if end else dt.time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


#: Where discover's items come from: (settings, area, start, end) -> STAC item dicts whose
#: footprint intersects the area and whose datetime is in ``start..end`` (ISO 8601 UTC).
ItemSource = Callable[[Settings, BaseGeometry, str, str], Iterable[dict[str, Any]]]


def stac_api_items(
    settings: Settings, area: BaseGeometry, start: str, end: str
) -> Iterator[dict[str, Any]]:
    """Items from a search of the STAC API at ``settings.stac_api_url``."""
    search = Client.open(settings.stac_api_url).search(
        collections=[settings.stac_collection],
        intersects=mapping(area),
        datetime=f"{start}/{end}",
        limit=100,
    )
    yield from search.items_as_dicts()


def item_files(
    settings: Settings, area: BaseGeometry, start: str, end: str
) -> Iterator[dict[str, Any]]:
    """Items from the STAC item files (``*.json``) under the folder of a ``file://`` URL."""
    folder = Path(unquote(urlsplit(settings.stac_api_url).path))
    window = (dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end))
    for path in sorted(folder.rglob("*.json")):
        item = json.loads(path.read_text())
        if not isinstance(item, dict) or item.get("type") != "Feature":
            continue
        when = dt.datetime.fromisoformat(str(item["properties"]["datetime"]))
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        if window[0] <= when <= window[1] and shape(item["geometry"]).intersects(area):
            yield item


def item_source(settings: Settings) -> ItemSource:
    """The item source ``settings.stac_api_url`` names (see the module docstring)."""
    return item_files if settings.stac_api_url.startswith("file:") else stac_api_items


def discover(
    rt: Runtime,
    *,
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime,
    aoi_wkt: str | None = None,
    max_cloud: float | None = None,
    run: str,
    items: ItemSource | None = None,
) -> DiscoverResult:
    """Find the products of the area and window in ``items`` (by default the settings'
    source); see the module docstring."""
    settings = rt.settings
    area = wkt.loads(aoi_wkt or settings.aoi_wkt)
    limit = settings.cloud_threshold if max_cloud is None else max_cloud
    model, version = settings.model_name, settings.model_version
    source = items or item_source(settings)
    result = DiscoverResult()
    seen: set[str] = set()
    for raw in source(settings, area, _bound(start, end=False), _bound(end, end=True)):
        try:
            ref = from_stac_item(raw)
        except BadInput as exc:
            _reject(rt, raw, exc.reason, _bound(start, end=False)[:10])
            result.invalid.append((str(raw.get("id")), exc.reason))
            continue
        if ref.id in seen:
            continue
        seen.add(ref.id)
        if catalog.is_committed(rt.store, model, version, ref.date, ref.id):
            result.committed.append(ref.id)
            continue
        if ref.cloud_cover is not None and ref.cloud_cover > limit:
            skipped = Skipped(
                ref,
                f"scene cloud cover {ref.cloud_cover:.1f} % is over {limit:.1f} %",
                {"cloud_cover": ref.cloud_cover, "threshold": limit},
            )
            record_skipped(rt, skipped)
            result.skipped.append(skipped)
            continue
        result.products.append(
            ProductMessage(
                product_id=ref.id,
                date=ref.date,
                tile=ref.tile,
                model=model,
                version=version,
                run=run,
                item=ref,
            )
        )
    return result


def record_skipped(rt: Runtime, skipped: Skipped) -> str:
    """Write the skipped record of a product (the only writer of discover's skipped records)."""
    settings = rt.settings
    record = OutcomeRecord(
        product_id=skipped.ref.id,
        date=skipped.ref.date,
        model=settings.model_name,
        version=settings.model_version,
        status="skipped",
        stage="discover",
        reason=skipped.reason,
        details=dict(skipped.details),
    )
    return write_record(rt.store, record)


#: Characters of a refused item's original id kept in its record.
KEEP_ID_CHARS = 1000


def _reject(rt: Runtime, raw: dict[str, object], reason: str, window_start: str) -> str:
    """Record a refused item as failed at discover under a key that cannot be hostile."""
    item_id = raw.get("id")
    props = raw.get("properties")
    when = props.get("datetime") if isinstance(props, dict) else None
    try:
        date = layout.acquisition_date(str(when)).isoformat()
    except ValueError:
        date = window_start
    settings = rt.settings
    record = OutcomeRecord(
        product_id=layout.safe_product_id(item_id),
        date=date,
        model=settings.model_name,
        version=settings.model_version,
        status="failed",
        stage="discover",
        reason=reason,
        details={"item_id": str(item_id)[:KEEP_ID_CHARS], "item_id_quoted": quote_id(item_id)},
    )
    log.warning("discover refused STAC item %s: %s", quote_id(item_id), reason)
    return write_record(rt.store, record)
