"""Import the upstream Dynamic World SavedModel as ``dynamicworld-clc`` (extra "import":
tensorflow-cpu and tf2onnx, pinned).

``earthsig models import-dynamicworld SRC`` runs :func:`import_dynamicworld`:

1. plain conversion (:func:`convert`): tf2onnx at opset 18 with NCHW input and output; the one
   op it cannot convert, ``ScaleAndTranslate`` (the antialiased 2x downscale), becomes an ONNX
   ``Resize`` (linear, antialias, half_pixel, exclude_outside), which PROVENANCE.md measured
   equal to TensorFlow;
2. TensorFlow runs the SavedModel on real BigEarthNet chips (:func:`golden_inputs`); the plain
   conversion must give the same class on every pixel and logits within :data:`LOGIT_TOLERANCE`,
   else the import stops;
3. :func:`fast_mish` rewrites Mish (``x * tanh(softplus(x))``, slow in onnxruntime's Softplus)
   as ``x / (1 + 2 / (e (e + 2)))``, ``e = exp(x)`` (the same function, one transcendental,
   overflow-safe), and :func:`fold_l2_normalize` applies the last 1x1 conv before the
   per-pixel l2 normalisation instead of after it (the same function, 9 channels scaled
   instead of 144);
4. the network is wrapped with the normalisation and the CORINE head
   (:func:`earthsignature.models.dynamicworld.wrap`), checked against the golden outputs, and
   registered; the golden file (TensorFlow's classes and winning probabilities on the chips)
   is written for CI (tests/models/test_dynamicworld.py).

tf2onnx names nodes differently on each run, so the shipped file's sha256 is pinned
(:data:`earthsignature.models.dynamicworld` ``SHIPPED_SHA256``), not the script's output.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from earthsignature.models import dynamicworld as dw
from earthsignature.models.errors import InvalidModel
from earthsignature.models.repository import ModelRepository
from earthsignature.models.spec import ModelSpec

log = logging.getLogger(__name__)
LOGIT_TOLERANCE = 1e-3
#: BigEarthNet v1 patches recorded as golden inputs (forest, arable/pasture, water and urban).
GOLDEN_PATCHES = 3


def _savedmodel_function(src: Path) -> Any:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(src))
    return loaded, loaded.signatures["serving_default"]


def tf_logits(src: Path, nhwc: np.ndarray) -> np.ndarray:
    """TensorFlow's logits ``[N, H, W, 9]`` for normalised NHWC input."""
    import tensorflow as tf

    _, fn = _savedmodel_function(src)
    (name,) = fn.structured_input_signature[1].keys()
    out = fn(**{name: tf.constant(nhwc)})
    (logits,) = out.values()
    return np.asarray(logits.numpy(), dtype=np.float32)


def _scale_and_translate(ctx: Any, node: Any, name: str, args: Any) -> None:
    """tf2onnx handler: ``ScaleAndTranslate(images NHWC, size, scale, translation)`` -> ONNX
    ``Resize`` to ``[N, size, C]`` (4-d sizes, so tf2onnx's layout optimiser can permute it)."""
    from tf2onnx import utils

    def const(value: int) -> str:
        return str(ctx.make_const(utils.make_name("dw_dim"), np.array([value], np.int64)).output[0])

    images, size = node.input[0], node.input[1]
    shape = ctx.make_node("Shape", [images])
    batch = ctx.make_node(
        "Slice",
        [
            shape.output[0],
            const(0),
            const(1),
        ],
    )
    channels = ctx.make_node(
        "Slice",
        [
            shape.output[0],
            const(3),
            const(4),
        ],
    )
    cast = ctx.make_node("Cast", [size], attr={"to": TensorProto.INT64})
    sizes = ctx.make_node(
        "Concat", [batch.output[0], cast.output[0], channels.output[0]], attr={"axis": 0}
    )
    ctx.replace_inputs(node, [images, "", "", sizes.output[0]])
    node.type = "Resize"
    for key in list(node.attr):
        del node.attr[key]
    node.set_attr("mode", "linear")
    node.set_attr("antialias", 1)
    node.set_attr("coordinate_transformation_mode", "half_pixel")
    node.set_attr("exclude_outside", 1)


