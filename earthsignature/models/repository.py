"""A Triton model repository plus the metadata the pipeline needs.

Layout (what Triton's onnxruntime backend loads, with one extra file per version)::

    <repo>/<name>/config.pbtxt              one per model; every version is served
    <repo>/<name>/<version>/model.onnx      input [N, bands, H, W] float32 -> classes uint8
    <repo>/<name>/<version>/earthsig.json   ModelSpec: bands, normalisation, chips, classes

The same directory serves a real Triton, the embedded onnxruntime runner and the PyTriton test
server. The package ships one under ``earthsignature/models/repository``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from earthsignature.models.errors import InvalidModel, ModelNotFound
from earthsignature.models.spec import (
    CONFIDENCE_NAME,
    INPUT_NAME,
    METADATA_FILE,
    OUTPUT_NAME,
    ModelSpec,
)
from earthsignature.storage import layout

if TYPE_CHECKING:
    from earthsignature.runtime import Runtime

#: The repository shipped in the package (Settings.model_repository None means this one).
SHIPPED = Path(__file__).resolve().parent / "repository"
MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.pbtxt"


def triton_io_config(spec: ModelSpec, runtime: str) -> str:
    """The part of config.pbtxt every deployment shares: name, runtime line, batch limit,
    version policy (every version side by side), input and output tensors (every name in
    ``spec.outputs``, all uint8 ``[N, H, W]``)."""
    outputs = ",\n".join(
        f'  {{ name: "{name}" data_type: TYPE_UINT8 dims: [ -1, -1 ] }}' for name in spec.outputs
    )
    return (
        f'name: "{spec.name}"\n'
        f"{runtime}\n"
        f"max_batch_size: {spec.max_batch_size}\n"
        "version_policy: { all: {} }\n"
        "input [\n"
        f'  {{ name: "{INPUT_NAME}" data_type: TYPE_FP32 dims: [ {len(spec.bands)}, -1, -1 ] }}\n'
        "]\n"
        f"output [\n{outputs}\n]\n"
    )


def triton_config(spec: ModelSpec) -> str:
    """config.pbtxt for Triton's onnxruntime backend, serving every version side by side."""
    return triton_io_config(spec, 'backend: "onnxruntime"') + (
        "instance_group [ { kind: KIND_AUTO } ]\n"
    )


class ModelRepository:
    """Read and extend a Triton-layout repository on the local file system."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ModelRepository({str(self.root)!r})"

    def names(self) -> list[str]:
        """Models (directories with a config.pbtxt)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CONFIG_FILE).is_file())

    def versions(self, name: str) -> list[int]:
        """Versions of a model that have both model.onnx and metadata, ascending."""
        folder = self.root / layout.model_name(name)
        if not folder.is_dir():
            return []
        found = []
        for sub in folder.iterdir():
            if (
                sub.name.isdigit()
                and (sub / MODEL_FILE).is_file()
                and (sub / METADATA_FILE).is_file()
            ):
                found.append(int(sub.name))
        return sorted(found)

    def onnx_path(self, name: str, version: int) -> Path:
        path = self.root / layout.model_name(name) / str(layout.model_version(version)) / MODEL_FILE
        if not path.is_file():
            raise ModelNotFound(name, version, str(self.root), self.versions(name))
        return path

    def spec(self, name: str, version: int) -> ModelSpec:
        """The metadata of one version; ModelNotFound when it is not there."""
        path = self.onnx_path(name, version).with_name(METADATA_FILE)
        if not path.is_file():
            raise ModelNotFound(name, version, str(self.root), self.versions(name))
        try:
            spec = ModelSpec.model_validate_json(path.read_text())
        except ValueError as exc:
            raise InvalidModel(f"{path}: {exc}") from exc
        if spec.name != name or spec.version != version:
            raise InvalidModel(f"{path} describes {spec.name} v{spec.version}")
        return spec

    def register(
        self, onnx_file: Path, metadata: dict[str, Any], *, version: int | None = None
    ) -> ModelSpec:
        """Add ``onnx_file`` as a new version (next free number unless given) of
        ``metadata["name"]``; writes config.pbtxt for a new model. Returns the stored spec.

        The version folder is built beside its final place and renamed in, so a half-copied
        version is never visible to a server polling the repository.
        """
        name = layout.model_name(metadata["name"])
        existing = self.versions(name)
        number = version if version is not None else (max(existing, default=0) + 1)
        if number in existing:
            raise InvalidModel(f"{name} version {number} already exists in {self.root}")
        spec = ModelSpec.model_validate({**metadata, "name": name, "version": number})
        check_graph(onnx.load(str(onnx_file)), spec)
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / CONFIG_FILE
        if config.is_file() and existing:
            first = self.spec(name, existing[0])
            if (len(first.bands), first.max_batch_size, first.outputs) != (
                len(spec.bands),
                spec.max_batch_size,
                spec.outputs,
            ):
                raise InvalidModel(
                    f"{name}: versions must share band count, max batch size and outputs "
                    f"({len(first.bands)}, {first.max_batch_size}, {first.outputs}); "
                    "register a new model name"
                )
        else:
            config.write_text(triton_config(spec))
        staging = Path(tempfile.mkdtemp(prefix=f".{number}-", dir=folder))
        try:
            shutil.copyfile(onnx_file, staging / MODEL_FILE)
            (staging / METADATA_FILE).write_text(json.dumps(spec.model_dump(), indent=2) + "\n")
            staging.chmod(0o755)  # mkdtemp makes 0700; servers may run as another user
            staging.rename(folder / str(number))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return spec


