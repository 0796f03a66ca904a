"""Fixtures of the model tests: a repository with two versions of one model, a real Triton
server (PyTriton) serving both, synthetic products in the object store."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import rasterio
from onnx import TensorProto, helper
from rasterio.transform import from_origin

from earthsignature.functions.messages import ProductMessage
from earthsignature.models import baseline
from earthsignature.models.repository import ModelRepository
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import ObjectStore, layout
from earthsignature.testing.products import product_ref
from earthsignature.testing.triton import TritonServer

TEST_MODEL = "clc-test"
#: A conv net with both outputs, classes and confidence (its own name: outputs are per name).
CONFIDENCE_MODEL = "clc-conf"
CONV_CLASSES = [112, 211, 311, 331, 512]


def conv_net(
    n_bands: int, n_classes: int, *, seed: int = 0, hidden: int = 8, confidence: bool = False
) -> onnx.ModelProto:
    """Two 3x3 convolutions (receptive field 5) + argmax -> uint8: a fully convolutional toy;
    with ``confidence``, also the winning softmax probability in percent, rounded, uint8."""
    rng = np.random.default_rng(seed)

    def weights(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        values = rng.normal(0, 0.5, size=shape).astype(np.float32)
        return helper.make_tensor(name, TensorProto.FLOAT, shape, values.ravel().tolist())

    inits = [
        weights("w1", (hidden, n_bands, 3, 3)),
        weights("b1", (hidden,)),
        weights("w2", (n_classes, hidden, 3, 3)),
        weights("b2", (n_classes,)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["logits"], pads=[1, 1, 1, 1]),
        helper.make_node("ArgMax", ["logits"], ["idx"], axis=1, keepdims=0),
        helper.make_node("Cast", ["idx"], ["classes"], to=TensorProto.UINT8),
    ]
    outputs = [helper.make_tensor_value_info("classes", TensorProto.UINT8, ["N", "H", "W"])]
    if confidence:
        inits += [
            helper.make_tensor("axes", TensorProto.INT64, (1,), [1]),
            helper.make_tensor("hundred", TensorProto.FLOAT, (), [100.0]),
        ]
        nodes += [
            helper.make_node("Softmax", ["logits"], ["prob"], axis=1),
            helper.make_node("ReduceMax", ["prob", "axes"], ["top"], keepdims=0),
            helper.make_node("Mul", ["top", "hundred"], ["percent"]),
            helper.make_node("Round", ["percent"], ["rounded"]),
            helper.make_node("Cast", ["rounded"], ["confidence"], to=TensorProto.UINT8),
        ]
        outputs.append(
            helper.make_tensor_value_info("confidence", TensorProto.UINT8, ["N", "H", "W"])
        )
    graph = helper.make_graph(
        nodes,
        "toy-conv",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_bands, "H", "W"])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def conv_metadata(*, chip_size: int = 48, receptive_field: int = 5) -> dict[str, Any]:
    return {
        "name": TEST_MODEL,
        "bands": baseline.BANDS,
        "mean": [0.1, 0.1, 0.1, 0.25, 0.2, 0.15],
        "std": [0.05, 0.05, 0.05, 0.1, 0.1, 0.1],
        "chip_size": chip_size,
        "receptive_field": receptive_field,
        "classes": CONV_CLASSES,
        "max_batch_size": 16,
    }


def register(repo: ModelRepository, model: onnx.ModelProto, meta: dict[str, Any]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        return repo.register(path, meta).version


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    """``clc-test`` v1 = the baseline rules, v2 = a conv net with receptive field 5;
    ``clc-conf`` v1 = a conv net with both outputs, classes and confidence."""
    repo = ModelRepository(tmp_path_factory.mktemp("models"))
    register(
        repo,
        baseline.build_graph(),
        {**baseline.metadata(), "name": TEST_MODEL, "max_batch_size": 16},
    )
    register(repo, conv_net(len(baseline.BANDS), len(CONV_CLASSES)), conv_metadata())
    register(
        repo,
        conv_net(len(baseline.BANDS), len(CONV_CLASSES), seed=1, confidence=True),
        {**conv_metadata(), "name": CONFIDENCE_MODEL, "outputs": ["classes", "confidence"]},
    )
    return repo


@pytest.fixture(scope="session")
def triton_server(model_repo: ModelRepository) -> Iterator[TritonServer]:
    """A real Triton (PyTriton's tritonserver, python backend) on loopback serving clc-test
    versions 1 and 2 side by side, each running its own model.onnx in onnxruntime."""
    with TritonServer(model_repo.root, TEST_MODEL, [1, 2]) as server:
        yield server


@pytest.fixture(scope="session")
def triton_confidence_server(model_repo: ModelRepository) -> Iterator[TritonServer]:
    """A real Triton serving ``clc-conf`` v1, whose graph returns classes and confidence."""
    with TritonServer(model_repo.root, CONFIDENCE_MODEL, [1]) as server:
        yield server


@pytest.fixture
def make_runtime(tmp_path: Path) -> Callable[..., Runtime]:
    def make(store: ObjectStore, repo: ModelRepository, **settings: Any) -> Runtime:
        return Runtime(
            settings=Settings(
                store=str(tmp_path / "unused"), model_repository=repo.root, **settings
            ),
            store=store,
        )

    return make


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: int) -> np.ndarray:
    """Random field with structure at ``scale`` pixels (nearest-upsampled noise + fine noise)."""
    coarse = rng.random((shape[0] // scale + 2, shape[1] // scale + 2))
    field = np.kron(coarse, np.ones((scale, scale)))[: shape[0], : shape[1]]
    return field + 0.3 * rng.random(shape)


def write_band(path: Path, data: np.ndarray, res: float, nodata: int | None = 0) -> None:
    profile = {
        "driver": "GTiff", "dtype": data.dtype.name, "count": 1, "width": data.shape[1],
        "height": data.shape[0], "crs": "EPSG:32631",
        "transform": from_origin(300000, 4700000, res, res),
        "nodata": nodata, "tiled": True, "blockxsize": 64, "blockysize": 64,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


@pytest.fixture
def synthetic_product(tmp_path: Path) -> Callable[..., ProductMessage]:
    """Put baseline bands (10 m: B02-B04, B08; 20 m: B11, B12, SCL) of an ``h`` x ``w`` product
    into a store; returns the message fetch would hand on."""

    def make(
        store: ObjectStore, *, h: int = 150, w: int = 130, seed: int = 0, model: str = TEST_MODEL,
        version: int = 2, scl_invalid: tuple[int, int, int, int] | None = None,
    ) -> ProductMessage:  # fmt: skip
        rng = np.random.default_rng(seed)
        product = f"S2X_TEST_{seed}"
        date = dt.date(2024, 6, 1)
        bands: dict[str, str] = {}
        for band in baseline.BANDS:
            res, shape = (
                (10, (h, w)) if band in ("B02", "B03", "B04", "B08") else (20, (h // 2, w // 2))
            )
            dn = (1000 + 3000 * smooth_field(rng, shape, 7)).astype(np.uint16)
            dn[0, :3] = 0  # a few nodata pixels
            path = tmp_path / f"{band}.tif"
            write_band(path, dn, res)
            bands[band] = layout.raw_key(date, "31TCJ", product, band)
            store.put_file(bands[band], path)
        scl = np.full((h // 2, w // 2), 4, dtype=np.uint8)
        if scl_invalid:
            r0, r1, c0, c1 = scl_invalid
            scl[r0:r1, c0:c1] = 0
        write_band(tmp_path / "SCL.tif", scl, 20, nodata=None)
        bands["SCL"] = layout.raw_key(date, "31TCJ", product, "SCL")
        store.put_file(bands["SCL"], tmp_path / "SCL.tif")
        ref = product_ref(
            product, f"{date.isoformat()}T10:30:00Z", "31TCJ", hrefs=bands, offsets={"B12": -0.1}
        )
        return ProductMessage(
            product_id=product, date=date.isoformat(), tile="31TCJ", model=model, version=version,
            run="r1", bands=bands, item=ref,
        )  # fmt: skip

    return make
