"""Write infra/triton/<model>/config.pbtxt, the GPU config of every model in a repository.

Shapes, names and batch limits come from the repository's metadata (earthsig.json, the same
ModelSpec the pipeline uses), so the GPU configs cannot drift from the models they serve;
tests/infra checks the checked-in files equal this output. Run after registering a model:

    python infra/triton/render.py [--repository PATH] [--check]

Batching: infer jobs send batches of up to ``max_batch_size`` chips (runners.batches), so the
preferred batch size is ``max_batch_size``: a full request runs at once, and the smaller tail
batches of several workers are merged up to it within ``MAX_QUEUE_DELAY_US``. With the shipped
model that is 16 chips x 6 bands x 512 x 512 float32 = 96 MiB per batch, well within one GPU.
Two instances per GPU overlap one batch's transfer with the other's compute.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from earthsignature.models.repository import (
    CONFIG_FILE,
    SHIPPED,
    ModelRepository,
    triton_io_config,
)
from earthsignature.models.spec import ModelSpec

HERE = Path(__file__).resolve().parent
#: Model instances per GPU.
INSTANCES_PER_GPU = 2
#: How long Triton holds a request to merge it with others (microseconds).
MAX_QUEUE_DELAY_US = 2000


def gpu_config(spec: ModelSpec) -> str:
    """config.pbtxt for Triton's onnxruntime backend on GPUs, every version served."""
    return triton_io_config(spec, 'platform: "onnxruntime_onnx"') + (
        "# preferred = max_batch_size: the batch one infer job sends (see infra/triton/render.py)\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {spec.max_batch_size} ]\n"
        f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}\n"
        "}\n"
        f"instance_group [ {{ count: {INSTANCES_PER_GPU} kind: KIND_GPU }} ]\n"
    )


def render(repository: ModelRepository) -> dict[str, str]:
    """Model name -> GPU config; shapes and batch limit from the newest version's metadata."""
    configs = {}
    for name in repository.names():
        versions = repository.versions(name)
        specs = [repository.spec(name, v) for v in versions]
        shapes = {(len(s.bands), s.max_batch_size, tuple(s.outputs)) for s in specs}
        if len(shapes) > 1:  # one config serves all versions, so their interfaces must agree
            raise SystemExit(
                f"{name}: versions {versions} differ in bands, max_batch_size or outputs"
            )
        configs[name] = gpu_config(specs[-1])
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=SHIPPED)
    parser.add_argument("--check", action="store_true", help="Fail if a file is out of date.")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render(ModelRepository(args.repository)).items():
        path = HERE / name / CONFIG_FILE
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'} {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