def check_graph(model: onnx.ModelProto, spec: ModelSpec) -> None:
    """Refuse graphs whose input/output names, types or channel count differ from the spec."""
    inputs = {i.name: i for i in model.graph.input}
    outputs = {o.name: o for o in model.graph.output}
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise InvalidModel(f"graph needs input {INPUT_NAME!r} and output {OUTPUT_NAME!r}")
    missing = [name for name in spec.outputs if name not in outputs]
    if missing:
        raise InvalidModel(f"the metadata declares outputs {missing} the graph lacks")
    if CONFIDENCE_NAME in outputs and CONFIDENCE_NAME not in spec.outputs:
        raise InvalidModel(f"the graph has a {CONFIDENCE_NAME!r} output the metadata omits")
    in_type = inputs[INPUT_NAME].type.tensor_type
    if in_type.elem_type != onnx.TensorProto.FLOAT:
        raise InvalidModel("input must be float32")
    for name in spec.outputs:  # classes, and confidence when the spec declares it
        if (
            name not in outputs
            or outputs[name].type.tensor_type.elem_type != onnx.TensorProto.UINT8
        ):
            what = "uint8 class indices" if name == OUTPUT_NAME else "uint8 percent"
            raise InvalidModel(f"graph output {name!r} (declared in outputs) must be {what}")
    dims = in_type.shape.dim
    if len(dims) != 4 or (dims[1].HasField("dim_value") and dims[1].dim_value != len(spec.bands)):
        raise InvalidModel(f"input must be [N, {len(spec.bands)}, H, W]")


def repository_for(rt_or_repo: Runtime | ModelRepository | Path | str | None) -> ModelRepository:
    """The repository named by a Runtime's settings, a path, or the shipped one (None)."""
    if isinstance(rt_or_repo, ModelRepository):
        return rt_or_repo
    if rt_or_repo is None:
        return ModelRepository(SHIPPED)
    if isinstance(rt_or_repo, (str, Path)):
        return ModelRepository(rt_or_repo)
    configured = rt_or_repo.settings.model_repository
    return ModelRepository(configured if configured is not None else SHIPPED)


def load_spec(
    rt_or_repo: Runtime | ModelRepository | Path | str | None, name: str, version: int
) -> ModelSpec:
    """The ModelSpec of ``name`` version ``version`` (see :func:`repository_for`)."""
    return repository_for(rt_or_repo).spec(name, version)
