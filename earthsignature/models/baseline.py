"""The spectral-index baseline (``clc-baseline`` version 1) as an ONNX graph.

Per-pixel rules on L2A reflectance (NDVI, NDWI, MNDWI/NDSI, NDBI, visible brightness, red minus
blue) mapped to CORINE level-3 codes. The rules are written once against a tiny operator
interface and evaluated two ways: as numpy (the reference) and as ONNX nodes (the shipped graph),
so a test can hold the graph to the reference. Build the shipped file with
``python -m earthsignature.models.baseline``.

What it can tell apart: water, snow, dense vegetation (split into broad-leaved/coniferous by NIR
brightness), moderate vegetation (crops, pastures, shrub by NDVI), bright reddish sand, darker
bare ground and rock, and built-up surfaces (grey, low NDVI, SWIR above NIR). What it cannot:
anything that needs texture or context (urban fabric density, industry, roads, orchards,
vineyards, olive groves, arable versus pasture by season, wetlands, burnt areas); mixed pixels;
cloud and cloud shadow (the cloud stage masks those).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from earthsignature.models.spec import INPUT_NAME, OUTPUT_NAME

NAME = "clc-baseline"
BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]
CLASSES = [112, 211, 231, 311, 312, 324, 331, 332, 333, 335, 512]
EPS = 1e-6


def _index(code: int) -> int:
    return CLASSES.index(code)


def rules(ops: Any, b: Any, g: Any, r: Any, n: Any, s1: Any, s2: Any) -> Any:
    """Class index per pixel; later assignments win (highest priority last)."""
    ndvi = ops.nd(n, r)
    ndwi = ops.nd(g, n)
    mndwi = ops.nd(g, s1)  # also the snow index NDSI
    ndbi = ops.nd(s1, n)
    vis = ops.mul(ops.add(ops.add(b, g), r), 1.0 / 3.0)
    red_minus_blue = ops.sub(r, b)
    lt, gt, both = ops.lt, ops.gt, ops.both

    cls = ops.full(ndvi, _index(332))  # bare rock: dark, unvegetated
    cls = ops.where(gt(ndvi, 0.12), _index(333), cls)  # sparse vegetation
    cls = ops.where(both(gt(vis, 0.18), gt(red_minus_blue, 0.06)), _index(331), cls)  # sand
    built = both(
        both(gt(ndbi, -0.05), lt(vis, 0.16)), both(lt(red_minus_blue, 0.035), lt(ndvi, 0.3))
    )
    cls = ops.where(both(built, gt(ndvi, 0.02)), _index(112), cls)
    cls = ops.where(gt(ndvi, 0.25), _index(324), cls)  # shrub / transitional
    cls = ops.where(gt(ndvi, 0.38), _index(231), cls)  # pasture, grassland
    cls = ops.where(gt(ndvi, 0.52), _index(211), cls)  # crops (green season)
    forest = both(gt(ndvi, 0.6), lt(s1, 0.2))
    cls = ops.where(forest, _index(311), cls)
    cls = ops.where(both(forest, lt(n, 0.25)), _index(312), cls)
    clear_water = ops.either(gt(ndwi, 0.05), both(gt(mndwi, 0.3), lt(n, 0.1)))
    # turbid or hazy water: SWIR absorbed (SWIR2 dark, SWIR1 below green), NIR low, no vegetation
    turbid = both(both(gt(mndwi, 0.05), lt(s2, 0.08)), both(lt(n, 0.13), lt(ndvi, 0.2)))
    water = both(ops.either(clear_water, turbid), lt(n, 0.15))
    cls = ops.where(water, _index(512), cls)
    snow = both(both(gt(mndwi, 0.4), gt(g, 0.25)), gt(n, 0.15))
    return ops.where(snow, _index(335), cls)


class NumpyOps:
    """The rules on numpy arrays (the reference implementation)."""

    @staticmethod
    def nd(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        return (a - c) / (a + c + np.float32(EPS))

    add = staticmethod(np.add)
    sub = staticmethod(np.subtract)

    @staticmethod
    def mul(a: np.ndarray, k: float) -> np.ndarray:
        return a * np.float32(k)

    @staticmethod
    def gt(a: np.ndarray, k: float) -> np.ndarray:
        return a > np.float32(k)

    @staticmethod
    def lt(a: np.ndarray, k: float) -> np.ndarray:
        return a < np.float32(k)

    both = staticmethod(np.logical_and)
    either = staticmethod(np.logical_or)

    @staticmethod
    def full(like: np.ndarray, value: int) -> np.ndarray:
        return np.full(like.shape, value, dtype=np.uint8)

    @staticmethod
    def where(cond: np.ndarray, value: int, other: np.ndarray) -> np.ndarray:
        return np.where(cond, np.uint8(value), other).astype(np.uint8)


class OnnxOps:
    """The same rules, emitted as ONNX nodes (each call appends nodes, returns a tensor name)."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def _const(self, value: float | int, dtype: int) -> str:
        name = self._name("c")
        self.inits.append(helper.make_tensor(name, dtype, [], [value]))
        return name

    def _op(self, op: str, *inputs: str, **attrs: Any) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def nd(self, a: str, c: str) -> str:
        den = self._op("Add", self._op("Add", a, c), self._const(EPS, TensorProto.FLOAT))
        return self._op("Div", self._op("Sub", a, c), den)

    def add(self, a: str, c: str) -> str:
        return self._op("Add", a, c)

    def sub(self, a: str, c: str) -> str:
        return self._op("Sub", a, c)

    def mul(self, a: str, k: float) -> str:
        return self._op("Mul", a, self._const(k, TensorProto.FLOAT))

    def gt(self, a: str, k: float) -> str:
        return self._op("Greater", a, self._const(k, TensorProto.FLOAT))

    def lt(self, a: str, k: float) -> str:
        return self._op("Less", a, self._const(k, TensorProto.FLOAT))

    def both(self, a: str, c: str) -> str:
        return self._op("And", a, c)

    def either(self, a: str, c: str) -> str:
        return self._op("Or", a, c)

    def full(self, like: str, value: int) -> str:
        zero = self._op(
            "Cast", self._op("Mul", like, self._const(0.0, TensorProto.FLOAT)), to=TensorProto.UINT8
        )
        return self._op("Add", zero, self._const(value, TensorProto.UINT8))

    def where(self, cond: str, value: int, other: str) -> str:
        return self._op("Where", cond, self._const(value, TensorProto.UINT8), other)


