"""A real Triton server on loopback, serving several versions of a repository model on CPU.

The server is the ``tritonserver`` binary that PyTriton ships (with its python backend and
the ``triton_python_backend_stub`` built for this interpreter), started the way PyTriton
starts it: explicit model control, python-backend shared memory under a unique prefix, our
venv's ``bin`` first on ``PATH`` and PyTriton's bundled libraries plus libpython on
``LD_LIBRARY_PATH``. PyTriton's own ``Triton.bind`` cannot serve two versions of one model
name (0.7 names its proxy sockets after the model only), so instead of binding through it
we write a plain Triton model repository: one python-backend model with the production
``config.pbtxt`` I/O (:func:`~earthsignature.models.repository.triton_io_config`, every
version side by side) and one ``<version>/model.py`` per served version. Each version's
:class:`OnnxPythonModel` runs that version's own ``model.onnx`` from our repository in
onnxruntime, so the Triton client path (tritonclient gRPC, model name, version, inputs,
outputs, batch limit) is exactly the production one. Versions not asked for are not in
the generated repository, so Triton reports them as not available.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from earthsignature.testing.ports import free_port

#: model.py of every served version: the backend imports ``TritonPythonModel`` from it.
MODEL_PY = "from earthsignature.testing.triton import OnnxPythonModel as TritonPythonModel\n"
#: Python-backend shared memory, as PyTriton sizes it (the backend grows it on demand).
SHM_DEFAULT_BYTES = 4 * 1024 * 1024
SHM_GROWTH_BYTES = 1024 * 1024


def _distribution() -> tuple[Path, Path]:
    """PyTriton's tritonserver directory and its bundled shared libraries."""
    from pytriton.utils.distribution import get_libs_path, get_root_module_path

    return get_root_module_path() / "tritonserver", get_libs_path()


def _child_env(libs: Path) -> dict[str, str]:
    """tritonserver and the python stub link libpython and PyTriton's bundled libraries; the
    stub runs this venv's interpreter, so its ``bin`` goes first on PATH (as PyTriton does)."""
    env = dict(os.environ)
    paths = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = ":".join(p for p in dict.fromkeys([libdir, *paths, str(libs)]) if p)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def _backends(workspace: Path, dist: Path) -> Path:
    """A backend directory holding the python backend and the stub for this interpreter."""
    target = workspace / "backends" / "python"
    target.mkdir(parents=True)
    for item in (dist / "backends" / "python").iterdir():
        if item.is_file():
            shutil.copy2(item, target / item.name)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise RuntimeError(f"PyTriton ships no python backend stub for Python {version}")
    shutil.copy2(stub, target / stub.name)
    return workspace / "backends"


def _model_repository(
    workspace: Path, repository: Path, name: str, versions: Sequence[int], threads: int
) -> Path:
    """``<workspace>/models/<name>``: production I/O config on the python backend, one
    ``model.py`` per served version, our repository's root passed as a parameter."""
    from earthsignature.models.repository import ModelRepository, triton_io_config

    repo = ModelRepository(repository)
    specs = [repo.spec(name, v) for v in versions]  # ModelNotFound if a version is missing
    if len({(s.max_batch_size, tuple(s.bands), tuple(s.outputs)) for s in specs}) != 1:
        raise ValueError(
            f"versions {list(versions)} of {name} differ in batch limit, bands or outputs"
        )
    params = {"repository": str(Path(repository).resolve()), "threads": str(threads)}
    config = triton_io_config(specs[0], 'backend: "python"') + (
        "instance_group [ { kind: KIND_CPU count: 1 } ]\n"
        + "".join(
            f'parameters: {{ key: "{k}" value: {{ string_value: {json.dumps(v)} }} }}\n'
            for k, v in params.items()
        )
    )
    models = workspace / "models"
    folder = models / specs[0].name
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config)
    for spec in specs:
        (folder / str(spec.version)).mkdir()
        (folder / str(spec.version) / "model.py").write_text(MODEL_PY)
    return models


