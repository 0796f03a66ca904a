"""A TCP proxy on loopback that counts the bytes it forwards, to prove range reads.

Tests put it between GDAL and the S3 server and assert how much of a file went over the wire.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from earthsignature.testing.ports import free_port


class CountingProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; :attr:`downstream_bytes` counts replies."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.downstream_bytes = 0
        self.upstream_bytes = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.downstream_bytes = 0
            self.upstream_bytes = 0

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for src, dst, down in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(src, dst, down), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while chunk := src.recv(65536):
                with self._lock:
                    if downstream:
                        self.downstream_bytes += len(chunk)
                    else:
                        self.upstream_bytes += len(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def stop(self) -> None:
        self._stopping.set()
        self._server.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
