"""The vectorize stage (fan-in): stitch the shard predictions, then publish the product.

Runs once every shard of a product has been inferred. The stitched map is written to a local
temporary GeoTIFF on the product grid; :func:`~earthsignature.functions.publish.publish_product`
turns it into the COG, polygons and vector tiles and commits the catalog record last.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.publish import publish_product
from earthsignature.functions.stitch import stitch_segmentation
from earthsignature.memory import release_free_memory
from earthsignature.runtime import Runtime

log = logging.getLogger(__name__)


def handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Stitch, publish and commit one product; the last stage, so no next message."""
    release_free_memory()
    with tempfile.TemporaryDirectory(prefix="earthsig-vectorize-") as tmp:
        stitched, confidence = Path(tmp) / "stitched.tif", Path(tmp) / "confidence.tif"
        has_confidence = stitch_segmentation(rt, msg, stitched, confidence)
        publish_product(rt, msg, stitched, confidence=confidence if has_confidence else None)
    remove_work(rt, msg)
    return []


def remove_work(rt: Runtime, msg: ProductMessage) -> None:
    """Delete the committed product's ``work/`` chips and predictions (on every store; the
    MinIO lifecycle rule stays as a second guard). A failure here only logs: the product is
    committed, and retrying the stage for a leftover would redo the whole publish."""
    try:
        removed = rt.store.delete_prefix(msg.work_prefix)
    except Exception as exc:
        log.warning("could not remove %s after commit: %s", msg.work_prefix, exc)
        return
    log.debug("removed %d work objects under %s", removed, msg.work_prefix)
