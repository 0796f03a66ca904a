"""Stage 5, infer: one shard through the model backend (Triton or embedded onnxruntime).

Writes the kept chip centres as uint8 class indices to a deterministic key, so a retried job
overwrites its own output with the same content.
"""

from __future__ import annotations

import numpy as np

from earthsignature.functions import shards
from earthsignature.functions.chips import centre
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.memory import release_free_memory
from earthsignature.models.runners import get_backend
from earthsignature.runtime import Runtime


def handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Predict shard ``msg.shard``; returns ``[msg]`` (the orchestrator decides on fan-in)."""
    if msg.shard is None:
        raise BadInput("infer needs a shard index", product=msg.product_id)
    backend = get_backend(rt, msg.model, msg.version)
    spec = backend.spec
    shard = shards.decode(rt.store.get_bytes(shards.shard_key(msg, msg.shard)))
    chips = shard["chips"]
    if chips.ndim != 4 or chips.shape[1] != len(spec.bands) or chips.shape[2] != spec.chip_size:
        raise BadInput("shard does not match the model", shape=list(chips.shape), model=spec.name)
    classes = np.concatenate(
        [
            centre(
                backend.predict(chips[i : i + spec.max_batch_size].astype(np.float32)), spec.margin
            )
            for i in range(0, len(chips), spec.max_batch_size)
        ]
    )
    data = shards.encode(
        {
            "classes": classes,
            "valid": centre(shard["valid"], spec.margin),
            "origins": shard["origins"] + np.int32(spec.margin),
        }
    )
    rt.store.put_bytes(shards.prediction_key(msg, msg.shard), data)
    del shard, chips, classes, data
    release_free_memory()
    return [msg]
