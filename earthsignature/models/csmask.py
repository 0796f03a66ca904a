"""Import ukis-csmask's cloud and cloud-shadow U-Net as a ``cloudmask`` model of the repository.

ukis-csmask (PyPI, Apache-2.0, DLR) ships trained ONNX U-Nets for Sentinel-2 at about 30 m,
6 bands (blue green red nir swir16 swir22 = B02 B03 B04 B08 B11 B12), reflectance 0..1,
normalised ``(x - mean) / std`` with per-band statistics in a JSON beside each graph, logits
``[N, 3, 256, 256]``: 0 clear, 1 cloud, 2 cloud shadow. Its 40 MB graphs stay out of git: this
module builds the repository's version from the installed package (extra ``csmask``), wrapping
the graph so it speaks the runners' contract: ``input`` with symbolic batch and size (the
network is fully convolutional; sizes must be multiples of 32) and ``classes`` uint8 (argmax in
the graph). The normalisation stays in the spec like every model's, done by the reader.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from earthsignature.models.errors import InvalidModel
from earthsignature.models.repository import ModelRepository
from earthsignature.models.spec import CLOUD_CLASSES, INPUT_NAME, OUTPUT_NAME, ModelSpec

PACKAGE = "ukis-csmask"
#: The repository name of an imported csmask model, per product level.
MODEL_NAMES = {"l2a": "csmask-l2a", "l1c": "csmask-l1c"}
#: csmask's band names -> ESA band ids.
BANDS = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "swir16": "B11",
    "swir22": "B12",
}
#: Pixels kept clear of each chip border (the package blends 20 % overlaps; 32 of 256 per side
#: is 25 %), and the network's total down-sampling (efficientnet-b4 encoder, 5 levels).
RECEPTIVE_FIELD = 64
STRIDE_MULTIPLE = 32
MAX_BATCH_SIZE = 8


def package_file(name: str) -> Path:
    """A file of the installed ukis-csmask package; InvalidModel when it is not installed."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError as exc:
        raise InvalidModel(
            f"{PACKAGE} is not installed: pip install 'earthsignature[csmask]'"
        ) from exc
    path = Path(str(dist.locate_file(f"ukis_csmask/{name}")))
    if not path.is_file():
        raise InvalidModel(f"{PACKAGE} {dist.version} has no {name}")
    return path


def wrap(model: onnx.ModelProto) -> onnx.ModelProto:
    """The logits graph with symbolic N/H/W and ``argmax -> uint8`` named ``classes``."""
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise InvalidModel("expected one input and one output")
    logits = graph.output[0].name
    source_input = graph.input[0]
    dims = source_input.type.tensor_type.shape.dim
    for dim, symbol in zip(dims, ("N", None, "H", "W"), strict=True):
        if symbol is not None:
            dim.ClearField("dim_value")
            dim.dim_param = symbol
    if source_input.name != INPUT_NAME:
        for node in graph.node:
            node.input[:] = [INPUT_NAME if i == source_input.name else i for i in node.input]
        source_input.name = INPUT_NAME
    del graph.value_info[:]  # shapes inferred for the fixed 256 x 256 input no longer hold
    graph.node.extend(
        [
            helper.make_node("ArgMax", [logits], ["earthsig_argmax"], axis=1, keepdims=0),
            helper.make_node("Cast", ["earthsig_argmax"], [OUTPUT_NAME], to=TensorProto.UINT8),
        ]
    )
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.UINT8, ["N", "H", "W"])
    )
    return model


def spec_metadata(level: str) -> dict[str, Any]:
    """ModelSpec fields (without version) of csmask's 6-band model of ``level``."""
    graph = package_file(f"model_6b_{level}.onnx")
    info = json.loads(graph.with_suffix(".json").read_text())
    stats = info["data"]["dataset_statistics"]
    mean, std = stats["img"]
    version = metadata.version(PACKAGE)
    return {
        "name": MODEL_NAMES[level],
        "kind": "cloudmask",
        "description": (
            f"{PACKAGE} {version} {info['model']['version']} cloud/shadow U-Net "
            f"({info['model']['encoder_name']}), {level.upper()}, 30 m; classes 0 clear, "
            "1 cloud, 2 cloud shadow."
        ),
        "bands": [BANDS[b] for b in stats["band_names"]],
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "chip_size": int(info["data"]["target_size"][0]),
        "receptive_field": RECEPTIVE_FIELD,
        "stride_multiple": STRIDE_MULTIPLE,
        "classes": list(CLOUD_CLASSES),
        "max_batch_size": MAX_BATCH_SIZE,
        "source": {
            "package": f"{PACKAGE}=={version}",
            "file": graph.name,
            "sha256": hashlib.sha256(graph.read_bytes()).hexdigest(),
            "licence": "Apache-2.0 (German Aerospace Center DLR, ukis-csmask)",
        },
    }


def import_csmask(repository: ModelRepository, level: str = "l2a") -> ModelSpec:
    """Register csmask's 6-band ``level`` model as the next version of its repository name."""
    if level not in MODEL_NAMES:
        raise InvalidModel(f"product level must be one of {sorted(MODEL_NAMES)}, got {level!r}")
    meta = spec_metadata(level)
    model = wrap(onnx.load(str(package_file(f"model_6b_{level}.onnx"))))
    with tempfile.TemporaryDirectory(prefix="earthsig-csmask-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        return repository.register(path, meta)
