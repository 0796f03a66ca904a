"""The Triton path (tritonclient gRPC -> PyTriton -> model.onnx) against the embedded runner."""

from __future__ import annotations

import numpy as np
import pytest

from earthsignature.functions import infer, shards, split
from earthsignature.models.errors import ModelNotFound
from earthsignature.models.runners import EmbeddedRunner, TritonRunner, get_backend
from earthsignature.storage import LocalStore
from earthsignature.testing.triton import TritonServer
from tests.models.conftest import TEST_MODEL

pytestmark = pytest.mark.triton


def test_triton_and_embedded_give_identical_class_maps_on_a_shard(
    triton_server: TritonServer, model_repo, make_runtime, synthetic_product, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp_path / "store")
    version = 2
    msg = synthetic_product(store, h=120, w=200, seed=version, version=version)
    embedded_rt = make_runtime(store, model_repo)
    triton_rt = make_runtime(store, model_repo, triton_url=triton_server.grpc_url)
    assert isinstance(get_backend(triton_rt, TEST_MODEL, version), TritonRunner)
    assert isinstance(get_backend(embedded_rt, TEST_MODEL, version), EmbeddedRunner)

    shard_msg = split.handle(msg, embedded_rt)[0]
    infer.handle(shard_msg, embedded_rt)
    embedded = shards.decode(store.get_bytes(shards.prediction_key(shard_msg, 0)))
    infer.handle(shard_msg, triton_rt)  # same deterministic key, overwritten
    served = shards.decode(store.get_bytes(shards.prediction_key(shard_msg, 0)))

    assert served["classes"].dtype == np.uint8
    assert len(np.unique(served["classes"])) >= 2
    np.testing.assert_array_equal(served["classes"], embedded["classes"])
    np.testing.assert_array_equal(served["origins"], embedded["origins"])


def test_batches_larger_than_max_batch_size_are_split(
    triton_server: TritonServer, model_repo
) -> None:  # type: ignore[no-untyped-def]
    spec = model_repo.spec(TEST_MODEL, 2)
    chips = (
        np.random.default_rng(3)
        .normal(size=(spec.max_batch_size * 2 + 3, 6, 40, 56))
        .astype(np.float32)
    )
    served = TritonRunner(triton_server.grpc_url, spec).predict(chips)
    assert served.shape == (len(chips), 40, 56)
    np.testing.assert_array_equal(served, EmbeddedRunner(model_repo, TEST_MODEL, 2).predict(chips))


def test_a_version_that_is_not_loaded_is_a_clear_error(
    triton_server: TritonServer, model_repo
) -> None:  # type: ignore[no-untyped-def]
    spec = model_repo.spec(TEST_MODEL, 1)  # in the repository, not loaded by the server
    with pytest.raises(
        ModelNotFound, match=r"'clc-test' version 1 not available in Triton at 127\.0\.0\.1:"
    ):
        TritonRunner(triton_server.grpc_url, spec)


def test_the_embedded_runner_names_a_missing_version(model_repo) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelNotFound, match="'clc-test' version 9 not available"):
        EmbeddedRunner(model_repo, TEST_MODEL, 9)
