"""An HTTP proxy on loopback that fails a share of S3 requests, for fault-injection runs.

Each request is read whole (headers, then a ``Content-Length`` or chunked body), then either
forwarded to the real S3 server over the connection's own upstream connection, or failed:
answered ``503 Slow Down`` with an S3 XML error body, or dropped (the connection is closed
before the request is forwarded, or after it was forwarded, so the client never learns the
outcome of a request the server did apply). Keep-alive, ``Expect: 100-continue``, ranged
GETs and HEADs pass through unchanged, so boto3 and GDAL's ``/vsis3/`` work through it.

Caveat: pyogrio holds the GIL during GDAL I/O, so a pyogrio reader must not live in the
proxy's process (its threads could not answer); workers are separate processes anyway.
"""

from __future__ import annotations

import contextlib
import random
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

_MAX_LINE = 65536
_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<Resource>/</Resource><RequestId>earthsig-faultproxy</RequestId></Error>"
)


#: What a fault can be: an S3 ``503 SlowDown`` answer, or the connection closed before the
#: request reaches the server (mid-request) or after the server handled it (answer lost).
FAULT_KINDS = ("503", "drop-before", "drop-after")


class _Closed(Exception):
    """The peer closed the connection between messages."""


@dataclass
class FaultCounts:
    """What went through the proxy."""

    requests: int = 0
    ranged: int = 0
    forwarded: int = 0
    injected_503: int = 0
    dropped_before: int = 0
    dropped_after: int = 0

    @property
    def injected_drops(self) -> int:
        return self.dropped_before + self.dropped_after

    @property
    def injected(self) -> int:
        return self.injected_503 + self.injected_drops

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "ranged_requests": self.ranged,
            "forwarded": self.forwarded,
            "injected_503": self.injected_503,
            "injected_drops": self.injected_drops,
            "dropped_before_forwarding": self.dropped_before,
            "dropped_after_forwarding": self.dropped_after,
        }


def _read_head(reader: BinaryIO) -> tuple[bytes, dict[str, str]]:
    lines: list[bytes] = []
    while True:
        line = reader.readline(_MAX_LINE)
        if not line:
            if lines:
                raise ConnectionError("connection closed inside a message head")
            raise _Closed
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue  # tolerate stray blank lines between messages
            lines.append(line)
            break
        lines.append(line)
    headers = {}
    for line in lines[1:-1]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return b"".join(lines), headers


def _read_exact(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ConnectionError("connection closed inside a message body")
    return data


def _read_body(reader: BinaryIO, headers: dict[str, str], *, until_close: bool) -> bytes:
    """The body as framed: chunked (kept with its framing), by length, or to the close."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size_line = reader.readline(_MAX_LINE)
            if not size_line:
                raise ConnectionError("connection closed inside a chunked body")
            parts.append(size_line)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    trailer = reader.readline(_MAX_LINE)
                    parts.append(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        return b"".join(parts)
            parts.append(_read_exact(reader, size + 2))
    if "content-length" in headers:
        return _read_exact(reader, int(headers["content-length"]))
    return reader.read() if until_close else b""


def _without_expect(head: bytes) -> bytes:
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"expect:"))


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to an HTTP server, failing ``rate`` of the requests.

    By default half of the faults are ``503 SlowDown`` answers and half dropped connections
    (of those, half before forwarding and half after the server handled the request);
    ``kinds`` weighs them otherwise. ``seed`` makes the sequence of decisions reproducible.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        rate: float = 0.1,
        seed: int = 0,
        kinds: dict[str, float] | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.rate = rate
        weights = kinds or {"503": 2, "drop-before": 1, "drop-after": 1}
        unknown = set(weights) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        self._kinds, self._weights = list(weights), list(weights.values())
        self.counts = FaultCounts()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No faults inside the block (set-up and verification traffic)."""
        rate, self.rate = self.rate, 0.0
        try:
            yield
        finally:
            self.rate = rate

    def _decide(self, headers: dict[str, str]) -> str:
        with self._lock:
            self.counts.requests += 1
            self.counts.ranged += "range" in headers
            if self._rng.random() >= self.rate:
                return "forward"
            fault = self._rng.choices(self._kinds, self._weights)[0]
            if fault == "503":
                self.counts.injected_503 += 1
            elif fault == "drop-before":
                self.counts.dropped_before += 1
            else:
                self.counts.dropped_after += 1
            return fault

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        up_reader: BinaryIO | None = None
        reader = client.makefile("rb")
        with self._lock:
            self._conns.add(client)
        try:
            while True:
                head, headers = _read_head(reader)
                fault = self._decide(headers)
                if fault == "drop-before":
                    return  # mid-request: the body (if any) is never read
                if headers.get("expect", "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = _without_expect(head)
                body = _read_body(reader, headers, until_close=False)
                if fault == "503":
                    client.sendall(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                        b"Content-Length: %d\r\nx-amz-request-id: earthsig-faultproxy\r\n\r\n"
                        % len(_SLOW_DOWN)
                        + _SLOW_DOWN
                    )
                    continue
                if upstream is None:
                    upstream = socket.create_connection(self.target, timeout=120)
                    up_reader = upstream.makefile("rb")
                assert up_reader is not None
                upstream.sendall(head + body)
                method = head.split(b" ", 1)[0].upper()
                response, keep = self._read_response(up_reader, method)
                with self._lock:
                    self.counts.forwarded += 1
                if fault == "drop-after":
                    return
                client.sendall(response)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
                if not self._upstream_alive(response):
                    upstream.close()
                    upstream, up_reader = None, None
        except (_Closed, OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(client)
            reader.close()
            if upstream is not None:
                upstream.close()
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

    @staticmethod
    def _read_response(reader: BinaryIO, method: bytes) -> tuple[bytes, bool]:
        """One final response (interim 1xx ones included) and whether the connection stays."""
        out = []
        while True:
            head, headers = _read_head(reader)
            out.append(head)
            code = int(head.split(b" ", 2)[1])
            if code >= 200:
                break
        no_body = method == b"HEAD" or code in (204, 304)
        framed = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "")
        if not no_body:
            out.append(_read_body(reader, headers, until_close=not framed))
        keep = framed or no_body
        keep = keep and headers.get("connection", "").lower() != "close"
        return b"".join(out), keep

    @staticmethod
    def _upstream_alive(response: bytes) -> bool:
        head = response.split(b"\r\n\r\n", 1)[0].lower()
        return b"connection: close" not in head

    def stop(self) -> None:
        """Stop accepting, close open connections, end the server thread."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
