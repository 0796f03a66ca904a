"""The vectorize handler end to end: shard predictions in the store -> committed product."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyogrio
import pytest

from earthsignature.functions import shards, vectorize
from earthsignature.functions.messages import ProductMessage
from earthsignature.models.repository import load_spec
from earthsignature.runtime import Runtime
from earthsignature.storage import ObjectStore, catalog, layout
from tests.publish.conftest import PIXEL_M2, PRODUCT, scaled_codes

STEP = 256  # chip centre size of the predictions


def store_predictions(store: ObjectStore, msg: ProductMessage, codes: np.ndarray) -> int:
    """Write the codes as the infer stage would: class indices per chip centre, two shards."""
    spec = load_spec(None, msg.model, msg.version)
    index_of = {code: i for i, code in enumerate(spec.classes)}
    origins = [
        (y, x) for y in range(0, codes.shape[0], STEP) for x in range(0, codes.shape[1], STEP)
    ]
    chips = []
    for y, x in origins:
        centre = np.zeros((STEP, STEP), dtype=np.uint16)
        window = codes[y : y + STEP, x : x + STEP]
        centre[: window.shape[0], : window.shape[1]] = window
        classes = np.vectorize(lambda c: index_of.get(int(c), 0), otypes=[np.uint8])(centre)
        chips.append((classes, centre != 0, (y, x)))
    halves = [chips[: len(chips) // 2], chips[len(chips) // 2 :]]
    for index, part in enumerate(halves):
        prediction = {
            "classes": np.stack([c for c, _, _ in part]),
            "valid": np.stack([v for _, v, _ in part]),
            "origins": np.array([o for _, _, o in part], dtype=np.int32),
        }
        store.put_bytes(shards.prediction_key(msg, index), shards.encode(prediction))
    return len(halves)


@pytest.fixture
def baseline_codes() -> np.ndarray:
    """The block raster with only classes the shipped baseline model can output."""
    codes = scaled_codes()
    codes[codes == 111] = 324
    return codes


def test_handler_stitches_publishes_and_commits(
    store: ObjectStore,
    runtime: Runtime,
    make_message: Callable[..., ProductMessage],
    baseline_codes: np.ndarray,
) -> None:
    msg = make_message(model="clc-baseline", version=1)
    msg = msg.model_copy(update={"n_shards": store_predictions(store, msg, baseline_codes)})
    assert vectorize.handle(msg, runtime) == []
    entries = list(catalog.iter_entries(store, "clc-baseline", 1))
    assert [e.product_id for e in entries] == [PRODUCT]
    expected = {
        int(c): float((baseline_codes == c).sum()) * PIXEL_M2
        for c in np.unique(baseline_codes)
        if c
    }
    assert entries[0].class_areas == expected
    key = layout.polygons_key("clc-baseline", 1, msg.date, PRODUCT)
    with store.gdal_env():
        info = pyogrio.read_info(store.gdal_path(key))
    assert info["features"] == 7
