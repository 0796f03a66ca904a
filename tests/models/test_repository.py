"""Model repository, metadata and the baseline graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from earthsignature import corine
from earthsignature.models import baseline
from earthsignature.models.errors import InvalidModel, ModelNotFound
from earthsignature.models.repository import SHIPPED, ModelRepository, load_spec
from earthsignature.models.runners import EmbeddedRunner, get_backend
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore
from tests.models.conftest import TEST_MODEL, conv_metadata, conv_net, register


def test_shipped_default_model_matches_the_settings_contract(tmp_path: Path) -> None:
    settings = Settings(store=str(tmp_path))
    rt = Runtime(settings=settings, store=LocalStore(tmp_path))
    spec = load_spec(rt, settings.model_name, settings.model_version)
    assert (spec.name, spec.version) == ("clc-baseline", 1)
    assert (SHIPPED / "clc-baseline" / "config.pbtxt").read_text().count(
        'backend: "onnxruntime"'
    ) == 1
    assert (SHIPPED / "clc-baseline" / "1" / "model.onnx").stat().st_size < 5_000_000
    assert [c.rgb for c in spec.legend()] == [corine.clc_class(c).rgb for c in spec.classes]
    assert isinstance(get_backend(rt, spec.name, spec.version), EmbeddedRunner)
    assert get_backend(rt, spec.name, spec.version) is get_backend(rt, spec.name, spec.version)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_baseline_graph_matches_its_numpy_reference(seed: int) -> None:
    repo = ModelRepository(SHIPPED)
    runner = EmbeddedRunner(repo, "clc-baseline", 1, threads=1)
    x = np.random.default_rng(seed).uniform(0, 0.6, size=(3, 6, 40, 40)).astype(np.float32)
    expected = baseline.predict_numpy(x)
    assert len(np.unique(expected)) >= 5
    np.testing.assert_array_equal(runner.predict(x).classes, expected)


# Typical L2A reflectance of B02 B03 B04 B08 B11 B12 (library spectra, not tuned to the data).
SPECTRA = {
    "clear lake": ([0.06, 0.05, 0.03, 0.02, 0.01, 0.01], 5),
    "snow": ([0.85, 0.85, 0.82, 0.75, 0.10, 0.08], 33),
    "broad-leaved forest": ([0.03, 0.06, 0.03, 0.38, 0.17, 0.08], 31),
    "coniferous forest": ([0.02, 0.04, 0.02, 0.20, 0.10, 0.05], 31),
    "green crop": ([0.04, 0.08, 0.05, 0.30, 0.22, 0.12], 21),
    "desert sand": ([0.20, 0.28, 0.38, 0.45, 0.55, 0.48], 33),
}


@pytest.mark.parametrize("name", SPECTRA)
def test_baseline_classes_typical_spectra(name: str) -> None:
    values, level2 = SPECTRA[name]
    x = np.asarray(values, dtype=np.float32)[None, :, None, None]
    code = baseline.CLASSES[int(baseline.predict_numpy(x)[0, 0, 0])]
    assert code // 10 == level2 or (level2 == 5 and code // 100 == 5), code


def test_register_adds_versions_side_by_side(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    assert register(repo, conv_net(6, 5), conv_metadata()) == 1
    assert register(repo, conv_net(6, 5, seed=1), conv_metadata()) == 2
    assert repo.versions(TEST_MODEL) == [1, 2] and repo.names() == [TEST_MODEL]
    assert "version_policy: { all: {} }" in (tmp_path / TEST_MODEL / "config.pbtxt").read_text()
    spec = repo.spec(TEST_MODEL, 2)
    assert spec.margin == 2 and spec.step == 44


def test_register_refuses_a_graph_that_returns_logits(tmp_path: Path) -> None:
    model = conv_net(6, 5)
    model.graph.node.pop()  # drop the uint8 cast
    model.graph.node[-1].output[0] = "classes"
    model.graph.output[0].CopyFrom(
        helper.make_tensor_value_info("classes", TensorProto.INT64, ["N", "H", "W"])
    )
    with pytest.raises(InvalidModel, match="uint8 class indices"):
        register(ModelRepository(tmp_path), model, conv_metadata())
    assert ModelRepository(tmp_path).versions(TEST_MODEL) == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"bands": ["B02", "B99"]}, "ESA ids"),
        ({"classes": [999]}, "CORINE"),
        ({"chip_size": 4}, "chip_size"),
    ],
)
def test_bad_metadata_is_refused(tmp_path: Path, change: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        register(ModelRepository(tmp_path), conv_net(6, 5), {**conv_metadata(), **change})


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="'nope' version 1 not available"):
        ModelRepository(tmp_path).spec("nope", 1)
