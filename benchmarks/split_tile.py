"""fetch and split of a full-tile product, alone in this process: wall, CPU, peak RSS, shards.

    python -m benchmarks split_tile --keep DIR [--model clc-baseline] [--fetch] [--run NAME]

``DIR`` is a ``--keep`` folder of ``python -m benchmarks full_tile`` (its ``scenes-10980``
product is read, never written). Bands are fetched into ``DIR/split-store`` (raw/ COGs, as
the pipeline's fetch writes them) when missing or with ``--fetch``; split then writes its
shards under ``work/<product>/<run>/``, so two runs (e.g. two versions of the code) can be
compared shard by shard. CPU is this process's user + system time: on a shared machine it
moves far less than the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from earthsignature.functions import fetch, split
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.stac import from_stac_item
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, layout


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(label: str, call, *args):  # type: ignore[no-untyped-def]
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), _cpu()
    out = call(*args)
    result = {
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(_cpu() - cpu, 1),
        "load_before": round(load, 1),
        "load_after": round(os.getloadavg()[0], 1),
    }
    return out, label, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, required=True)
    parser.add_argument("--model", default="clc-baseline")
    parser.add_argument("--fetch", action="store_true", help="fetch again even when stored")
    parser.add_argument("--run", default="bench", help="run id of the shards' work/ folder")
    args = parser.parse_args()
    (item_path,) = sorted(args.keep.glob("scenes-10980/*/*.json"))
    ref = from_stac_item(json.loads(item_path.read_text()))
    root = args.keep / "split-store"
    store = LocalStore(root)
    rt = Runtime(Settings(store=str(root), model_name=args.model), store)
    msg = ProductMessage(
        product_id=ref.id, date=ref.date, tile=ref.tile, model=args.model, version=1,
        run=args.run, item=ref,
    )  # fmt: skip
    stored = {b: layout.raw_key(msg.date, msg.tile, msg.product_id, b) for b in fetch.DEFAULT_BANDS}
    if args.fetch or not all(store.exists(k) for k in stored.values()):
        store.delete_prefix(layout.raw_prefix(msg.date, msg.tile, msg.product_id))
        (msg,), label, result = _timed("fetch", fetch.handle, msg, rt)
        print(label, json.dumps({**result, "bands": len(msg.bands)}), flush=True)
    else:
        msg.bands = stored
    store.delete_prefix(f"{msg.work_prefix}shards/")
    shard_msgs, label, result = _timed("split", split.handle, msg, rt)
    size = sum(store.size(f"{msg.work_prefix}shards/{i:05d}.npz") for i in range(len(shard_msgs)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        label,
        json.dumps(
            {
                **result,
                "model": args.model,
                "shards": len(shard_msgs),
                "shard_MiB": round(size / 2**20),
                "peak_rss_MiB": round(peak),
            }
        ),
    )


if __name__ == "__main__":
    main()
