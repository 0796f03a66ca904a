"""A real Triton server on loopback through PyTriton, serving repository models on CPU.

Each served version's python-backend model runs the repository's own ``model.onnx`` in
onnxruntime, so the Triton client path (tritonclient gRPC, model name, version, inputs,
outputs) is exactly the production one. The server runs in a child process
(``python -m earthsignature.testing.triton``) stopped with SIGTERM by :meth:`TritonServer.stop`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from earthsignature.testing.ports import free_port

#: Sentinel printed by the child once every model is loaded.
READY = "EARTHSIG-TRITON-READY"


def _child_env() -> dict[str, str]:
    """PyTriton's tritonserver links libpython: the interpreter's LIBDIR must be on the path."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env = dict(os.environ)
    paths = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    if libdir and libdir not in paths:
        env["LD_LIBRARY_PATH"] = ":".join([libdir, *paths])
    return env


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
        if len(versions) != 1:
            # PyTriton 0.7 keys its proxy sockets by model name, so two versions of one name
            # collide ("Address already in use"); a real Triton serves them via version_policy.
            raise ValueError("PyTriton serves one version of a model per server")
        self.repository = Path(repository)
        self.name = name
        self.versions = list(versions)
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="earthsig-triton-", suffix=".log", delete=False
        )
        args = [
            sys.executable, "-m", "earthsignature.testing.triton",
            "--repository", str(self.repository), "--name", name,
            "--versions", ",".join(str(v) for v in self.versions), "--threads", str(threads),
            "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
            "--metrics-port", str(self.metrics_port),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            start_new_session=True,
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        import tritonclient.grpc as grpcclient

        deadline = time.monotonic() + timeout
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"PyTriton exited ({self._proc.returncode}): {self.log_tail()}"
                    )
                with contextlib.suppress(Exception):
                    if client.is_server_ready() and all(
                        client.is_model_ready(self.name, str(v)) for v in self.versions
                    ):
                        return
                time.sleep(0.3)
        finally:
            client.close()
        raise TimeoutError(f"Triton not ready in {timeout}s: {self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        return Path(self._log.name).read_text(errors="replace")[-size:]

    def stop(self) -> None:
        """SIGTERM the server's process group and wait (idempotent)."""
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        if not self._log.closed:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(argv: Sequence[str] | None = None) -> None:
    """Child process: bind one PyTriton model per version, each running its model.onnx."""
    import numpy as np
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    from earthsignature.models.repository import ModelRepository
    from earthsignature.models.runners import EmbeddedRunner
    from earthsignature.models.spec import INPUT_NAME, OUTPUT_NAME

    parser = argparse.ArgumentParser()
    for flag in ("--repository", "--name", "--versions"):
        parser.add_argument(flag, required=True)
    for flag in ("--threads", "--grpc-port", "--http-port", "--metrics-port"):
        parser.add_argument(flag, type=int, required=True)
    args = parser.parse_args(argv)
    repository = ModelRepository(args.repository)
    config = TritonConfig(
        grpc_address="127.0.0.1", grpc_port=args.grpc_port,
        http_address="127.0.0.1", http_port=args.http_port,
        metrics_address="127.0.0.1", metrics_port=args.metrics_port,
        allow_metrics=False, log_verbose=0,
    )  # fmt: skip

    def infer_for(runner: EmbeddedRunner):  # type: ignore[no-untyped-def]
        @batch
        def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
            return {OUTPUT_NAME: runner.predict(inputs[INPUT_NAME])}

        return infer

    with Triton(config=config) as triton:
        for version in (int(v) for v in args.versions.split(",")):
            runner = EmbeddedRunner(repository, args.name, version, threads=args.threads)
            spec = runner.spec
            triton.bind(
                model_name=args.name,
                model_version=version,
                infer_func=infer_for(runner),
                inputs=[Tensor(name=INPUT_NAME, dtype=np.float32, shape=(len(spec.bands), -1, -1))],
                outputs=[Tensor(name=OUTPUT_NAME, dtype=np.uint8, shape=(-1, -1))],
                config=ModelConfig(max_batch_size=spec.max_batch_size),
                strict=True,
            )
        signal.signal(signal.SIGTERM, lambda *_: triton.stop())
        print(READY, flush=True)
        triton.serve()


if __name__ == "__main__":
    _serve()
