"""split -> infer -> stitch wall time and peak memory on a generator product (local store).

    python benchmarks/pipeline_stages.py --size 2196 [--threads 2]

``size`` is the side in 10 m pixels (10980 = a full tile; 2196 = 1/25 of its area). Prints
seconds per stage, the extrapolation to a full tile, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from earthsignature.functions import infer, split
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.stac import from_stac_item
from earthsignature.functions.stitch import stitch_segmentation
from earthsignature.generator import generate_product
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2196)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        product = generate_product(root / "gen", size=args.size, seed=5)
        store = LocalStore(root / "store")
        bands = {}
        for band, path in product.bands.items():
            bands[band] = layout.raw_key(product.date, product.tile, product.product_id, band)
            store.put_file(bands[band], path)
        ref = from_stac_item(json.loads(product.item.read_text()))  # what discover hands on
        msg = ProductMessage(
            product_id=product.product_id, date=product.date, tile=product.tile,
            model="clc-baseline", version=1, run="bench", bands=bands, item=ref,
        )  # fmt: skip
        rt = Runtime(Settings(store=str(root / "store"), inference_threads=args.threads), store)
        times = {}
        start = time.perf_counter()
        shard_msgs = split.handle(msg, rt)
        times["split"] = time.perf_counter() - start
        start = time.perf_counter()
        for m in shard_msgs:
            infer.handle(m, rt)
        times["infer"] = time.perf_counter() - start
        start = time.perf_counter()
        stitch_segmentation(rt, shard_msgs[0], root / "seg.tif")
        times["stitch"] = time.perf_counter() - start
    scale = (10980 / args.size) ** 2
    total = sum(times.values())
    print(
        f"size {args.size}: {len(shard_msgs)} shards; "
        + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
    )
    print(f"total {total:.2f} s -> full tile ~{total * scale:.0f} s (x{scale:.0f} area)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