def convert(src: Path) -> onnx.ModelProto:
    """Plain conversion: one NCHW input (normalised bands), one NCHW logits output."""
    import tensorflow as tf
    import tf2onnx

    loaded, fn = _savedmodel_function(src)
    (arg,) = fn.structured_input_signature[1].keys()
    (out,) = fn.structured_outputs.keys()
    signature = [tf.TensorSpec([None, None, None, len(dw.BANDS)], tf.float32, name="nhwc")]
    forward = tf.function(lambda x: fn(**{arg: x})[out])
    model, _ = tf2onnx.convert.from_function(
        forward,
        input_signature=signature,
        opset=dw.OPSET,
        custom_op_handlers={"ScaleAndTranslate": (_scale_and_translate, [])},
        inputs_as_nchw=["nhwc:0"],
    )
    del loaded
    return _logits_to_nchw(model)


def _logits_to_nchw(model: onnx.ModelProto) -> onnx.ModelProto:
    """Append a Transpose NHWC -> NCHW to the only output (tf2onnx's outputs_as_nchw needs the
    output's TF name; this works for any)."""
    graph = model.graph
    (out,) = graph.output
    nhwc = out.name + "_nhwc"
    for node in graph.node:
        node.output[:] = [nhwc if o == out.name else o for o in node.output]
        node.input[:] = [nhwc if i == out.name else i for i in node.input]
    graph.node.append(helper.make_node("Transpose", [nhwc], [out.name], perm=[0, 3, 1, 2]))
    graph.output.remove(out)
    graph.output.append(
        helper.make_tensor_value_info(out.name, TensorProto.FLOAT, ["N", 9, "H", "W"])
    )
    return model


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _replace(
    graph: onnx.GraphProto, drop: list[onnx.NodeProto], new: dict[str, list[onnx.NodeProto]]
) -> None:
    """Rebuild ``graph.node``: ``new[out]`` goes in before the node whose first output is
    ``out``; the nodes in ``drop`` go (nodes are keyed by their first output: the graph is SSA)."""
    dropped = {node.output[0] for node in drop}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        nodes += [_copy(n) for n in new.get(node.output[0], [])]
        if node.output[0] not in dropped:
            nodes.append(_copy(node))
    del graph.node[:]
    graph.node.extend(nodes)


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


