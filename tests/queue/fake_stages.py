"""Small real stage handlers for orchestration tests (workers import them by path).

They write real objects to the store under the real layout and commit real catalog
records, so the tests observe what the orchestrator makes happen. A product's ``steer``
entry in the fixtures file (:data:`PRODUCTS_KEY`, looked up by product id: messages carry a
real product reference, nothing else) steers them: ``n_shards``; ``transient`` {stage: k}
fails the first k attempts; ``skip_at`` / ``bad_at`` / ``denied_at`` (PermissionError) a
stage; ``aoi``: cloud skips the product unless the message carries this area; ``no_source``:
the record keeps no source item; ``block`` a stage: the first attempt announces itself in
Redis and hangs (for SIGKILL tests). Every call counts itself in Redis
(``test:runs:<stage>:<id>``).
"""

from __future__ import annotations

import errno
import json
import os
import time
from typing import Any

from rq import get_current_job

from earthsignature.functions.discover import DiscoverResult, Skipped, record_skipped
from earthsignature.functions.errors import BadInput, ProductSkipped
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.stac import ProductRef
from earthsignature.runtime import Runtime
from earthsignature.storage import catalog, layout
from earthsignature.testing.products import product_ref

PRODUCTS_KEY = "fixtures/discover.json"


def _conn():  # type: ignore[no-untyped-def]
    job = get_current_job()
    assert job is not None
    return job.connection


def _listed(rt: Runtime) -> list[dict[str, Any]]:
    return list(json.loads(rt.store.get_bytes(PRODUCTS_KEY)))


def _steer(rt: Runtime, msg: ProductMessage) -> dict[str, Any]:
    """What the fixtures file asks of this product."""
    for entry in _listed(rt):
        if entry["product_id"] == msg.product_id:
            return dict(entry.get("steer", {}))
    return {}


def _suffix(msg: ProductMessage) -> str:
    return f":{msg.shard}" if msg.shard is not None else ""


def _enter(stage: str, msg: ProductMessage, rt: Runtime) -> dict[str, Any]:
    """Count the call; apply the behaviours the product is steered to; returns the steer."""
    conn = _conn()
    attempt = int(conn.incr(f"test:runs:{stage}:{msg.product_id}:v{msg.version}{_suffix(msg)}"))
    steer = _steer(rt, msg)
    if steer.get("skip_at") == stage:
        raise ProductSkipped("too cloudy", cloud_fraction=97.5)
    if steer.get("bad_at") == stage:
        raise BadInput("band B04 unreadable", band="B04")
    if steer.get("denied_at") == stage:  # a read-only store: no retry can help
        raise PermissionError(errno.EACCES, "Permission denied", f"raw/{msg.product_id}")
    if attempt <= int(steer.get("transient", {}).get(stage, 0)):
        raise ConnectionError(f"simulated outage in {stage}, attempt {attempt}")
    block = steer.get("block")
    if block == stage and attempt == 1 and (msg.shard in (None, 0)):
        conn.set(f"test:blocked:{stage}:{msg.product_id}", os.getpid())
        time.sleep(120)
    return steer


def _done(stage: str, msg: ProductMessage) -> None:
    _conn().incr(f"test:done:{stage}:{msg.product_id}:v{msg.version}{_suffix(msg)}")


def _ref(entry: dict[str, Any]) -> ProductRef:
    """The entry as discover would reference it (a real-shaped STAC item's ProductRef)."""
    when = f"{entry['date']}T11:00:00Z"
    cloud = entry.get("scene_cloud")
    return product_ref(entry["product_id"], when, entry["tile"], cloud_cover=cloud)


