"""Every Triton config in infra/ parses as protobuf text and matches the models it serves."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from earthsignature.models.repository import CONFIG_FILE, MODEL_FILE, SHIPPED, ModelRepository
from earthsignature.models.spec import METADATA_FILE
from tests.infra.conftest import INFRA

TRITON_DIR = INFRA / "triton"
GPU_CONFIGS = sorted(TRITON_DIR.glob(f"*/{CONFIG_FILE}"))
ONNX_TO_TRITON = {
    onnx.TensorProto.FLOAT: model_config_pb2.TYPE_FP32,
    onnx.TensorProto.UINT8: model_config_pb2.TYPE_UINT8,
}


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("triton_render", TRITON_DIR / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def graph_io(model: onnx.ModelProto) -> dict[str, tuple[int, list[int]]]:
    """Tensor name -> (triton data type, dims without the batch axis; -1 for symbolic)."""
    out = {}
    for value in [*model.graph.input, *model.graph.output]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        out[value.name] = (ONNX_TO_TRITON[tensor.elem_type], dims[1:])
    return out


def test_every_shipped_model_has_a_gpu_config() -> None:
    served = {path.parent.name for path in GPU_CONFIGS}
    assert served == set(ModelRepository(SHIPPED).names())


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.parent.name)
def test_gpu_config_matches_model_files_and_metadata(path: Path) -> None:
    config = parse(path)
    repo = ModelRepository(SHIPPED)
    name = path.parent.name
    assert config.name == name
    assert config.platform == "onnxruntime_onnx"
    assert config.version_policy.WhichOneof("policy_choice") == "all"
    versions = repo.versions(name)
    assert versions, f"{name} has no versions in {SHIPPED}"
    for version in versions:
        vdir = SHIPPED / name / str(version)
        assert (vdir / MODEL_FILE).is_file() and (vdir / METADATA_FILE).is_file()
        spec = repo.spec(name, version)
        assert (spec.name, spec.version) == (name, version)
        assert config.max_batch_size == spec.max_batch_size
        declared = {t.name: (t.data_type, list(t.dims)) for t in [*config.input, *config.output]}
        graph = graph_io(onnx.load(str(vdir / MODEL_FILE)))
        assert declared == graph
        assert [t.dims[0] for t in config.input] == [len(spec.bands)]


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.parent.name)
def test_gpu_config_batches_and_uses_gpus(path: Path) -> None:
    config = parse(path)
    preferred = list(config.dynamic_batching.preferred_batch_size)
    assert config.HasField("dynamic_batching") and preferred
    assert all(0 < size <= config.max_batch_size for size in preferred)
    assert config.max_batch_size in preferred  # one infer job's full batch runs at once
    assert 0 < config.dynamic_batching.max_queue_delay_microseconds <= 100_000
    assert config.instance_group and all(
        g.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU and g.count >= 1
        for g in config.instance_group
    )


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.parent.name)
def test_gpu_config_is_what_render_writes(path: Path) -> None:
    rendered = render_module().render(ModelRepository(SHIPPED))
    assert path.read_text() == rendered[path.parent.name]


def test_render_refuses_versions_with_different_interfaces(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    base = SHIPPED / "clc-baseline"
    model = repo_dir / "clc-baseline"
    (model / "1").mkdir(parents=True)
    (model / "2").mkdir()
    for version, batch in (("1", 16), ("2", 4)):
        (model / version / MODEL_FILE).write_bytes((base / "1" / MODEL_FILE).read_bytes())
        meta = (base / "1" / METADATA_FILE).read_text()
        meta = meta.replace('"max_batch_size": 16', f'"max_batch_size": {batch}')
        meta = meta.replace('"version": 1', f'"version": {version}')
        (model / version / METADATA_FILE).write_text(meta)
    (model / CONFIG_FILE).write_text((base / CONFIG_FILE).read_text())
    with pytest.raises(SystemExit, match="differ"):
        render_module().render(ModelRepository(repo_dir))


def test_shipped_repository_configs_parse() -> None:
    for path in SHIPPED.glob(f"*/{CONFIG_FILE}"):
        config = parse(path)
        assert config.name == path.parent.name


def test_gpu_config_declares_every_output_of_a_confidence_model(tmp_path: Path) -> None:
    """A model with classes and confidence: the rendered config declares both, as the graph."""
    import tempfile

    from earthsignature.models import baseline
    from tests.models.conftest import CONFIDENCE_MODEL, CONV_CLASSES, conv_metadata, conv_net

    repo = ModelRepository(tmp_path / "repo")
    graph = conv_net(len(baseline.BANDS), len(CONV_CLASSES), confidence=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(graph, f"{tmp}/model.onnx")
        meta = {**conv_metadata(), "name": CONFIDENCE_MODEL, "outputs": ["classes", "confidence"]}
        repo.register(Path(tmp) / "model.onnx", meta)
    rendered = render_module().render(repo)[CONFIDENCE_MODEL]
    config = text_format.Parse(rendered, model_config_pb2.ModelConfig())
    assert [t.name for t in config.output] == ["classes", "confidence"]
    declared = {t.name: (t.data_type, list(t.dims)) for t in [*config.input, *config.output]}
    assert declared == graph_io(graph)
    # the repository's own config (Triton's onnxruntime backend) declares both too
    written = parse(tmp_path / "repo" / CONFIDENCE_MODEL / CONFIG_FILE)
    assert [t.name for t in written.output] == ["classes", "confidence"]
