"""Model repository (Triton layout), inference runners (Triton, embedded onnxruntime), U-Net.

``load_spec(rt_or_repo, name, version)`` gives a version's metadata; ``get_backend(rt, name,
version)`` the runner the settings ask for (Triton when ``triton_url`` is set). torch is only
needed by :mod:`unet`, :mod:`train` and :mod:`export` (extra "train").
"""

from earthsignature.models.errors import BackendUnavailable, InvalidModel, ModelError, ModelNotFound
from earthsignature.models.repository import ModelRepository, load_spec, repository_for
from earthsignature.models.runners import Backend, EmbeddedRunner, TritonRunner, get_backend
from earthsignature.models.spec import ModelSpec

__all__ = [
    "Backend",
    "BackendUnavailable",
    "EmbeddedRunner",
    "InvalidModel",
    "ModelError",
    "ModelNotFound",
    "ModelRepository",
    "ModelSpec",
    "TritonRunner",
    "get_backend",
    "load_spec",
    "repository_for",
]
