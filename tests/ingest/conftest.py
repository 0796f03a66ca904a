"""Shared helpers of the ingestion tests: the real 29RKH tile, its area, runtimes, messages."""

from __future__ import annotations

from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.stac import from_stac_item
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import ObjectStore

REAL = "s2/S2A_29RKH_20200219_L2A"
SAHARA = "POLYGON ((-13 23, -10 23, -10 26, -13 26, -13 23))"


def runtime(store: ObjectStore, url: str = "http://127.0.0.1:9", **kw: object) -> Runtime:
    return Runtime(settings=Settings(stac_api_url=url, **kw), store=store)  # type: ignore[arg-type]


def message(item: dict) -> ProductMessage:
    ref = from_stac_item(item)
    return ProductMessage(
        product_id=ref.id,
        date=ref.date,
        tile=ref.tile,
        model="clc-baseline",
        version=1,
        run="r1",
        item=ref,
    )
