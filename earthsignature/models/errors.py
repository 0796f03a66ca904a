"""Errors of the model repository and the inference runners."""

from earthsignature.errors import EarthSignatureError


class ModelError(EarthSignatureError):
    """Root of the model errors."""


class ModelNotFound(ModelError, LookupError):
    """No such model name or version in the repository (or not loaded by the server)."""

    def __init__(
        self, name: str, version: int | None, where: str, available: list[int] | None = None
    ) -> None:
        what = f"{name!r}" if version is None else f"{name!r} version {version}"
        known = ""
        if available is not None:
            known = f" (available versions: {', '.join(map(str, available)) or 'none'})"
        super().__init__(f"model {what} not available in {where}{known}")
        self.name = name
        self.version = version
        self.available = available


class InvalidModel(ModelError, ValueError):
    """A model's metadata or ONNX graph does not match what the pipeline needs."""


class BackendUnavailable(ModelError, ConnectionError):
    """The inference server cannot be reached or stayed unavailable after retries."""