def discover(rt: Runtime, *, start, end, aoi_wkt=None, max_cloud=None, run):  # type: ignore[no-untyped-def]
    """Products listed in the store's fixtures file whose date is inside the window, in the
    real discover's result shape; a scene over 90 % cloud is skipped (and recorded) as the
    real discover does."""
    result = DiscoverResult()
    for entry in _listed(rt):
        day = layout.acquisition_date(entry["date"])
        if not start <= day <= end:
            continue
        if entry.get("scene_cloud", 0) > 90:
            ref = _ref(entry)
            reason = f"scene cloud cover {entry['scene_cloud']}%"
            skipped = Skipped(ref, reason, {"cloud_cover": ref.cloud_cover, "threshold": 90.0})
            record_skipped(rt, skipped)
            result.skipped.append(skipped)
            continue
        result.products.append(
            ProductMessage(
                product_id=entry["product_id"],
                date=entry["date"],
                tile=entry["tile"],
                model=rt.settings.model_name,
                version=rt.settings.model_version,
                run=run,
                item=_ref(entry),
            )
        )
    return result


def fetch(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    _enter("fetch", msg, rt)
    key = layout.raw_key(msg.date, msg.tile, msg.product_id, "B04")
    rt.store.put_bytes(key, f"B04 of {msg.product_id}".encode())
    _done("fetch", msg)
    return [msg.model_copy(update={"bands": {"B04": key}})]


def cloud(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    steer = _enter("cloud", msg, rt)
    if "aoi" in steer and msg.aoi_wkt != steer["aoi"]:  # the run's area must reach here
        raise ProductSkipped(f"outside the area of interest (cloud saw {msg.aoi_wkt!r})")
    key = layout.mask_key(msg.date, msg.tile, msg.product_id)
    rt.store.put_bytes(key, b"mask")
    _done("cloud", msg)
    return [msg.model_copy(update={"cloud_mask": key, "cloud_fraction": 4.0})]


def split(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    steer = _enter("split", msg, rt)
    n = int(steer.get("n_shards", 2))
    for i in range(n):
        rt.store.put_bytes(f"{msg.work_prefix}shards/{i}.json", json.dumps({"shard": i}).encode())
    _done("split", msg)
    return [msg.model_copy(update={"shard": i, "n_shards": n}) for i in range(n)]


def infer(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    _enter("infer", msg, rt)
    shard = json.loads(rt.store.get_bytes(f"{msg.work_prefix}shards/{msg.shard}.json"))
    rt.store.put_bytes(f"{msg.work_prefix}pred/{msg.shard}.json", json.dumps(shard).encode())
    _done("infer", msg)
    return [msg]


def vectorize(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    steer = _enter("vectorize", msg, rt)
    assert msg.n_shards is not None and msg.shard is None
    for i in range(msg.n_shards):  # fan-in must only happen once every shard is stored
        rt.store.get_bytes(f"{msg.work_prefix}pred/{i}.json")
    assets = {
        "segmentation": layout.segmentation_key(msg.model, msg.version, msg.date, msg.product_id),
        "polygons": layout.polygons_key(msg.model, msg.version, msg.date, msg.product_id),
        "tiles": layout.tiles_key(msg.model, msg.version, msg.date, msg.product_id),
        "cloud_mask": msg.cloud_mask,
    }
    for name in ("segmentation", "polygons", "tiles"):
        rt.store.put_bytes(assets[name], f"{name} of {msg.product_id}".encode())
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": msg.product_id,
        "geometry": {"type": "Point", "coordinates": [0.0, 0.0]},
        "bbox": [0, 0, 0, 0],
        "properties": {
            "datetime": f"{msg.date}T11:00:00Z",
            "created": f"{msg.date}T12:00:00Z",
            catalog.PROP_MODEL: msg.model,
            catalog.PROP_VERSION: msg.version,
            catalog.PROP_TILE: msg.tile,
            **(
                {catalog.PROP_SOURCE_ITEM: msg.item.to_dict()}
                if msg.item is not None and not steer.get("no_source")
                else {}
            ),
        },
        "assets": {name: {"href": key, catalog.ASSET_KEY: key} for name, key in assets.items()},
    }
    catalog.commit(rt.store, item)
    _done("vectorize", msg)
    return []


def composite(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """The fake products hold no rasters to composite: composites have their own tests."""
    return []


HANDLERS = {
    "discover": "tests.queue.fake_stages:discover",
    "composite": "tests.queue.fake_stages:composite",
    **{
        s: f"tests.queue.fake_stages:{s}" for s in ("fetch", "cloud", "split", "infer", "vectorize")
    },
}
