"""Dynamic World speed: ms per chip, the shipped ONNX graph (onnxruntime) beside TensorFlow
running the upstream SavedModel, same chips, same thread count, one run.

    python -m benchmarks dynamicworld_speed --threads 2 [--batch 4] [--repeats 3] [--chip 256]
        [--savedmodel ../shared/models/dynamicworld/model/forward] [--other OLD.onnx]

The runtimes take turns, chip batch by chip batch (``--repeats`` rounds, medians reported), so a
change in the machine's load hits them alike; CPU time (the process's, all threads) is printed
beside wall time, as it depends less on other processes on a loaded machine.

Chips: real BigEarthNet patches (configilm wheel, see earthsignature/models/bigearthnet.py)
tiled k x k and cut to ``--chip`` (default: the shipped spec's chip size), so both runtimes see
real reflectance. Besides ms per chip it prints ms per million kept pixels (the chip less the
spec's margins) and the projected inference time of a 10980 x 10980 tile, so chip sizes compare;
``--other`` times another graph with the same interface (e.g. the previous shipped one) in the
same run. The ONNX
time includes the in-graph normalisation and CORINE head; TensorFlow's excludes its
normalisation (done in numpy beforehand). Also prints the share of pixels where the shipped
graph keeps the plain conversion's class (after the head's dark-water rule) when ``--plain``
names the unoptimised ONNX.
TensorFlow is skipped (with a note) when it is not installed (extra "import").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from earthsignature.models import bigearthnet
from earthsignature.models import dynamicworld as dw
from earthsignature.models.chips import ChipGrid
from earthsignature.models.repository import SHIPPED, ModelRepository

#: Side of a Sentinel-2 tile at 10 m (px).
TILE = 10980
SAVEDMODEL = Path(__file__).resolve().parents[2] / "shared/models/dynamicworld/model/forward"


def chips(batch: int, size: int = 256) -> np.ndarray:
    """``batch`` real chips ``[N, 9, size, size]`` (reflectance)."""
    patches = [p.reflectance for p in bigearthnet.patches(dw.BANDS) if not p.disturbed]
    k = -(-size // patches[0].shape[-1])
    out = []
    for i in range(batch):
        pick = [patches[(k * k * i + j) % len(patches)] for j in range(k * k)]
        rows = [np.concatenate(pick[r * k : r * k + k], axis=2) for r in range(k)]
        out.append(np.concatenate(rows, axis=1)[:, :size, :size])
    return np.stack(out).astype(np.float32)


def time_calls(
    calls: dict[str, Callable[[], object]], repeats: int, batch: int
) -> dict[str, tuple[float, float]]:
    """Median wall and CPU (this process, all threads) ms per chip of each call, the calls
    interleaved (one of each per round) so that a change in the machine's load hits all alike."""
    for fn in calls.values():
        fn()  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append((time.perf_counter() - start) * 1000 / batch)
            cpu[name].append((time.process_time() - start_cpu) * 1000 / batch)
    return {name: (float(np.median(wall[name])), float(np.median(cpu[name]))) for name in calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--savedmodel", type=Path, default=SAVEDMODEL)
    parser.add_argument("--plain", type=Path, help="Unoptimised ONNX (logits) to compare with.")
    parser.add_argument("--chip", type=int, help="Chip side (default: the spec's chip_size).")
    parser.add_argument("--other", type=Path, help="Another wrapped graph to time alongside.")
    args = parser.parse_args()
    repository = ModelRepository(SHIPPED)
    spec = repository.spec(dw.NAME, 1)
    size = args.chip or spec.chip_size
    x = chips(args.batch, size)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    path = repository.onnx_path(dw.NAME, 1)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    result: dict[str, object] = {"threads": args.threads, "batch": args.batch, "chip": size}
    result["load_before"] = [round(v, 1) for v in os.getloadavg()]
    calls: dict[str, Callable[[], object]] = {"onnx": lambda: session.run(None, {"input": x})}
    if args.other:
        other = ort.InferenceSession(str(args.other), options, providers=["CPUExecutionProvider"])
        calls["other"] = lambda: other.run(None, {"input": x})
    if args.plain:
        plain = ort.InferenceSession(str(args.plain), options, providers=["CPUExecutionProvider"])
        nchw = dw.normalise(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        (logits,) = plain.run(None, {plain.get_inputs()[0].name: np.ascontiguousarray(nchw)})
        (classes,) = session.run(["classes"], {"input": x})
        expected = dw.apply_water_rule(x, logits.argmax(1))  # the head's one override
        same = np.asarray(dw.DW_OF_INDEX)[classes] == expected
        result["same_class_as_plain"] = round(float(same.mean()), 5)
    try:
        import tensorflow as tf
    except ImportError:
        result["tensorflow"] = "not installed (pip install 'earthsignature[import]')"
    else:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        fn = tf.saved_model.load(str(args.savedmodel)).signatures["serving_default"]
        (arg,) = fn.structured_input_signature[1].keys()
        nhwc = tf.constant(dw.normalise(x.transpose(0, 2, 3, 1)))
        calls["tensorflow"] = lambda: fn(**{arg: nhwc})
    times = time_calls(calls, args.repeats, args.batch)
    for name, (wall, cpu) in times.items():
        result[f"{name}_ms_per_chip"] = round(wall, 1)
        result[f"{name}_cpu_ms_per_chip"] = round(cpu, 1)
    ms = times["onnx"][0]
    grid = ChipGrid(TILE, TILE, size, spec.margin)
    result["onnx_ms_per_kept_mpx"] = round(ms / (grid.step**2 / 1e6), 1)
    result["tile_chips"] = len(grid)
    result["onnx_tile_s"] = round(ms * len(grid) / 1000)
    if "tensorflow" in times:
        result["speedup"] = round(times["tensorflow"][0] / ms, 2)
        result["speedup_cpu"] = round(times["tensorflow"][1] / times["onnx"][1], 2)
    result["load_after"] = [round(v, 1) for v in os.getloadavg()]
    print("dynamicworld_speed", json.dumps(result))


if __name__ == "__main__":
    main()
