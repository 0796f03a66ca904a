"""The typed message on the queue: its item is a ProductRef, messages queued in the old shape
load or are refused, and a refused one is recorded, not lost."""

from __future__ import annotations

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
from earthsignature.queue.rq_setup import make_queue
from earthsignature.queue.worker import PipelineWorker
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore
from earthsignature.storage.records import read_record
from earthsignature.testing.products import product_ref

PID, DAY, TILE = "S2A_MSGTEST", "2026-03-01", "31TCJ"
IDENTITY = {"product_id": PID, "date": DAY, "tile": TILE, "model": "clc-baseline", "version": 1}


def _ref() -> ProductRef:
    return product_ref(
        PID, f"{DAY}T11:00:00Z", TILE, hrefs={"B04": "https://example.invalid/B04.tif"}
    )


def test_item_travels_as_the_product_ref_dict_and_comes_back_typed() -> None:
    ref = _ref()
    msg = ProductMessage(**IDENTITY, run="r1", item=ref)
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