def fast_mish(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every ``Softplus -> Tanh -> Mul(x, .)`` (Mish) by ``x / (1 + 2 / n)`` with
    ``n = e (e + 2)``, ``e = exp(x)``: ``tanh(softplus(x)) = n / (n + 2)`` exactly, so one
    transcendental instead of onnxruntime's slow Softplus (or the earlier ``exp, log, tanh``,
    whose single-threaded Log alone was ~19 % of the graph). Six elementwise kernels, no
    overflow: ``exp`` = inf gives ``2 / inf = 0``, a mish of ``x``; ``exp`` = 0 gives
    ``x / inf = 0`` (BENCHMARKS.md, issue 15.6 speed)."""
    graph = model.graph
    consumers = _consumers(graph)
    graph.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.array(1.0, np.float32), "mish_one"),
            onnx.numpy_helper.from_array(np.array(2.0, np.float32), "mish_two"),
        ]
    )
    drop: list[onnx.NodeProto] = []
    new: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        if node.op_type != "Softplus":
            continue
        (tanh,) = consumers[node.output[0]]
        (mul,) = consumers[tanh.output[0]]
        x = node.input[0]
        if tanh.op_type != "Tanh" or mul.op_type != "Mul" or x not in mul.input:
            raise InvalidModel(f"Softplus {node.name} is not part of a Mish")
        p = f"{node.name}_mish"
        new[node.output[0]] = [
            helper.make_node("Exp", [x], [f"{p}_e"]),
            helper.make_node("Add", [f"{p}_e", "mish_two"], [f"{p}_e2"]),
            helper.make_node("Mul", [f"{p}_e", f"{p}_e2"], [f"{p}_n"]),
            helper.make_node("Div", ["mish_two", f"{p}_n"], [f"{p}_q"]),
            helper.make_node("Add", [f"{p}_q", "mish_one"], [f"{p}_d"]),
            helper.make_node("Div", [x, f"{p}_d"], [mul.output[0]]),
        ]
        drop += [node, tanh, mul]
    _replace(graph, drop, new)
    onnx.checker.check_model(model)
    return model


def fold_l2_normalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Move the network's last step, ``Conv1x1(u / max(|u|, eps))`` over the upsampled
    144-channel features ``u``, to ``Conv1x1_nobias(u) * r + bias`` with ``r`` the per-pixel
    ``1 / max(|u|, eps)``: the 1x1 conv is linear, so this is the same function, but the
    broadcast multiply runs on 9 channels instead of 144, and ``|u|^2`` is summed by a 1x1 conv
    with unit weights (one GEMM) instead of onnxruntime's channel ReduceSum, which measured
    ~7 % of the graph alone (BENCHMARKS.md, issue 15.6 speed)."""
    graph = model.graph
    consumers = _consumers(graph)
    producer = {o: node for node in graph.node for o in node.output}
    init = {t.name: t for t in graph.initializer}
    (reduce,) = [n for n in graph.node if n.op_type == "ReduceSum"]
    square = producer[reduce.input[0]]
    u = square.input[0]
    chain = [reduce]
    for op in ("Max", "Sqrt", "Reciprocal", "Mul", "Conv"):
        (nxt,) = consumers[chain[-1].output[0]]
        if nxt.op_type != op:
            raise InvalidModel(f"unexpected {nxt.op_type} after {chain[-1].op_type}")
        chain.append(nxt)
    _, eps_max, sqrt, recip, scale, conv = chain
    weight = onnx.numpy_helper.to_array(init[conv.input[1]])
    axes = onnx.numpy_helper.to_array(init[reduce.input[1]]).tolist() if reduce.input[1:] else []
    (eps,) = [name for name in eps_max.input if name != reduce.output[0]]
    keepdims = [a.i for a in reduce.attribute if a.name == "keepdims"]
    if (
        axes not in ([1], [-3])
        or keepdims not in ([], [1])
        or square.op_type != "Mul"
        or list(square.input) != [u, u]
        or u not in scale.input
        or weight.shape[2:] != (1, 1)
        or len(conv.input) != 3
    ):
        raise InvalidModel("the l2-normalised 1x1 conv is not where expected")
    channels = weight.shape[1]
    ones = onnx.numpy_helper.from_array(np.ones((1, channels, 1, 1), np.float32), "l2_ones")
    bias = onnx.numpy_helper.to_array(init[conv.input[2]]).reshape(1, -1, 1, 1)
    graph.initializer.extend([ones, onnx.numpy_helper.from_array(bias, "l2_bias")])
    raw = "l2_logits_unscaled"
    new = [
        helper.make_node("Conv", [square.output[0], "l2_ones"], ["l2_sum"]),
        helper.make_node("Max", ["l2_sum", eps], [eps_max.output[0]]),
        sqrt,
        recip,
        _copy(conv),
        helper.make_node("Mul", [raw, recip.output[0]], ["l2_logits_scaled"]),
        helper.make_node("Add", ["l2_logits_scaled", "l2_bias"], [conv.output[0]]),
    ]
    del new[4].input[2:]  # the conv without its bias, on the features
    new[4].input[0], new[4].output[0] = u, raw
    _replace(graph, chain, {reduce.output[0]: new})
    onnx.checker.check_model(model)
    return model


