"""The viewer's HTTP server: the page, PMTiles by byte range, catalog, cloud overlays, stats.

A threaded stdlib server on loopback by default. PMTiles archives are served straight from
the store with HTTP Range support (``store.get_range``), so the browser's pmtiles reader
fetches only the tiles it draws; nothing is copied out of the store.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import mimetypes
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from earthsignature import stats
from earthsignature.errors import EarthSignatureError
from earthsignature.functions.errors import BadInput
from earthsignature.settings import Settings
from earthsignature.stats.convert import change_dict, date_areas_dict
from earthsignature.storage import layout
from earthsignature.storage.base import ObjectStore, check_key
from earthsignature.storage.errors import InvalidKey, ObjectNotFound
from earthsignature.viewer.catalog import catalog_json
from earthsignature.viewer.overlay import cloud_png, confidence_png

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    server: ViewerHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # -- responses -------------------------------------------------------------------------
    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    # -- routing ---------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = unquote(url.path)
        try:
            if path in ("/", "/index.html"):
                self._static("index.html")
            elif path.startswith("/static/"):
                self._static(path[len("/static/") :])
            elif path == "/api/catalog":
                self._catalog(query)
            elif path == "/api/stats":
                self._stats(query)
            elif path.startswith("/tiles/"):
                self._tiles(path[len("/tiles/") :])
            elif path.startswith("/cloud/"):
                self._cloud(path[len("/cloud/") :], query)
            elif path.startswith("/confidence/"):
                self._confidence(path[len("/confidence/") :], query)
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")
        except (BadInput, InvalidKey, ValueError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except (ObjectNotFound, FileNotFoundError) as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except EarthSignatureError as exc:
            log.exception("viewer request failed")
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))

    def _static(self, name: str) -> None:
        target = (STATIC / name).resolve()
        if not target.is_relative_to(STATIC) or not target.is_file():
            raise FileNotFoundError(name)
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        self._send(HTTPStatus.OK, target.read_bytes(), kind)

    def _model(self, query: dict[str, str]) -> tuple[str | None, int | None]:
        model, version = query.get("model") or None, query.get("version") or None
        return model, int(version) if version else None

    def _catalog(self, query: dict[str, str]) -> None:
        model, version = self._model(query)
        settings = self.server.settings
        self._json(
            catalog_json(
                self.server.store, settings.model_name, settings.model_version, model, version
            )
        )

    def _stats(self, query: dict[str, str]) -> None:
        model, version = self._model(query)
        model = model or self.server.settings.model_name
        version = version or self.server.settings.model_version
        if "wkt" not in query:
            raise BadInput("stats need an area: ?wkt=POLYGON(...)")
        aoi = stats.parse_aoi(query["wkt"])
        start = dt.date.fromisoformat(query.get("from") or "0001-01-01")
        end = dt.date.fromisoformat(query.get("to") or "9999-12-31")
        store = self.server.store
        out: dict[str, Any] = {
            "model": model,
            "version": version,
            "dates": [
                date_areas_dict(a)
                for a in stats.area_by_date(store, aoi, start, end, model=model, version=version)
            ],
        }
        if query.get("change"):
            first, second = (dt.date.fromisoformat(d) for d in query["change"].split(",", 1))
            result = stats.change(store, aoi, first, second, model=model, version=version)
            out["change"] = change_dict(result)
        self._json(out)

    def _tiles(self, key: str) -> None:
        key = check_key(key)
        if not key.startswith((f"{layout.TILES}/", f"{layout.COMPOSITES}/")) or not key.endswith(
            ".pmtiles"
        ):
            raise FileNotFoundError(key)
        store = self.server.store
        size = store.size(key)
        header = self.headers.get("Range")
        if not header:
            self._send(
                HTTPStatus.OK,
                store.get_bytes(key),
                "application/octet-stream",
                {"Accept-Ranges": "bytes"},
            )
            return
        match = _RANGE.match(header.strip())
        if not match or not (match.group(1) or match.group(2)):
            raise ValueError(f"unsupported Range header {header!r}")
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        else:  # a suffix range: the last N bytes
            start, end = max(0, size - int(match.group(2))), size - 1
        if start >= size or end < start:
            self._send(
                HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                b"",
                "text/plain",
                {"Content-Range": f"bytes */{size}"},
            )
            return
        body = store.get_range(key, start, end - start + 1)
        self._send(
            HTTPStatus.PARTIAL_CONTENT,
            body,
            "application/octet-stream",
            {"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"},
        )

    def _cloud(self, key: str, query: dict[str, str]) -> None:
        key = check_key(key)
        if not key.startswith(f"{layout.MASKS}/") or not key.endswith(".tif"):
            raise FileNotFoundError(key)
        png, corners = cloud_png(self.server.store, key)
        if query.get("meta"):
            self._json({"coordinates": corners})
        else:
            self._send(HTTPStatus.OK, png, "image/png")

    def _confidence(self, key: str, query: dict[str, str]) -> None:
        key = check_key(key)
        if not key.startswith(("confidence/", f"{layout.COMPOSITES}/")) or not key.endswith(".tif"):
            raise FileNotFoundError(key)
        png, corners = confidence_png(self.server.store, key)
        if query.get("meta"):
            self._json({"coordinates": corners})
        else:
            self._send(HTTPStatus.OK, png, "image/png")


class ViewerHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: ObjectStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        super().__init__(address, _Handler)


class ViewerServer:
    """The viewer on ``host:port`` (0 = a free port); ``start()`` returns the URL."""

    def __init__(
        self, settings: Settings, store: ObjectStore, host: str = "127.0.0.1", port: int = 0
    ):
        self.httpd = ViewerHttpServer((host, port), store, settings)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> str:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="earthsig-viewer", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
