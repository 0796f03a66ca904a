"""Stage 5, infer: one shard through the model backend (Triton or embedded onnxruntime).

Writes the kept chip centres as uint8 class indices (and, for models with a ``confidence``
output, uint8 confidence in percent) to a deterministic key, so a retried job overwrites its
own output with the same content.
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
    predictions = [
        backend.predict(chips[i : i + spec.max_batch_size].astype(np.float32))
        for i in range(0, len(chips), spec.max_batch_size)
    ]
    arrays = {
        "classes": np.concatenate([centre(p.classes, spec.margin) for p in predictions]),
        "valid": centre(shard["valid"], spec.margin),
        "origins": shard["origins"] + np.int32(spec.margin),
    }
    if spec.has_confidence:
        arrays["confidence"] = np.concatenate(
            [centre(p.confidence, spec.margin) for p in predictions if p.confidence is not None]
        )
    data = shards.encode(arrays)
    del predictions, arrays
    rt.store.put_bytes(shards.prediction_key(msg, msg.shard), data)
    del shard, chips, data
    release_free_memory()
    return [msg]
