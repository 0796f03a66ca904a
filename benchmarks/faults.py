"""Fault run: products committed exactly once through worker kills, a Redis restart, S3 faults.

Generates ``--products`` scenes, then runs the real stages (baseline model, onnxruntime) on
``--workers`` supervised worker processes against a real S3 server (SeaweedFS) behind a proxy
that fails ``--fault-rate`` of requests (503 SlowDown or dropped connections), while a
controller SIGKILLs busy workers in every stage (``--kills`` in all) and restarts Redis
(append-only file, fsync always) with SIGKILL once mid-run. Prints the figures and the
verification as one JSON object; exits 1 when a check fails. Loopback traffic only.

    python -m benchmarks faults [--products 10] [--size 1098] [--workers 4] [--kills 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from earthsignature.testing.chaos import FaultPlan, fault_run
    from earthsignature.testing.seaweed import SeaweedS3

    defaults = FaultPlan()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--size", type=int, default=1098, help="scene side in 10 m pixels")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--shard-megabytes", type=int, default=defaults.shard_megabytes)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=540.0, help="seconds for the run")
    parser.add_argument("--keep", type=Path, help="keep scenes, logs and Redis data here")
    args = parser.parse_args(argv)
    plan = FaultPlan(
        products=args.products,
        size=args.size,
        workers=args.workers,
        kills=args.kills,
        fault_rate=args.fault_rate,
        redis_restarts=args.redis_restarts,
        shard_megabytes=args.shard_megabytes,
        seed=args.seed,
        timeout=args.timeout,
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="earthsig-bench-faults-"))
    try:
        with SeaweedS3() as s3:
            s3.create_bucket("earthsig-faults")
            figures = fault_run(plan, s3, "earthsig-faults", work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
