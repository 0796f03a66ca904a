"""Inference backends: one interface, two implementations on the same ``model.onnx``.

- :class:`EmbeddedRunner`: onnxruntime in this process (CPU; the default without Triton).
- :class:`TritonRunner`: tritonclient over gRPC to a Triton server (real, or PyTriton in tests),
  naming model and version, in batches no larger than the model's ``max_batch_size``.

Both take normalised chips float32 ``[N, bands, H, W]`` and return a :class:`Prediction`:
uint8 class indices ``[N, H, W]`` and, for models whose spec declares it, the uint8 confidence
``[N, H, W]`` (winning-class softmax probability in percent). Argmax and softmax are inside the
graph, so class and confidence maps cross the wire, never float logits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from earthsignature.models.errors import BackendUnavailable, InvalidModel, ModelNotFound
from earthsignature.models.repository import ModelRepository, repository_for
from earthsignature.models.spec import CONFIDENCE_NAME, INPUT_NAME, OUTPUT_NAME, ModelSpec

if TYPE_CHECKING:
    from earthsignature.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """What a model returns for ``N`` chips: class indices and, optionally, confidence."""

    classes: np.ndarray  # uint8 [N, H, W], indices into ModelSpec.classes
    confidence: np.ndarray | None = None  # uint8 [N, H, W], 0..100 %, None without the output

    @classmethod
    def from_outputs(cls, spec: ModelSpec, outputs: list[dict[str, np.ndarray]]) -> Prediction:
        """Concatenate per-batch ``{output name: array}`` dicts; checks dtype and value range."""
        classes = np.concatenate([o[OUTPUT_NAME] for o in outputs]).astype(np.uint8, copy=False)
        if not spec.has_confidence:
            return cls(classes)
        confidence = np.concatenate([o[CONFIDENCE_NAME] for o in outputs])
        if confidence.shape != classes.shape or confidence.dtype != np.uint8:
            raise InvalidModel(
                f"{spec.name} v{spec.version}: confidence must be uint8 {classes.shape}, "
                f"got {confidence.dtype} {confidence.shape}"
            )
        if confidence.size and int(confidence.max()) > 100:
            raise InvalidModel(f"{spec.name} v{spec.version}: confidence above 100 %")
        return cls(classes, confidence)


class Backend(Protocol):
    """Runs a model version on chips."""

    spec: ModelSpec

    def predict(self, chips: np.ndarray) -> Prediction:
        """float32 ``[N, bands, H, W]`` -> the spec's outputs for each chip."""
        ...


def batches(chips: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of at most ``size`` chips."""
    for start in range(0, len(chips), size):
        yield chips[start : start + size]


def _check_chips(chips: np.ndarray, spec: ModelSpec) -> np.ndarray:
    if chips.ndim != 4 or chips.shape[1] != len(spec.bands):
        raise InvalidModel(
            f"{spec.name} v{spec.version} takes [N, {len(spec.bands)}, H, W], got {chips.shape}"
        )
    return np.ascontiguousarray(chips, dtype=np.float32)


class EmbeddedRunner:
    """onnxruntime on the repository's model.onnx, ``threads`` intra-op threads."""

    def __init__(
        self, repository: ModelRepository, name: str, version: int, *, threads: int = 2
    ) -> None:
        import onnxruntime as ort

        self.spec = repository.spec(name, version)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(repository.onnx_path(name, version)), options, providers=["CPUExecutionProvider"]
        )

    def predict(self, chips: np.ndarray) -> Prediction:
        chips = _check_chips(chips, self.spec)
        names = list(self.spec.outputs)
        out = [
            dict(zip(names, self.session.run(names, {INPUT_NAME: batch}), strict=True))
            for batch in batches(chips, self.spec.max_batch_size)
        ]
        return Prediction.from_outputs(self.spec, out)


class TritonRunner:
    """tritonclient gRPC: readiness checked on creation, UNAVAILABLE retried with backoff."""

    def __init__(
        self,
        url: str,
        spec: ModelSpec,
        *,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        import tritonclient.grpc as grpcclient

        self.url = url
        self.spec = spec
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self._grpc = grpcclient
        self.client = grpcclient.InferenceServerClient(url=url)
        self._call(self._check_ready)

    def _check_ready(self) -> None:
        name, version = self.spec.name, str(self.spec.version)
        if not self.client.is_server_live():
            raise self._unavailable("server not live")
        if not self.client.is_model_ready(name, version):
            raise ModelNotFound(self.spec.name, self.spec.version, f"Triton at {self.url}")

    def _unavailable(self, why: str) -> Exception:
        from tritonclient.utils import InferenceServerException

        return InferenceServerException(msg=why, status="StatusCode.UNAVAILABLE")

    def _call(self, func, *args):  # type: ignore[no-untyped-def]
        """Run func, retrying UNAVAILABLE (server starting, restarting, overloaded)."""
        from tritonclient.utils import InferenceServerException

        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return func(*args)
            except InferenceServerException as exc:
                status = str(exc.status() or "")
                message = str(exc.message() or "")
                if "UNAVAILABLE" not in status and "unavailable" not in message.lower():
                    if "NOT_FOUND" in status or "unknown model" in message.lower():
                        raise ModelNotFound(
                            self.spec.name, self.spec.version, f"Triton at {self.url}"
                        ) from exc
                    raise
                if attempt == self.retries:
                    raise BackendUnavailable(f"Triton at {self.url}: {message or status}") from exc
                log.warning("Triton unavailable (%s), retry in %.1fs", message, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        tensor = self._grpc.InferInput(INPUT_NAME, list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        result = self.client.infer(
            self.spec.name,
            [tensor],
            model_version=str(self.spec.version),
            outputs=[self._grpc.InferRequestedOutput(name) for name in self.spec.outputs],
            client_timeout=self.timeout,
        )
        out = {name: result.as_numpy(name) for name in self.spec.outputs}
        missing = [name for name, array in out.items() if array is None]
        if missing:
            raise InvalidModel(f"Triton at {self.url} returned no {missing} output")
        return out

    def predict(self, chips: np.ndarray) -> Prediction:
        chips = _check_chips(chips, self.spec)
        out = [self._call(self._infer, b) for b in batches(chips, self.spec.max_batch_size)]
        return Prediction.from_outputs(self.spec, out)

    def close(self) -> None:
        self.client.close()


def get_backend(rt: Runtime, name: str, version: int) -> Backend:
    """The Triton runner when ``rt.settings.triton_url`` is set, else the embedded one; cached
    per process in ``rt``."""
    repository = repository_for(rt)
    url = rt.settings.triton_url
    if url:
        return rt.cached(
            f"backend:triton:{url}:{name}:{version}",
            lambda: TritonRunner(url, repository.spec(name, version)),
        )
    threads = rt.settings.inference_threads
    return rt.cached(
        f"backend:embedded:{Path(repository.root).resolve()}:{name}:{version}",
        lambda: EmbeddedRunner(repository, name, version, threads=threads),
    )
