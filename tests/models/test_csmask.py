"""Cloud-mask models in the repository: the ``kind`` of a spec, and `earthsig models
import-csmask` building one from the installed ukis-csmask package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.models.csmask import package_file
from earthsignature.models.repository import SHIPPED, ModelRepository, check_graph
from earthsignature.models.spec import ModelSpec

BASE = {
    "name": "m",
    "version": 1,
    "bands": ["B02"],
    "mean": [0.0],
    "std": [1.0],
    "chip_size": 64,
    "receptive_field": 1,
}


def test_kind_decides_what_classes_mean() -> None:
    assert ModelSpec(**BASE, classes=[112, 512]).kind == "landcover"
    assert ModelSpec(**BASE, kind="cloudmask", classes=[0, 1, 2]).classes == [0, 1, 2]
    with pytest.raises(ValueError, match="CORINE"):
        ModelSpec(**BASE, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="cloudmask"):
        ModelSpec(**BASE, kind="cloudmask", classes=[112, 512])
    with pytest.raises(ValueError):
        ModelSpec(**BASE, kind="clouds", classes=[0, 1, 2])


def test_shipped_models_stay_landcover() -> None:
    repo = ModelRepository(SHIPPED)
    for name in repo.names():
        for version in repo.versions(name):
            assert repo.spec(name, version).kind == "landcover"


def test_import_csmask_registers_a_servable_cloudmask_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARTHSIG_MODEL_REPOSITORY", str(tmp_path))
    result = CliRunner().invoke(cli, ["models", "import-csmask"])
    assert result.exit_code == 0, result.output
    assert "registered csmask-l2a version 1" in result.output
    shown = CliRunner().invoke(cli, ["models", "show", "csmask-l2a", "1"])
    spec = ModelSpec.model_validate(json.loads(shown.output))
    assert spec.kind == "cloudmask"
    assert spec.bands == ["B02", "B03", "B04", "B08", "B11", "B12"]
    assert (spec.chip_size, spec.margin, spec.step) == (256, 32, 192)
    original = package_file("model_6b_l2a.onnx")
    assert spec.source["sha256"] == hashlib.sha256(original.read_bytes()).hexdigest()
    assert "Apache-2.0" in spec.source["licence"]
    repo = ModelRepository(tmp_path)
    check_graph(onnx.load(str(repo.onnx_path("csmask-l2a", 1))), spec)
    config = (tmp_path / "csmask-l2a" / "config.pbtxt").read_text()
    assert 'name: "classes" data_type: TYPE_UINT8' in config
