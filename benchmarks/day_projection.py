"""Projection of one day of Europe on one GPU with Triton plus N CPU workers, from measured costs.

Not a measurement itself: a small model fed with the per-stage costs this repository measures
(``python -m benchmarks full_tile`` for a 10980 x 10980 product, one worker per stage,
``python -m benchmarks triton_overhead`` for the server path, ``python -m benchmarks
inference`` for the U-Net per chip), plus the assumptions below, each printed with its value
and where it comes from. Change any of them on the command line; ``--stages FILE`` reads the
stage costs from the JSON line ``full_tile`` prints (``{"stage_s": {...}}``).

The model: every product is fetched (network) and cloud-filtered; the share that survives the
cloud threshold is split, inferred on the GPU, stitched, vectorized and published. CPU stages
run one per worker process (one core each), the GPU serves all workers through Triton, and
products flow through independent RQ jobs, so the day's wall time is set by the busiest
resource (CPU pool, GPU, network) plus the latency of one product through the chain.

A CPU worker here is what was measured: one worker process with 2 cores to itself (split
reads in 2 threads, vectorize publishes in 2 child processes). Defaults of the assumptions:
- ``--clear-share 0.6``: share of products under the cloud threshold (the rest stop at cloud);
  Europe's mean cloud cover is near 50-60 %, and the threshold cuts the cloudiest.
- ``--gpu-speedup 30``: the U-Net's throughput on one GPU over 2 CPU threads (measured here:
  12.2 ms a 256 x 256 chip on 2 threads; no GPU could be measured, so this is a conservative
  guess for a small conv net on an H100-class card).
- ``--transfer-factor 1.0``: Triton's transfer overhead per pixel relative to the measured
  python-backend path (16.8 ms per 512 x 512 x 6 float32 chip); the onnxruntime/TensorRT
  backends with shared memory on a GPU node would be lower.
- ``--download-mb 900``: 4 bands at 10 m (~200 MB each as COG), 2 at 20 m (~50 MB) and SCL.
- ``--nic-mb-s 500``: a cloud VM in the archive's region (4 Gbit/s).

    python benchmarks/day_projection.py [--products 300] [--workers 4 8 16 32 64]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

# Measured on the 2-core development machine (BENCHMARKS.md, `python -m benchmarks full_tile`):
# seconds per full tile in one worker process. fetch is the local copy to COG (its CPU part);
# vectorize is stitch + COG + FlatGeobuf + PMTiles + catalog (two child processes inside).
MEASURED_STAGES_S = {
    "fetch": 22.4,
    "cloud": 2.1,
    "split": 26.7,
    "vectorize": 54.8,
}
UNET_CPU_MS_PER_CHIP = 12.2  # U-Net width 16, 256 x 256 chip, onnxruntime on 2 threads
CHIPS_PER_TILE = 2809  # 256 x 256 chips with overlap over 10980 x 10980
TRITON_MS_PER_MPX = 16.8 / (
    512 * 512 / 1e6
)  # measured server-path overhead per Mpx (python backend)


@dataclass(frozen=True)
class Assumptions:
    """Every number the projection uses that this machine cannot measure."""

    products: int
    clear_share: float  # products under the cloud threshold (the rest stop after cloud)
    gpu_speedup: float  # U-Net throughput of one GPU over 2 CPU threads
    transfer_factor: float  # Triton transfer cost on the GPU node relative to the measured path
    download_mb: float  # bytes fetched per product (model bands + SCL), MB
    nic_mb_s: float  # node network bandwidth to the source archive, MB/s
    model_ms_per_chip: float = UNET_CPU_MS_PER_CHIP  # model cost per 256 x 256 chip, 2 threads
    chips_per_tile: int = CHIPS_PER_TILE  # chips of the model's geometry per full tile


def project(stages: dict[str, float], a: Assumptions, workers: int) -> dict[str, float | int | str]:
    """Wall time of one day's products and the resource that bounds it."""
    clear = a.products * a.clear_share
    cpu_per_clear = stages["split"] + stages["vectorize"]
    cpu_s = a.products * (stages["fetch"] + stages["cloud"]) + clear * cpu_per_clear
    fetch_s = a.products * a.download_mb / a.nic_mb_s
    infer_gpu = a.chips_per_tile * a.model_ms_per_chip / 1000 / a.gpu_speedup
    transfer = 10980 * 10980 / 1e6 * TRITON_MS_PER_MPX / 1000 * a.transfer_factor
    gpu_s = clear * (infer_gpu + transfer)
    bounds = {"cpu workers": cpu_s / workers, "gpu": gpu_s, "network": fetch_s}
    binding = max(bounds, key=bounds.__getitem__)
    latency = a.download_mb / a.nic_mb_s + sum(stages.values()) + infer_gpu + transfer
    wall = bounds[binding] + latency
    return {
        "workers": workers,
        "cpu_pool_h": round(bounds["cpu workers"] / 3600, 2),
        "gpu_busy_h": round(gpu_s / 3600, 2),
        "network_h": round(fetch_s / 3600, 2),
        "bound_by": binding,
        "day_wall_h": round(wall / 3600, 2),
        "gpu_utilisation_pct": round(100 * gpu_s / wall, 1),
    }


def _stages(path: Path | None) -> dict[str, float]:
    if path is None:
        return dict(MEASURED_STAGES_S)
    for line in reversed(path.read_text().splitlines()):
        start = line.find("{")
        if start >= 0 and "stage_s" in line:
            found = json.loads(line[start:])["stage_s"]
            return {k: float(found[k]) for k in MEASURED_STAGES_S}
    raise SystemExit(f"{path}: no line with a 'stage_s' JSON object")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--stages", type=Path, help="output of `python -m benchmarks full_tile`")
    parser.add_argument("--clear-share", type=float, default=0.6)
    parser.add_argument("--gpu-speedup", type=float, default=30.0)
    parser.add_argument("--transfer-factor", type=float, default=1.0)
    parser.add_argument("--download-mb", type=float, default=900.0)
    parser.add_argument("--nic-mb-s", type=float, default=500.0)
    parser.add_argument(
        "--model-ms-per-chip",
        type=float,
        default=UNET_CPU_MS_PER_CHIP,
        help="Model cost per chip of --chips-per-tile on 2 CPU threads (see BENCHMARKS).",
    )
    parser.add_argument("--chips-per-tile", type=int, default=CHIPS_PER_TILE)
    args = parser.parse_args(argv)
    stages = _stages(args.stages)
    a = Assumptions(
        products=args.products,
        clear_share=args.clear_share,
        gpu_speedup=args.gpu_speedup,
        transfer_factor=args.transfer_factor,
        download_mb=args.download_mb,
        nic_mb_s=args.nic_mb_s,
        model_ms_per_chip=args.model_ms_per_chip,
        chips_per_tile=args.chips_per_tile,
    )
    print("stage costs (s per full tile, one 2-core worker) " + json.dumps(stages))
    print("assumptions " + json.dumps(a.__dict__))
    for workers in args.workers:
        print(f"N={workers} " + json.dumps(project(stages, a, workers)))


if __name__ == "__main__":
    main()
