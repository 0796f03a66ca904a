"""The second model output, ``confidence``: declared in the spec, checked in the graph, returned
by the embedded runner and by a real Triton, equal to a NumPy recomputation of the softmax."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from pydantic import ValidationError

from earthsignature.models import baseline
from earthsignature.models.errors import InvalidModel
from earthsignature.models.repository import MODEL_FILE, ModelRepository
from earthsignature.models.runners import EmbeddedRunner, TritonRunner
from earthsignature.models.spec import ModelSpec
from earthsignature.testing.triton import TritonServer
from tests.models.conftest import (
    CONFIDENCE_MODEL,
    CONV_CLASSES,
    TEST_MODEL,
    conv_metadata,
    conv_net,
    register,
)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 convolution, padding 1: ``[N, C, H, W]`` -> ``[N, O, H, W]`` (float64)."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    return np.einsum("nchwij,ocij->nohw", windows, w.astype(np.float64)) + b[None, :, None, None]


def reference_confidence(model: onnx.ModelProto, chips: np.ndarray) -> tuple[np.ndarray, ...]:
    """Classes, and the winning softmax probability in percent, from the graph's weights."""
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    hidden = np.maximum(conv2d(chips, weights["w1"], weights["b1"]), 0)
    logits = conv2d(hidden, weights["w2"], weights["b2"])
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    return logits.argmax(axis=1), 100 * prob.max(axis=1)


def chips(seed: int, n: int = 5, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, size=(n, len(baseline.BANDS), size, size)).astype(np.float32)


@pytest.mark.parametrize(
    "outputs",
    [[], ["confidence"], ["confidence", "classes"], ["classes", "classes"], ["classes", "logits"]],
)
def test_outputs_must_be_classes_first_then_confidence(outputs: list[str]) -> None:
    with pytest.raises(ValidationError, match="outputs"):
        ModelSpec.model_validate({**conv_metadata(), "version": 1, "outputs": outputs})


def test_outputs_default_to_classes_only() -> None:
    spec = ModelSpec.model_validate({**conv_metadata(), "version": 1})
    assert spec.outputs == ["classes"] and not spec.has_confidence
    both = spec.model_copy(update={"outputs": ["classes", "confidence"]})
    assert both.has_confidence


def test_embedded_runner_returns_the_softmax_confidence(model_repo: ModelRepository) -> None:
    x = chips(0)
    prediction = EmbeddedRunner(model_repo, CONFIDENCE_MODEL, 1, threads=1).predict(x)
    classes, percent = reference_confidence(
        onnx.load(str(model_repo.onnx_path(CONFIDENCE_MODEL, 1))), x
    )
    assert prediction.confidence is not None
    assert prediction.confidence.dtype == np.uint8 and prediction.classes.dtype == np.uint8
    assert prediction.confidence.shape == prediction.classes.shape == x[:, 0].shape
    # ties between two logits may pick either class; elsewhere the argmax is the same
    assert (prediction.classes == classes).mean() > 0.999
    np.testing.assert_allclose(prediction.confidence, percent, atol=0.51)
    assert prediction.confidence.min() >= 100 // len(CONV_CLASSES)  # max of K probs >= 1/K
    assert len(np.unique(prediction.confidence)) > 10


def test_a_model_without_confidence_returns_none(model_repo: ModelRepository) -> None:
    prediction = EmbeddedRunner(model_repo, TEST_MODEL, 2, threads=1).predict(chips(1))
    assert prediction.confidence is None
    assert prediction.classes.shape == (5, 40, 40)


def test_declaring_confidence_needs_it_in_the_graph(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = ModelRepository(tmp_path / "repo")
    meta = {**conv_metadata(), "outputs": ["classes", "confidence"]}
    with pytest.raises(InvalidModel, match="confidence"):
        register(repo, conv_net(len(baseline.BANDS), len(CONV_CLASSES)), meta)
    assert repo.names() == []


def test_versions_of_one_name_must_share_outputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = ModelRepository(tmp_path / "repo")
    register(repo, conv_net(len(baseline.BANDS), len(CONV_CLASSES)), conv_metadata())
    both = conv_net(len(baseline.BANDS), len(CONV_CLASSES), confidence=True)
    with pytest.raises(InvalidModel, match="outputs"):
        register(repo, both, {**conv_metadata(), "outputs": ["classes", "confidence"]})
    assert (tmp_path / "repo" / TEST_MODEL / "1" / MODEL_FILE).is_file()
    assert repo.versions(TEST_MODEL) == [1]


@pytest.mark.triton
def test_triton_returns_both_outputs_like_the_embedded_runner(
    triton_confidence_server: TritonServer, model_repo: ModelRepository
) -> None:
    spec = model_repo.spec(CONFIDENCE_MODEL, 1)
    x = chips(2, n=spec.max_batch_size + 3)  # two requests
    served = TritonRunner(triton_confidence_server.grpc_url, spec).predict(x)
    embedded = EmbeddedRunner(model_repo, CONFIDENCE_MODEL, 1, threads=1).predict(x)
    assert served.confidence is not None and embedded.confidence is not None
    np.testing.assert_array_equal(served.classes, embedded.classes)
    np.testing.assert_array_equal(served.confidence, embedded.confidence)
    assert served.confidence.dtype == np.uint8 and served.confidence.max() <= 100


@pytest.mark.triton
def test_triton_without_confidence_asks_only_for_classes(
    triton_server: TritonServer, model_repo: ModelRepository
) -> None:
    spec = model_repo.spec(TEST_MODEL, 2)
    served = TritonRunner(triton_server.grpc_url, spec).predict(chips(3))
    assert served.confidence is None and served.classes.shape == (5, 40, 40)
