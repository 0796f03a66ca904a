"""Dynamic World v1 (Brown et al. 2022) as the model ``dynamicworld-clc``: its ONNX graph, its
CORINE mapping and the golden outputs the shipped graph is held to.

The upstream network is a TensorFlow SavedModel (NHWC, nine L1C-style bands, its own log/sigmoid
normalisation, nine land-cover logits). :mod:`earthsignature.models.dwimport` converts it; this
module wraps the converted network so that the graph takes the project's standard input, float32
``[N, 9, H, W]`` L2A reflectance 0..1 (offset already removed, mean 0 / std 1 in the metadata, so
the pipeline's normalisation is the identity), and returns ``classes`` (index into
:data:`CLASSES`) and ``confidence`` (the winning class's softmax probability in percent). Both
runners therefore send the same tensor and get the same map.

Dynamic World is land *cover*; CORINE is land *use*. :func:`head_graph` maps each Dynamic World
class to level-3 codes with the rules below, computed inside the graph:

* trees -> 311 broad-leaved, 312 coniferous, 313 mixed, by the share of dark-NIR ("coniferous")
  tree pixels among the tree pixels of the surrounding :data:`POOL` x :data:`POOL` window;
* built -> 111 continuous urban fabric where at least :data:`DENSE_BUILT` of the window is built,
  else 112;
* bare -> 333 sparsely vegetated where NDVI >= :data:`SPARSE_NDVI`, else 332 bare rock;
* any pixel darker than :data:`DARK_WATER_NIR` in NIR and greener than NIR is water, whatever
  the network says: on L2A (the network was trained on top-of-atmosphere L1C) open sea and lakes
  are far darker than anything it saw, and it reads them as trees (BigEarthNet v1: 8 of 9 sea
  patches); no vegetation or soil has NIR that low;
* water 512, grass 231, flooded vegetation 411, crops 211, shrub and scrub 324, snow and ice 335.

:data:`RELIABLE_LEVEL` records, per output code, the CORINE level at which the reading can be
trusted (stored in the metadata; see README "The default model").
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from earthsignature.models.spec import CONFIDENCE_NAME, INPUT_NAME, OUTPUT_NAME

NAME = "dynamicworld-clc"
#: Input channel order of the upstream network (20 m bands resampled to 10 m).
BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"]
#: Upstream class order (the network's nine logits).
DW_CLASSES = [
    "water",
    "trees",
    "grass",
    "flooded_vegetation",
    "crops",
    "shrub_and_scrub",
    "built",
    "bare",
    "snow_and_ice",
]
#: Upstream normalisation per band: ``v = ln(DN * 0.005 + 1)``, ``(v - P0) / P1``, then
#: ``sigmoid(5 v - 1)`` (from the upstream notebook, see PROVENANCE.md).
NORM = [
    (1.7417268007636313, 2.023298706048351),
    (1.7261204997060209, 2.038905204308012),
    (1.6798346251414997, 2.179592821212937),
    (1.7734969472909623, 2.2890068333026603),
    (2.289154079164943, 2.6171674549378166),
    (2.382939712192371, 2.773418590375327),
    (2.3828939530384052, 2.7578332604178284),
    (2.1952484264967844, 2.789092484314204),
    (1.554812948247501, 2.4140534947492487),
]
#: Output index -> CORINE level-3 code.
CLASSES = [512, 311, 312, 313, 231, 411, 211, 324, 112, 111, 333, 332, 335]
#: Output index -> Dynamic World class index (every output index refines one upstream class).
DW_OF_INDEX = [0, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 7, 8]
#: Upstream class index -> output index before the sub-class rules.
BASE_INDEX = [0, 1, 4, 5, 6, 7, 8, 11, 12]
#: Side (px at 10 m) of the window the tree-type and built-density shares are taken over.
POOL = 15
#: NIR (B08) reflectance below which a tree pixel counts as coniferous.
CONIFER_NIR = 0.25
#: Coniferous share of the window's tree pixels: >= CONIFEROUS -> 312, >= MIXED -> 313.
CONIFEROUS, MIXED = 0.75, 0.25
#: Built share of the window at or above which a built pixel is 111 rather than 112.
DENSE_BUILT = 0.8
#: NIR (B08) reflectance below which a pixel with green above NIR is water.
DARK_WATER_NIR = 0.05
#: NDVI at or above which a bare pixel is 333 (sparsely vegetated) rather than 332.
SPARSE_NDVI = 0.1
#: Receptive field of the upstream network (px), from PROVENANCE.md (44) plus the window.
RECEPTIVE_FIELD = 44 + POOL - 1
#: Output code -> CORINE level at which it is reliable. Dynamic World separates land cover, so
#: forests, arable land, shrub and bare ground hold at level 2, and so does water once the sea
#: rule (``postprocess: ["sea"]``, models/seamask.py) parts sea (523) from inland water (512) by
#: the land/sea boundary; grass (pasture vs natural grassland), flooded vegetation (inland vs
#: coastal) and built (urban fabric vs industry, roads, mines) only at level 1. Level 3 (tree
#: type, urban density, bare vs sparse) comes from the unvalidated rules above and is never
#: claimed.
RELIABLE_LEVEL = {
    512: 2,
    523: 2,
    311: 2,
    312: 2,
    313: 2,
    231: 1,
    411: 1,
    211: 2,
    324: 2,
    112: 1,
    111: 1,
    333: 2,
    332: 2,
    335: 2,
}
CREDIT = (
    "Land cover from Dynamic World v1 (Google, National Geographic, World Resources Institute; "
    "Brown et al. 2022, Scientific Data, doi:10.1038/s41597-022-01307-4), Apache-2.0, "
    "converted to ONNX and mapped to CORINE by EarthSignature"
)
#: Chip side and batch: 512 px chips spend 22 % of their pixels on the 30 px margins, 256 px
#: chips 41 %, so a tile needs 1.3x fewer pixels through the network. onnxruntime's arena
#: keeps the largest batch's activations: one 512 px chip peaks at ~730 MiB, four (as many
#: pixels as the earlier 16 of 256) at ~2.5 GiB, over the 1.5 GB a process may use
#: (BENCHMARKS.md, issue 15.6).
CHIP_SIZE, MAX_BATCH = 512, 1
#: Name of the normalised tensor handed to the converted network, and of its logits.
NET_INPUT, NET_OUTPUT = "dw_input", "dw_logits"
OPSET = 18


def metadata(description: str = "") -> dict[str, object]:
    """The ModelSpec fields (without version) of the wrapped graph."""
    return {
        "name": NAME,
        "description": description
        or "Dynamic World v1 network (land cover, 9 classes) mapped to CORINE level 3",
        "bands": BANDS,
        "mean": [0.0] * len(BANDS),
        "std": [1.0] * len(BANDS),
        "chip_size": CHIP_SIZE,
        "receptive_field": RECEPTIVE_FIELD,
        "stride_multiple": 2,
        "classes": CLASSES,
        "max_batch_size": MAX_BATCH,
        "outputs": [OUTPUT_NAME, CONFIDENCE_NAME],
        "postprocess": ["sea"],
        "credit": CREDIT,
        "reliable_level": RELIABLE_LEVEL,
    }


def normalise(reflectance: np.ndarray) -> np.ndarray:
    """The upstream normalisation in numpy (reference for the graph): reflectance 0..1 in any
    layout whose band axis is last -> the network's input."""
    p = np.asarray(NORM, dtype=np.float64)
    v = np.log(reflectance.astype(np.float64) * 10000 * 0.005 + 1)
    v = (v - p[:, 0]) / p[:, 1]
    return (1 / (1 + np.exp(-(5 * v - 1)))).astype(np.float32)


