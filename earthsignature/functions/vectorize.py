"""The vectorize stage (fan-in): stitch the shard predictions, then publish the product.

Runs once every shard of a product has been inferred. The stitched map is written to a local
temporary GeoTIFF on the product grid; :func:`~earthsignature.functions.publish.publish_product`
turns it into the COG, polygons and vector tiles and commits the catalog record last.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.publish import publish_product
from earthsignature.memory import release_free_memory
from earthsignature.runtime import Runtime


def handle(msg: ProductMessage, rt: Runtime) -> list[ProductMessage]:
    """Stitch, publish and commit one product; the last stage, so no next message."""
    from earthsignature.functions.stitch import stitch_segmentation  # issue 4's module

    release_free_memory()
    with tempfile.TemporaryDirectory(prefix="earthsig-vectorize-") as tmp:
        stitched, confidence = Path(tmp) / "stitched.tif", Path(tmp) / "confidence.tif"
        has_confidence = stitch_segmentation(rt, msg, stitched, confidence)
        publish_product(rt, msg, stitched, confidence=confidence if has_confidence else None)
    return []
