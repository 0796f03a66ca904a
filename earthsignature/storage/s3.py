"""Object store in an S3 bucket through boto3: MinIO in production, SeaweedFS/moto in tests."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from earthsignature.storage.base import ObjectInfo, ObjectStore, check_key, check_prefix
from earthsignature.storage.errors import ObjectNotFound, StorageError
from earthsignature.storage.gdal import GDAL_HTTP_RETRY, HTTP_MAX_ATTEMPTS

#: Objects above this size go up in parts (S3's minimum part is 5 MiB).
MULTIPART_THRESHOLD = 8 * 1024 * 1024
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
#: Attempts per S3 request through boto3, as many as GDAL's (:data:`HTTP_MAX_ATTEMPTS`).
S3_MAX_ATTEMPTS = HTTP_MAX_ATTEMPTS


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``; single PUTs and completed multipart uploads are
    atomic on S3, so readers never see partial objects."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
    ) -> None:
        self.bucket = bucket
        self.prefix = check_prefix(prefix.strip("/") + "/" if prefix.strip("/") else "")
        self.endpoint_url = endpoint_url
        self.region = region
        self._access_key = access_key
        self._secret_key = secret_key
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                # standard mode retries 5xx/throttling answers and dropped connections with
                # jittered backoff (adaptive mode also throttles the client: too slow here)
                retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
                s3={"addressing_style": "path"},
                max_pool_connections=32,
            ),
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_threshold
        )

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, key: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                raise ObjectNotFound(key, self.url) from None
            raise StorageError(f"S3 error on {key!r} in {self.url}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 error on {key!r} in {self.url}: {exc}") from exc

    def put_file(self, key: str, path: Path) -> None:
        self._call(
            key,
            self._client.upload_file,
            Filename=str(path),
            Bucket=self.bucket,
            Key=self._full(key),
            Config=self._transfer,
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(
            key,
            self._client.upload_fileobj,
            Fileobj=io.BytesIO(data),
            Bucket=self.bucket,
            Key=self._full(key),
            Config=self._transfer,
        )

    def get_bytes(self, key: str) -> bytes:
        resp = self._call(key, self._client.get_object, Bucket=self.bucket, Key=self._full(key))
        return resp["Body"].read()

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("start and length must be >= 0")
        if length == 0:
            return b""
        try:
            resp = self._call(
                key,
                self._client.get_object,
                Bucket=self.bucket,
                Key=self._full(key),
                Range=f"bytes={start}-{start + length - 1}",
            )
        except StorageError as exc:
            if "InvalidRange" in str(exc):  # start past the end of the object
                return b""
            raise
        return resp["Body"].read()

    def download(self, key: str, path: Path) -> None:
        self._call(
            key,
            self._client.download_file,
            Bucket=self.bucket,
            Key=self._full(key),
            Filename=str(path),
            Config=self._transfer,
        )

    def size(self, key: str) -> int:
        resp = self._call(key, self._client.head_object, Bucket=self.bucket, Key=self._full(key))
        return int(resp["ContentLength"])

    def list_keys(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][len(self.prefix) :], int(obj["Size"]))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list {prefix!r} in {self.url}: {exc}") from exc

    def list_dirs(self, prefix: str) -> list[str]:
        check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        out: list[str] = []
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/"
            ):
                out.extend(p["Prefix"][len(self.prefix) :] for p in page.get("CommonPrefixes", []))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list {prefix!r} in {self.url}: {exc}") from exc
        return sorted(out)

    def delete(self, key: str) -> None:
        self._call(key, self._client.delete_object, Bucket=self.bucket, Key=self._full(key))

    def gdal_path(self, key: str) -> str:
        return f"/vsis3/{self.bucket}/{self._full(key)}"

    def gdal_config(self) -> dict[str, str]:
        config = {
            "AWS_REGION": self.region,
            "AWS_VIRTUAL_HOSTING": "FALSE",
            "CPL_VSIL_CURL_USE_HEAD": "YES",
            **GDAL_HTTP_RETRY,
        }
        if self.endpoint_url:
            parsed = urlparse(self.endpoint_url)
            config["AWS_S3_ENDPOINT"] = parsed.netloc or parsed.path
            config["AWS_HTTPS"] = "YES" if parsed.scheme == "https" else "NO"
        if self._access_key and self._secret_key:
            config["AWS_ACCESS_KEY_ID"] = self._access_key
            config["AWS_SECRET_ACCESS_KEY"] = self._secret_key
        return config

    def __repr__(self) -> str:  # never show credentials
        return f"S3Store({self.url!r}, endpoint={self.endpoint_url!r})"
