"""The typed message on the queue: its item is a ProductRef, messages queued in the old shape
load or are refused, and a refused one is recorded, not lost."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError
from rq.serializers import JSONSerializer

from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.stac import ProductRef
from earthsignature.queue import jobs, status
from earthsignature.queue.enqueue import RUN_STAGE
from earthsignature.queue.reprocess import plan_reprocess
from earthsignature.queue.rq_setup import make_queue
from earthsignature.queue.worker import PipelineWorker
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, catalog, layout
from earthsignature.storage.records import read_record
from earthsignature.testing.products import product_ref
from tests.queue import fake_stages
from tests.queue.conftest import product, write_products

PID, DAY, TILE = "S2A_MSGTEST", "2026-03-01", "31TCJ"
IDENTITY = {"product_id": PID, "date": DAY, "tile": TILE, "model": "clc-baseline", "version": 1}


def _ref() -> ProductRef:
    return product_ref(
        PID, f"{DAY}T11:00:00Z", TILE, hrefs={"B04": "https://example.invalid/B04.tif"}
    )


def test_item_travels_as_the_product_ref_dict_and_comes_back_typed() -> None:
    ref = _ref()
    msg = ProductMessage.model_validate({**IDENTITY, "run": "r1", "item": ref})
    payload = json.loads(json.dumps(msg.to_json()))  # what RQ's JSON serializer stores
    assert payload["item"] == ref.to_dict()  # the shape messages were queued in before
    back = ProductMessage.model_validate(payload)
    assert isinstance(back.item, ProductRef) and back.item == ref and back == msg
    assert back.product_ref().scale_offset("B04") == (1e-4, 0.0)


def test_old_empty_item_loads_as_no_reference() -> None:
    msg = ProductMessage.model_validate({**IDENTITY, "run": "r1", "item": {}})
    assert msg.item is None
    with pytest.raises(BadInput, match="no product reference"):
        msg.product_ref()


def test_partial_item_is_refused_naming_what_it_lacks() -> None:
    with pytest.raises(ValidationError, match=r"item\.footprint"):
        ProductMessage.model_validate({**IDENTITY, "run": "r1", "item": {"id": PID}})


def test_queued_message_with_a_partial_item_is_recorded_as_failed(
    tmp_path: Path, redis_conn: redis.Redis
) -> None:
    settings = Settings(store=str(tmp_path / "store"), retry_backoff_scale=0)
    rt = Runtime(settings=settings, store=LocalStore(tmp_path / "store"))
    payload = {**IDENTITY, "run": "old", "item": {"id": PID, "datetime": f"{DAY}T11:00:00Z"}}
    queue = make_queue("fetch", redis_conn)
    queue.enqueue_call(RUN_STAGE, args=("fetch", payload), job_id="fetch-old-shape")
    jobs.set_runtime(rt)
    try:
        worker = PipelineWorker(["fetch"], connection=redis_conn, serializer=JSONSerializer)
        worker.work(burst=True)
    finally:
        jobs.set_runtime(None)
    record = read_record(rt.store, "clc-baseline", 1, DAY, PID)
    assert record is not None and record.status == "failed" and record.stage == "fetch"
    assert "invalid message" in record.reason and "item.footprint" in record.reason
    (product,) = status.products(redis_conn, "old")
    assert (product.state, product.stage) == ("failed", "fetch")


@pytest.mark.parametrize("source", ["whole", "partial"])
def test_reprocess_uses_a_whole_source_item_and_searches_for_a_partial_one(
    tmp_path: Path, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalStore(tmp_path / "store")
    write_products(store, [product(PID, date=DAY, tile=TILE)])  # what the fake discover finds
    settings = Settings(store=str(store.root), stage_handlers=fake_stages.HANDLERS)
    rt = Runtime(settings=settings, store=store)
    stored = _ref()
    key = layout.segmentation_key("clc-baseline", 1, DAY, PID)
    store.put_bytes(key, b"segmentation")
    item = {"id": PID, "datetime": stored.datetime} if source == "partial" else stored.to_dict()
    catalog.commit(
        store,
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": PID,
            "geometry": stored.footprint,
            "bbox": [0, 0, 0, 0],
            "properties": {
                "datetime": stored.datetime,
                catalog.PROP_MODEL: "clc-baseline",
                catalog.PROP_VERSION: 1,
                catalog.PROP_TILE: TILE,
                catalog.PROP_SOURCE_ITEM: item,
            },
            "assets": {"segmentation": {"href": key, catalog.ASSET_KEY: key}},
        },
    )
    day = dt.date.fromisoformat(DAY)
    plan = plan_reprocess(rt, model="clc-baseline", version=2, start=day, end=day, run="again")
    (msg,) = plan.messages
    assert isinstance(msg.item, ProductRef) and msg.version == 2
    if source == "whole":
        assert msg.item == stored
    else:  # discover's reference (the fake one's datetime), and the log says why it searched
        assert msg.item.datetime == f"{DAY}T11:00:00Z" and msg.item != stored
        assert "source item unusable" in caplog.text