def predict_numpy(reflectance: np.ndarray) -> np.ndarray:
    """Reference: ``[N, 6, H, W]`` reflectance in :data:`BANDS` order -> uint8 ``[N, H, W]``."""
    x = reflectance.astype(np.float32)
    return rules(NumpyOps, *(x[:, i] for i in range(len(BANDS))))  # type: ignore[no-any-return]


def build_graph() -> onnx.ModelProto:
    """The baseline as an ONNX model: float32 ``[N, 6, H, W]`` -> uint8 ``[N, H, W]``."""
    ops = OnnxOps()
    split = [f"band_{b}" for b in BANDS]
    ops.nodes.append(helper.make_node("Split", [INPUT_NAME], split, axis=1, num_outputs=len(BANDS)))
    squeezed = []
    axes = ops._const(1, TensorProto.INT64)
    ops.inits[-1] = helper.make_tensor(axes, TensorProto.INT64, [1], [1])
    for name in split:
        squeezed.append(ops._op("Squeeze", name, axes))
    out = rules(ops, *squeezed)
    ops.nodes.append(helper.make_node("Identity", [out], [OUTPUT_NAME]))
    graph = helper.make_graph(
        ops.nodes,
        NAME,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", len(BANDS), "H", "W"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.UINT8, ["N", "H", "W"])],
        ops.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def metadata() -> dict[str, Any]:
    """ModelSpec fields of the baseline (normalisation is the identity: rules use reflectance)."""
    return {
        "name": NAME,
        "description": "Spectral-index rules (NDVI, NDWI, MNDWI/NDSI, NDBI, brightness).",
        "bands": BANDS,
        "mean": [0.0] * len(BANDS),
        "std": [1.0] * len(BANDS),
        "chip_size": 512,
        "receptive_field": 1,
        "classes": CLASSES,
        "max_batch_size": 16,
    }


def main(argv: list[str] | None = None) -> None:
    """Write the baseline into a repository (default: the shipped one) as a given version."""
    from earthsignature.models.repository import SHIPPED, ModelRepository

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=SHIPPED)
    parser.add_argument("--version", type=int, default=1)
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(build_graph(), str(path))
        spec = ModelRepository(args.repository).register(path, metadata(), version=args.version)
    print(f"registered {spec.name} v{spec.version} in {args.repository}")


if __name__ == "__main__":
    main()