def _const(
    name: str, value: np.ndarray | float | list[int], dtype: type = np.float32
) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype=dtype), name)
    )


def apply_water_rule(reflectance: np.ndarray, dw_class: np.ndarray) -> np.ndarray:
    """The head's dark-water override in numpy: ``reflectance [..., 9, H, W]`` and the
    network's class ``[..., H, W]`` -> the class the head maps to CORINE."""
    nir = reflectance[..., BANDS.index("B08"), :, :]
    green = reflectance[..., BANDS.index("B03"), :, :]
    dark_water = (nir < np.float32(DARK_WATER_NIR)) & (green > nir)
    return np.where(dark_water, 0, dw_class)


def normalisation_nodes() -> list[onnx.NodeProto]:
    """``input`` reflectance ``[N, 9, H, W]`` -> :data:`NET_INPUT`, the network's input (NCHW):
    ``sigmoid(5 (ln(50 max(r, 0) + 1) - P0) / P1 - 1)``, folded into one scale and one bias per
    band (L2A reflectance after the offset can be slightly negative)."""
    p = np.asarray(NORM, dtype=np.float32)
    return [
        _const("zero", 0.0),
        _const("k50", 10000 * 0.005),
        _const("one", 1.0),
        _const("inv_p1x5", (5.0 / p[:, 1]).reshape(1, -1, 1, 1)),
        _const("bias", (-5.0 * p[:, 0] / p[:, 1] - 1.0).reshape(1, -1, 1, 1)),
        helper.make_node("Max", [INPUT_NAME, "zero"], ["non_negative"]),
        helper.make_node("Mul", ["non_negative", "k50"], ["dn_scaled"]),
        helper.make_node("Add", ["dn_scaled", "one"], ["dn_plus1"]),
        helper.make_node("Log", ["dn_plus1"], ["log_dn"]),
        helper.make_node("Mul", ["log_dn", "inv_p1x5"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["pre_sigmoid"]),
        helper.make_node("Sigmoid", ["pre_sigmoid"], [NET_INPUT]),
    ]


def head_nodes() -> list[onnx.NodeProto]:
    """:data:`NET_OUTPUT` logits ``[N, 9, H, W]`` and the ``input`` reflectance -> ``classes``
    and ``confidence``, uint8 ``[N, H, W]``."""
    nir, red, green = BANDS.index("B08"), BANDS.index("B04"), BANDS.index("B03")
    pad = POOL // 2
    n = [
        _const("hundred", 100.0),
        _const("eps", 1e-6),
        _const("base_lut", BASE_INDEX, np.int64),
        _const("c_trees", 1, np.int64),
        _const("c_built", 6, np.int64),
        _const("c_bare", 7, np.int64),
        _const("conifer_nir", CONIFER_NIR),
        _const("coniferous", CONIFEROUS),
        _const("mixed", MIXED),
        _const("dense_built", DENSE_BUILT),
        _const("sparse_ndvi", SPARSE_NDVI),
        _const("i312", CLASSES.index(312), np.int64),
        _const("i313", CLASSES.index(313), np.int64),
        _const("i111", CLASSES.index(111), np.int64),
        _const("i333", CLASSES.index(333), np.int64),
        _const("nir_at", [nir], np.int64),
        _const("red_at", [red], np.int64),
        _const("green_at", [green], np.int64),
        _const("c_water", 0, np.int64),
        _const("dark_water_nir", DARK_WATER_NIR),
        # confidence: the winning class's softmax probability in percent
        helper.make_node("Softmax", [NET_OUTPUT], ["probs"], axis=1),
        _const("class_axis", [1], np.int64),
        helper.make_node("ReduceMax", ["probs", "class_axis"], ["p_max"], keepdims=0),
        helper.make_node("Mul", ["p_max", "hundred"], ["p_pct"]),
        helper.make_node("Round", ["p_pct"], ["p_round"]),
        helper.make_node("Cast", ["p_round"], [CONFIDENCE_NAME], to=TensorProto.UINT8),
        # upstream class and the masks the sub-class rules need, [N, 1, H, W]
        helper.make_node("ArgMax", [NET_OUTPUT], ["dw_net"], axis=1, keepdims=1),
        helper.make_node("Gather", [INPUT_NAME, "nir_at"], ["nir"], axis=1),
        helper.make_node("Gather", [INPUT_NAME, "red_at"], ["red"], axis=1),
        helper.make_node("Gather", [INPUT_NAME, "green_at"], ["green"], axis=1),
        helper.make_node("Less", ["nir", "dark_water_nir"], ["dark_nir_water"]),
        helper.make_node("Greater", ["green", "nir"], ["green_over_nir"]),
        helper.make_node("And", ["dark_nir_water", "green_over_nir"], ["dark_water"]),
        helper.make_node("Where", ["dark_water", "c_water", "dw_net"], ["dw"]),
        helper.make_node("Equal", ["dw", "c_trees"], ["is_trees"]),
        helper.make_node("Equal", ["dw", "c_built"], ["is_built"]),
        helper.make_node("Equal", ["dw", "c_bare"], ["is_bare"]),
        helper.make_node("Less", ["nir", "conifer_nir"], ["dark_nir"]),
        helper.make_node("And", ["is_trees", "dark_nir"], ["is_conifer"]),
        helper.make_node("Cast", ["is_trees"], ["f_trees"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["is_conifer"], ["f_conifer"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["is_built"], ["f_built"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["f_trees", "f_conifer", "f_built"], ["masks"], axis=1),
        helper.make_node(
            "AveragePool",
            ["masks"],
            ["shares"],
            kernel_shape=[POOL, POOL],
            pads=[pad, pad, pad, pad],
            count_include_pad=1,
        ),
        helper.make_node(
            "Split", ["shares"], ["s_trees", "s_conifer", "s_built"], axis=1, num_outputs=3
        ),
        helper.make_node("Add", ["s_trees", "eps"], ["s_trees_eps"]),
        helper.make_node("Div", ["s_conifer", "s_trees_eps"], ["conifer_share"]),
        helper.make_node("GreaterOrEqual", ["conifer_share", "coniferous"], ["is_coniferous"]),
        helper.make_node("GreaterOrEqual", ["conifer_share", "mixed"], ["is_mixed"]),
        helper.make_node("GreaterOrEqual", ["s_built", "dense_built"], ["is_dense"]),
        helper.make_node("Sub", ["nir", "red"], ["nd_num"]),
        helper.make_node("Add", ["nir", "red"], ["nd_den0"]),
        helper.make_node("Add", ["nd_den0", "eps"], ["nd_den"]),
        helper.make_node("Div", ["nd_num", "nd_den"], ["ndvi"]),
        helper.make_node("GreaterOrEqual", ["ndvi", "sparse_ndvi"], ["is_sparse"]),
        # output index: base, then the sub-class rules
        helper.make_node("Gather", ["base_lut", "dw"], ["idx0"], axis=0),
        helper.make_node("And", ["is_trees", "is_mixed"], ["t313"]),
        helper.make_node("Where", ["t313", "i313", "idx0"], ["idx1"]),
        helper.make_node("And", ["is_trees", "is_coniferous"], ["t312"]),
        helper.make_node("Where", ["t312", "i312", "idx1"], ["idx2"]),
        helper.make_node("And", ["is_built", "is_dense"], ["t111"]),
        helper.make_node("Where", ["t111", "i111", "idx2"], ["idx3"]),
        helper.make_node("And", ["is_bare", "is_sparse"], ["t333"]),
        helper.make_node("Where", ["t333", "i333", "idx3"], ["idx4"]),
        _const("squeeze_axis", [1], np.int64),
        helper.make_node("Squeeze", ["idx4", "squeeze_axis"], ["idx"]),
        helper.make_node("Cast", ["idx"], [OUTPUT_NAME], to=TensorProto.UINT8),
    ]
    return n


def wrap(net: onnx.ModelProto) -> onnx.ModelProto:
    """The converted network (one NCHW input, one NCHW logits output) between
    :func:`normalisation_nodes` and :func:`head_nodes`: the graph the repository serves."""
    graph = net.graph
    (net_in,) = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    (net_out,) = [o.name for o in graph.output]
    rename = {net_in: NET_INPUT, net_out: NET_OUTPUT}
    body = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [rename.get(x, x) for x in node.input]
        copy.output[:] = [rename.get(x, x) for x in node.output]
        body.append(copy)
    shape: list[str | int | None] = ["N", len(BANDS), "H", "W"]
    wrapped = helper.make_graph(
        [*normalisation_nodes(), *body, *head_nodes()],
        "dynamicworld_clc",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.UINT8, ["N", "H", "W"]),
            helper.make_tensor_value_info(CONFIDENCE_NAME, TensorProto.UINT8, ["N", "H", "W"]),
        ],
        initializer=list(graph.initializer),
    )
    model = helper.make_model(wrapped, opset_imports=list(net.opset_import))
    model.ir_version = net.ir_version
    model.producer_name = "earthsignature dwimport"
    helper.set_model_props(model, {"credit": CREDIT, "license": "Apache-2.0 (see NOTICE)"})
    onnx.checker.check_model(model)
    return model
