"""Inference speed: ms per 256 x 256 chip on N onnxruntime threads, per model.

    python benchmarks/inference.py --threads 2 [--unet-width 16]

Times the shipped baseline (clc-baseline v1) and, when torch is installed, an untrained U-Net
exported the same way `earthsig train` does (speed does not depend on the weights). Prints the
extrapolation to a full 10980 x 10980 tile (chips of the model's geometry, inference only).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from earthsignature.functions.chips import ChipGrid
from earthsignature.models.repository import SHIPPED, ModelRepository
from earthsignature.models.runners import EmbeddedRunner


def time_runner(runner: EmbeddedRunner, chip: int, batch: int, repeats: int) -> float:
    x = (
        np.random.default_rng(0)
        .normal(size=(batch, len(runner.spec.bands), chip, chip))
        .astype(np.float32)
    )
    runner.predict(x)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        runner.predict(x)
    return (time.perf_counter() - start) * 1000 / (repeats * batch)


def report(name: str, runner: EmbeddedRunner, args: argparse.Namespace) -> None:
    ms = time_runner(runner, 256, args.batch, args.repeats)
    grid = ChipGrid.for_spec(runner.spec, 10980, 10980)
    # cost of one model chip ~ ms per 256 chip scaled by area
    tile_s = ms * len(grid) * (runner.spec.chip_size / 256) ** 2 / 1000
    print(
        f"{name}: {ms:.1f} ms per 256x256 chip ({args.threads} threads); {len(grid)} chips"
        f" of {runner.spec.chip_size} for a full tile -> ~{tile_s:.0f} s inference"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--unet-width", type=int, default=16)
    args = parser.parse_args()
    report(
        "clc-baseline v1",
        EmbeddedRunner(ModelRepository(SHIPPED), "clc-baseline", 1, threads=args.threads),
        args,
    )
    try:
        from earthsignature.models.export import export_onnx
        from earthsignature.models.train import DEFAULT_BANDS
        from earthsignature.models.unet import UNet
    except ImportError:
        print("torch not installed: U-Net skipped")
        return

    with tempfile.TemporaryDirectory() as tmp:
        repo = ModelRepository(tmp)
        net = UNet(len(DEFAULT_BANDS), 11, width=args.unet_width).eval()
        path = Path(tmp) / "m.onnx"
        export_onnx(net, len(DEFAULT_BANDS), path)
        meta = {"name": "unet-bench", "bands": DEFAULT_BANDS, "mean": [0.0] * 10, "std": [1.0] * 10,
                "chip_size": 256, "receptive_field": net.receptive_field(), "stride_multiple": 4,
                "classes": [112, 211, 231, 311, 312, 324, 331, 332, 333, 335, 512]}  # fmt: skip
        repo.register(path, meta)
        report(
            f"U-Net width {args.unet_width} fp32",
            EmbeddedRunner(repo, "unet-bench", 1, threads=args.threads),
            args,
        )


if __name__ == "__main__":
    main()