class TritonServer:
    """Serve ``name`` at ``versions`` from ``repository``; ``.grpc_url`` is ``127.0.0.1:PORT``."""

    def __init__(
        self,
        repository: Path | str,
        name: str,
        versions: Sequence[int],
        *,
        threads: int = 1,
        timeout: float = 120.0,
    ) -> None:
        if not versions:
            raise ValueError("serve at least one version")
        self.repository = Path(repository)
        self.name = name
        self.versions = sorted({int(v) for v in versions})
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self._workspace = Path(tempfile.mkdtemp(prefix="earthsig-triton-"))
        self._log_path = self._workspace / "tritonserver.log"
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            dist, libs = _distribution()
            models = _model_repository(
                self._workspace, self.repository, name, self.versions, threads
            )
            backends = _backends(self._workspace, dist)
            shm_prefix = f"earthsig{os.getpid()}-{uuid.uuid4().hex[:8]}"
            args = [
                str(dist / "bin" / "tritonserver"),
                f"--model-repository={models}", f"--backend-directory={backends}",
                "--model-control-mode=explicit", "--load-model=*",
                "--allow-grpc=true", "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                "--allow-http=true", "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                "--allow-metrics=false", "--metrics-address=127.0.0.1",
                f"--metrics-port={self.metrics_port}",
                f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
                f"--backend-config=python,shm-default-byte-size={SHM_DEFAULT_BYTES}",
                f"--backend-config=python,shm-growth-byte-size={SHM_GROWTH_BYTES}",
                "--exit-timeout-secs=10", "--log-verbose=0",
            ]  # fmt: skip
            with self._log_path.open("wb") as log:
                self._proc = subprocess.Popen(
                    args,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_child_env(libs),
                    cwd=self._workspace,
                    start_new_session=True,
                )
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        import tritonclient.grpc as grpcclient

        assert self._proc is not None
        deadline = time.monotonic() + timeout
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"tritonserver exited ({self._proc.returncode}): {self.log_tail()}"
                    )
                with contextlib.suppress(Exception):
                    if client.is_server_ready() and all(
                        client.is_model_ready(self.name, str(v)) for v in self.versions
                    ):
                        return
                time.sleep(0.2)
        finally:
            client.close()
        raise TimeoutError(f"Triton not ready in {timeout}s: {self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        """The end of the server's log (empty once stopped)."""
        with contextlib.suppress(OSError):
            return self._log_path.read_text(errors="replace")[-size:]
        return ""

    def stop(self) -> None:
        """SIGTERM the server's process group, wait, remove its workspace (idempotent)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self._workspace, ignore_errors=True)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class OnnxPythonModel:
    """Triton python-backend model: one version's ``model.onnx`` from our repository in
    onnxruntime (the same :class:`~earthsignature.models.runners.EmbeddedRunner` the
    embedded path uses). Runs inside Triton's python stub, never in the test process."""

    def initialize(self, args: dict[str, Any]) -> None:
        from earthsignature.models.repository import ModelRepository
        from earthsignature.models.runners import EmbeddedRunner

        params = json.loads(args["model_config"])["parameters"]
        self.runner = EmbeddedRunner(
            ModelRepository(params["repository"]["string_value"]),
            args["model_name"],
            int(args["model_version"]),
            threads=int(params["threads"]["string_value"]),
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        from earthsignature.models.spec import CONFIDENCE_NAME, INPUT_NAME, OUTPUT_NAME

        responses = []
        for request in requests:
            try:
                chips = pb_utils.get_input_tensor_by_name(request, INPUT_NAME).as_numpy()
                prediction = self.runner.predict(chips)
                tensors = [pb_utils.Tensor(OUTPUT_NAME, prediction.classes)]
                if prediction.confidence is not None:  # every output the spec declares
                    tensors.append(pb_utils.Tensor(CONFIDENCE_NAME, prediction.confidence))
                responses.append(pb_utils.InferenceResponse(tensors))
            except Exception as exc:  # reported to the client, not raised in the stub
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{exc!r}")))
        return responses
