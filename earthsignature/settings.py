"""Process settings, read from the environment (prefix ``EARTHSIG_``) when a process starts.

Nothing reads the environment at import time: commands call :func:`load_settings` once and
pass the result down. ``REDIS_URL`` and ``TRITON_URL`` are also accepted without the prefix,
the names operators already use for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from earthsignature.errors import ConfigurationError

ENV_PREFIX = "EARTHSIG_"

#: Europe, as in ARCHITECTURE.md: lon -10.61..44.85, lat 35.97..71.16.
EUROPE_WKT = "POLYGON ((-10.61 35.97, 44.85 35.97, 44.85 71.16, -10.61 71.16, -10.61 35.97))"


class Settings(BaseSettings):
    """Every option of EarthSignature; each maps to ``EARTHSIG_<NAME>`` (see README)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    # Object store
    store: str = Field(
        default="./earthsig-data",
        description="Object store: a local directory path, or s3://bucket[/prefix].",
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="S3 endpoint URL (MinIO, SeaweedFS...); unset means AWS.",
    )
    s3_region: str = Field(default="us-east-1", description="S3 region.")
    s3_access_key: SecretStr | None = Field(
        default=None, description="S3 access key; unset uses boto3's default chain."
    )
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret key.")

    # Servers
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EARTHSIG_REDIS_URL", "REDIS_URL"),
        description="Redis URL; unset starts an embedded Redis owned by the command.",
    )
    triton_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EARTHSIG_TRITON_URL", "TRITON_URL"),
        description="Triton gRPC host:port; unset uses the embedded onnxruntime runner.",
    )

    # Discovery
    stac_api_url: str = Field(
        default="https://earth-search.aws.element84.com/v1",
        description="STAC API searched for Sentinel-2 L2A products.",
    )
    stac_collection: str = Field(default="sentinel-2-l2a", description="STAC collection id.")
    aoi_wkt: str = Field(default=EUROPE_WKT, description="Area of interest, WKT in EPSG:4326.")
    cloud_threshold: float = Field(
        default=60.0,
        ge=0.0,
        le=100.0,
        description="Products with more cloud (percent of valid pixels) are skipped.",
    )

    # Models
    model_repository: Path | None = Field(
        default=None,
        description="Triton-layout model repository; unset uses the one shipped in the package.",
    )
    model_name: str = Field(default="clc-baseline", description="Model used by the pipeline.")
    model_version: int = Field(default=1, ge=1, description="Model version (Triton integer).")
    inference_threads: int = Field(
        default=2, ge=1, description="onnxruntime intra-op threads of the embedded runner."
    )

    @field_validator("store")
    @classmethod
    def _store_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a directory or s3://bucket[/prefix]")
        return value.strip()

    def redacted(self) -> dict[str, Any]:
        """Settings as a plain dict with secrets masked, for logs and `earthsig config`."""
        out = self.model_dump()
        for key, value in out.items():
            if isinstance(getattr(self, key), SecretStr) and value is not None:
                out[key] = "********"
        return out


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; keyword overrides win. Raises ConfigurationError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc
