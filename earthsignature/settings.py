"""Process settings, read from the environment (prefix ``EARTHSIG_``) when a process starts.

Nothing reads the environment at import time: commands call :func:`load_settings` once and
pass the result down. ``REDIS_URL`` and ``TRITON_URL`` are also accepted without the prefix,
the names operators already use for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

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
        description="STAC API searched for Sentinel-2 L2A products (a file:// URL: a folder "
        "of STAC item files instead, as the offline demo uses).",
    )
    stac_collection: str = Field(default="sentinel-2-l2a", description="STAC collection id.")
    aoi_wkt: str = Field(default=EUROPE_WKT, description="Area of interest, WKT in EPSG:4326.")
    cloud_threshold: float = Field(
        default=60.0,
        ge=0.0,
        le=100.0,
        description="Products with more cloud (percent of valid pixels) are skipped.",
    )
    cloud_mask_method: Literal["scl", "learned", "both"] = Field(
        default="scl",
        description="Cloud mask of the cloud stage: scl (scene classification), learned "
        "(cloud_mask_model, see `earthsig models import-csmask`) or both (their union).",
    )
    cloud_mask_model: str = Field(
        default="csmask-l2a", description="Repository model (kind cloudmask) of the learned mask."
    )
    cloud_mask_model_version: int = Field(default=1, ge=1, description="Its version.")
    composites: bool = Field(
        default=True,
        description="Fold each committed product into its tile's month and season composites "
        "and re-sum its rolling 12 months (the composite stage, on the vectorize queue; "
        "CreateProduct uploads too).",
    )
    cloud_mask_resolution_m: int = Field(
        default=30,
        ge=10,
        multiple_of=10,
        description="Grid (metres, a multiple of 10) the learned mask runs on; csmask is "
        "trained at 30 m, 60 m costs a quarter.",
    )

    # Models
    model_repository: Path | None = Field(
        default=None,
        description="Triton-layout model repository; unset uses the one shipped in the package.",
    )
    model_name: str = Field(
        default="dynamicworld-clc",
        description="Model used by the pipeline (clc-baseline: the fast spectral-rule model).",
    )
    model_version: int = Field(default=1, ge=1, description="Model version (Triton integer).")
    inference_threads: int = Field(
        default=2, ge=1, description="onnxruntime intra-op threads of the embedded runner."
    )
    shard_megabytes: int = Field(
        default=256,
        ge=1,
        description="Memory budget of one inference shard (float32 model input), in MiB.",
    )

    # Queue
    retry_backoff_scale: float = Field(
        default=1.0,
        ge=0.0,
        description="Multiplier of each stage's retry intervals (0 retries at once, for tests).",
    )
    stage_handlers: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Stage name -> 'module:function' replacing that stage's handler (JSON; for custom "
            "deployments and tests). Unset stages use the built-in handlers."
        ),
    )

    # gRPC API (earthsig serve)
    api_host: str = Field(default="0.0.0.0", description="Address the gRPC API listens on.")
    api_port: int = Field(default=50051, ge=0, le=65535, description="gRPC API port.")
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token required by CreateProduct; unset refuses writes."
    )
    api_read_token: SecretStr | None = Field(
        default=None,
        description="Bearer token required by read methods too (the write token also works); "
        "unset leaves reads open. Health and reflection stay open.",
    )
    api_max_area_km2: float | None = Field(
        default=50_000_000.0,
        gt=0,
        description="Largest area of interest (km², WGS84) a call may give; larger areas are "
        "refused with INVALID_ARGUMENT. Unset disables the cap.",
    )
    api_default_results: int = Field(
        default=10, ge=1, description="Responses per call when a request sets no n_results."
    )
    api_max_results: int = Field(
        default=100, ge=1, description="Server cap on responses per call (larger n_results)."
    )
    api_max_message_mb: int = Field(
        default=256, ge=4, description="gRPC send/receive message size limit, MiB."
    )
    api_max_pixels: int = Field(
        default=64_000_000,
        ge=1024,
        description="Largest raster (pixels) one response carries; bigger areas are decimated.",
    )
    api_workers: int = Field(default=8, ge=1, description="gRPC server worker threads.")
    api_processes: int = Field(
        default=1,
        ge=1,
        description="gRPC server processes on one port (SO_REUSEPORT), each with its own index.",
    )
    api_refresh_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Seconds between the API index's looks for newly committed products.",
    )
    api_tls_cert: Path | None = Field(
        default=None, description="PEM certificate chain; with api_tls_key, serve over TLS."
    )
    api_tls_key: Path | None = Field(default=None, description="PEM private key for TLS.")

    # Observability
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the Prometheus /metrics endpoint of workers and the API; "
        "unset disables it, 0 picks a free port.",
    )
    metrics_host: str = Field(default="0.0.0.0", description="Address /metrics listens on.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines: text for people, json (one object per line, with product_id "
        "and stage) for log systems.",
    )

    # Vectorize
    min_mapping_unit_m2: float = Field(
        default=5000.0,
        ge=0.0,
        description="Polygons smaller than this (m², default 0.5 ha = 50 px at 10 m) are "
        "sieved into their largest neighbour before polygonizing.",
    )
    simplify_tolerance_m: float = Field(
        default=10.0,
        ge=0.0,
        description="Coverage simplification tolerance in metres (about one 10 m pixel).",
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
            elif isinstance(value, str) and "://" in value:
                out[key] = _mask_url_password(value)
        return out


def _mask_url_password(url: str) -> str:
    """``scheme://user:********@host...`` for a URL carrying a password (a Redis URL)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}********@{host}"))


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