def golden_inputs(n: int = GOLDEN_PATCHES) -> tuple[list[str], np.ndarray]:
    """Reflectance ``[n, 9, 120, 120]`` of ``n`` BigEarthNet v1 patches (configilm), picked to
    span land covers: the first patches, in name order, whose labels add a level-1 class."""
    from earthsignature.models.bigearthnet import v1_patches

    names: list[str] = []
    chips: list[np.ndarray] = []
    seen: set[int] = set()
    for patch in v1_patches(dw.BANDS):
        level1 = {c // 100 for c in patch.labels}
        if level1 <= seen:
            continue
        seen |= level1
        names.append(patch.name)
        chips.append(patch.reflectance)
        if len(names) == n:
            break
    return names, np.stack(chips)


def _ort(model: onnx.ModelProto, feed: np.ndarray, outputs: list[str] | None = None) -> list[Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return list(session.run(outputs, {name: feed}))


def check_against_tensorflow(net: onnx.ModelProto, nchw: np.ndarray, logits: np.ndarray) -> float:
    """Largest logit difference of the converted network; InvalidModel on any class change or
    a difference above :data:`LOGIT_TOLERANCE`."""
    (onnx_logits,) = _ort(net, nchw)
    expected = logits.transpose(0, 3, 1, 2)
    diff = float(np.abs(onnx_logits - expected).max())
    changed = int((onnx_logits.argmax(1) != expected.argmax(1)).sum())
    if changed or diff > LOGIT_TOLERANCE:
        raise InvalidModel(
            f"conversion differs from TensorFlow: {changed} pixels change class, "
            f"logits up to {diff:.2e} apart (tolerance {LOGIT_TOLERANCE:g})"
        )
    return diff


def golden_record(names: list[str], reflectance: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    """What the golden file holds: the chips as DN (uint16), TensorFlow's class and winning
    probability (percent, float32) per pixel."""
    z = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    return {
        "names": np.array(names),
        "dn": np.round(reflectance * 10000).astype(np.uint16),
        "dw_class": logits.argmax(axis=-1).astype(np.uint8),
        "confidence": (probs.max(axis=-1) * 100).astype(np.float32),
    }


def agreement(model: onnx.ModelProto, golden: dict[str, np.ndarray]) -> tuple[float, float]:
    """Share of pixels where the wrapped graph's class refines TensorFlow's (after the head's
    dark-water rule), and the largest confidence difference (percentage points)."""
    reflectance = golden["dn"].astype(np.float32) / np.float32(10000)
    classes, confidence = _ort(model, reflectance, ["classes", "confidence"])
    expected = dw.apply_water_rule(reflectance, golden["dw_class"])
    same = np.asarray(dw.DW_OF_INDEX)[classes] == expected
    gap = np.abs(confidence.astype(np.float32) - golden["confidence"]).max()
    return float(same.mean()), float(gap)


def import_dynamicworld(
    src: Path,
    repository: ModelRepository,
    *,
    name: str = dw.NAME,
    version: int | None = None,
    golden_path: Path | None = None,
) -> ModelSpec:
    """Convert, check against TensorFlow, optimise, wrap, register; write the golden file."""
    names, reflectance = golden_inputs()
    nhwc = dw.normalise(reflectance.transpose(0, 2, 3, 1))
    logits = tf_logits(src, nhwc)
    plain = convert(src)
    diff = check_against_tensorflow(plain, np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)), logits)
    log.info("plain conversion: same classes as TensorFlow, logits within %.1e", diff)
    golden = golden_record(names, reflectance, logits)
    model = dw.wrap(fold_l2_normalize(fast_mish(plain)))
    same, gap = agreement(model, golden)
    if same < 0.995:
        raise InvalidModel(f"optimised graph keeps TensorFlow's class on only {same:.2%} of pixels")
    log.info("optimised graph: %.3f%% same class, confidence within %.2f points", same * 100, gap)
    if golden_path is not None:
        golden_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(golden_path, **golden)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        return repository.register(path, {**dw.metadata(), "name": name}, version=version)
