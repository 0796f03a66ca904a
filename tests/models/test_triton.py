"""The Triton path (tritonclient gRPC -> tritonserver, python backend -> model.onnx in
onnxruntime) against the embedded runner, with two versions of one model on one server."""

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

SERVED = [1, 2]


def test_the_server_loads_both_versions(triton_server: TritonServer) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    try:
        index = client.get_model_repository_index(as_json=True)["models"]
    finally:
        client.close()
    loaded = sorted(int(m["version"]) for m in index if m.get("state") == "READY")
    assert {m["name"] for m in index} == {TEST_MODEL}
    assert loaded == SERVED


@pytest.mark.parametrize("version", SERVED)
def test_triton_and_embedded_give_identical_class_maps_on_a_shard(
    version: int, triton_server: TritonServer, model_repo, make_runtime, synthetic_product, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp_path / "store")
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


def test_each_version_runs_its_own_model(triton_server: TritonServer, model_repo) -> None:  # type: ignore[no-untyped-def]
    chips = np.random.default_rng(5).normal(0, 1, size=(4, 6, 32, 32)).astype(np.float32)
    served = {
        v: TritonRunner(triton_server.grpc_url, model_repo.spec(TEST_MODEL, v))
        .predict(chips)
        .classes
        for v in SERVED
    }
    assert not np.array_equal(served[1], served[2])  # baseline rules vs conv net
    for v in SERVED:
        np.testing.assert_array_equal(
            served[v], EmbeddedRunner(model_repo, TEST_MODEL, v).predict(chips).classes
        )


@pytest.mark.parametrize("version", SERVED)
def test_batches_larger_than_max_batch_size_are_split(
    version: int, triton_server: TritonServer, model_repo
) -> None:  # type: ignore[no-untyped-def]
    spec = model_repo.spec(TEST_MODEL, version)
    chips = (
        np.random.default_rng(3)
        .normal(size=(spec.max_batch_size * 2 + 3, 6, 40, 56))
        .astype(np.float32)
    )
    served = TritonRunner(triton_server.grpc_url, spec).predict(chips).classes
    assert served.shape == (len(chips), 40, 56)
    np.testing.assert_array_equal(
        served, EmbeddedRunner(model_repo, TEST_MODEL, version).predict(chips).classes
    )


def test_a_version_that_is_not_loaded_is_a_clear_error(
    triton_server: TritonServer, model_repo
) -> None:  # type: ignore[no-untyped-def]
    spec = model_repo.spec(TEST_MODEL, 2).model_copy(update={"version": 3})
    with pytest.raises(
        ModelNotFound, match=r"'clc-test' version 3 not available in Triton at 127\.0\.0\.1:"
    ):
        TritonRunner(triton_server.grpc_url, spec)


def test_the_server_refuses_a_version_missing_from_the_repository(model_repo) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelNotFound, match="'clc-test' version 9 not available"):
        TritonServer(model_repo.root, TEST_MODEL, [2, 9])


def test_the_embedded_runner_names_a_missing_version(model_repo) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelNotFound, match="'clc-test' version 9 not available"):
        EmbeddedRunner(model_repo, TEST_MODEL, 9)
