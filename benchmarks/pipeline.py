"""Orchestration benchmark: how much the queue layer costs, and the demo end to end.

``python benchmarks/pipeline.py overhead --products 20 --shards 8 --workers 2``
    runs products through no-op stage handlers (real Redis, real worker processes, local
    store) and reports jobs per second and per-product latency: the cost of chaining,
    fan-out/fan-in and status bookkeeping alone.

``python benchmarks/pipeline.py demo --products 3 --size 1098 --workers 2``
    times ``earthsig demo`` (generation, then the real stages end to end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DAY = dt.date(2026, 3, 1)


# -- no-op handlers (imported by the workers as pipeline:<name>) ----------------------------


class _Found:
    def __init__(self, products: list[Any]) -> None:
        self.products = products
        self.skipped: list[Any] = []


def discover(rt, *, start, end, aoi_wkt=None, max_cloud=None, run):  # type: ignore[no-untyped-def]
    from earthsignature.functions.messages import ProductMessage

    spec = json.loads(rt.store.get_bytes("bench/products.json"))
    return _Found(
        [
            ProductMessage(
                product_id=f"S2X_BENCH_{i:04d}",
                date=DAY.isoformat(),
                tile="31TCJ",
                model=rt.settings.model_name,
                version=rt.settings.model_version,
                run=run,
            )
            for i in range(spec["products"])
        ]
    )


def passthrough(msg, rt):  # type: ignore[no-untyped-def]
    return [msg]


def split(msg, rt):  # type: ignore[no-untyped-def]
    n = int(json.loads(rt.store.get_bytes("bench/products.json"))["shards"])
    return [msg.model_copy(update={"shard": i, "n_shards": n}) for i in range(n)]


def vectorize(msg, rt):  # type: ignore[no-untyped-def]
    return []


HANDLERS = {
    "discover": "pipeline:discover",
    "fetch": "pipeline:passthrough",
    "cloud": "pipeline:passthrough",
    "split": "pipeline:split",
    "infer": "pipeline:passthrough",
    "vectorize": "pipeline:vectorize",
}


def overhead(products: int, shards: int, workers: int) -> dict[str, Any]:
    from earthsignature.queue.run import run_window
    from earthsignature.settings import load_settings
    from earthsignature.storage import LocalStore

    with tempfile.TemporaryDirectory(prefix="earthsig-bench-") as tmp:
        store = LocalStore(Path(tmp) / "store")
        store.put_bytes(
            "bench/products.json", json.dumps({"products": products, "shards": shards}).encode()
        )
        os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
        settings = load_settings(
            store=str(store.root), stage_handlers=HANDLERS, retry_backoff_scale=0, redis_url=None
        )
        began = time.perf_counter()
        summary = run_window(settings, start=DAY, workers=workers, progress=False)
        wall = time.perf_counter() - began
    jobs = 1 + products * (4 + shards)
    return {
        "products": products,
        "shards_per_product": shards,
        "workers": workers,
        "jobs": jobs,
        "wall_s": round(wall, 2),
        "jobs_per_s": round(jobs / wall, 1),
        "committed": len(summary.with_state("committed")),
    }


def demo(products: int, size: int, workers: int) -> dict[str, Any]:
    from earthsignature.queue.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="earthsig-demo-bench-") as tmp:
        began = time.perf_counter()
        result = run_demo(Path(tmp), products=products, size=size, workers=workers, progress=False)
        wall = time.perf_counter() - began
    return {
        "products": products,
        "size_px": size,
        "workers": workers,
        "wall_s": round(wall, 2),
        "committed": len(result.summary.with_state("committed")),
        "failed": [p.product_id for p in result.summary.failed],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    over = sub.add_parser("overhead")
    over.add_argument("--products", type=int, default=20)
    over.add_argument("--shards", type=int, default=8)
    over.add_argument("--workers", type=int, default=2)
    dem = sub.add_parser("demo")
    dem.add_argument("--products", type=int, default=3)
    dem.add_argument("--size", type=int, default=1098)
    dem.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.what == "overhead":
        result = overhead(args.products, args.shards, args.workers)
    else:
        result = demo(args.products, args.size, args.workers)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
