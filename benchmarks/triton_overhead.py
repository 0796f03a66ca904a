"""Inference per shard: the embedded runner vs a real Triton server (overhead of the server path).

One shard as the split stage makes it (``shard_capacity`` chips for ``--shard-mb``, default the
production 256 MiB) of the shipped ``clc-baseline`` v1, run through
:class:`EmbeddedRunner` (onnxruntime in this process) and through :class:`TritonRunner`
(tritonclient gRPC to ``tritonserver`` on 127.0.0.1, started by
``earthsignature.testing.triton.TritonServer``; the python backend runs the same ONNX file
in onnxruntime with the same thread count). Both answers are checked equal. Times are the
median of ``--repeats`` runs after one warm-up; the overhead is what the server path adds
per shard (serialisation, gRPC over loopback, python-backend shared memory).

    python benchmarks/triton_overhead.py [--threads 2] [--repeats 3] [--shard-mb 256]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np

from earthsignature.functions.split import shard_capacity
from earthsignature.models.repository import SHIPPED, ModelRepository
from earthsignature.models.runners import EmbeddedRunner, TritonRunner
from earthsignature.testing.triton import TritonServer

MODEL, VERSION = "clc-baseline", 1


def timed(runner: Any, chips: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    """Median seconds of ``runner.predict(chips)`` after a warm-up, and its answer."""
    answer = runner.predict(chips).classes
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.predict(chips)
        times.append(time.perf_counter() - start)
    return statistics.median(times), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shard-mb", type=int, default=256)
    args = parser.parse_args()
    repo = ModelRepository(SHIPPED)
    spec = repo.spec(MODEL, VERSION)
    n = shard_capacity(spec, args.shard_mb)
    shape = (n, len(spec.bands), spec.chip_size, spec.chip_size)
    chips = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    megapixels = n * spec.chip_size**2 / 1e6

    embedded_s, expected = timed(
        EmbeddedRunner(repo, MODEL, VERSION, threads=args.threads), chips, args.repeats
    )
    start = time.perf_counter()
    with TritonServer(SHIPPED, MODEL, [VERSION], threads=args.threads) as server:
        startup_s = time.perf_counter() - start
        runner = TritonRunner(server.grpc_url, spec)
        try:
            triton_s, answer = timed(runner, chips, args.repeats)
        finally:
            runner.close()
    if not np.array_equal(answer, expected):
        raise SystemExit("Triton's answer differs from the embedded runner's")
    base = {"chips_per_shard": n, "chip_px": spec.chip_size, "shard_input_mib": args.shard_mb}
    for name, seconds in (("embedded", embedded_s), ("triton", triton_s)):
        print(
            f"{name} "
            + json.dumps(
                {
                    **base,
                    "s_per_shard": round(seconds, 2),
                    "chips_per_s": round(n / seconds, 1),
                    "megapixels_per_s": round(megapixels / seconds, 1),
                }
            )
        )
    print(
        "overhead "
        + json.dumps(
            {
                "triton_minus_embedded_s_per_shard": round(triton_s - embedded_s, 2),
                "triton_over_embedded": round(triton_s / embedded_s, 2),
                "triton_ms_per_chip_added": round(1000 * (triton_s - embedded_s) / n, 1),
                "triton_startup_s": round(startup_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
