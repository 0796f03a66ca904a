"""A small STAC API on loopback, for tests and demos that must not reach the internet.

Answers what pystac-client needs: the landing page, ``/conformance``, ``/collections`` and
item search (``GET`` and ``POST /search`` with ``bbox``, ``intersects``, ``datetime``,
``collections``, ``ids``, ``limit`` and paging through a ``next`` link). It also serves files
under ``/files/<name>`` with HTTP range requests, so items can point at rasters that GDAL reads
through ``/vsicurl/`` exactly as it reads a real catalogue's COGs.

Caveat: GDAL holds the GIL while rasterio opens a ``/vsicurl/`` path, so a server running in
a thread of the *same* process deadlocks such a read; tests therefore point item assets at
file paths (:func:`local_item` without ``server``). HTTP file serving is for readers in another
process (workers, a demo) and has been checked with plain HTTP range requests only.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shapely.geometry import box, shape

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/conf/1.0/core",
    "http://www.opengis.net/spec/ogcapi-features-1/conf/1.0/geojson",
]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _in_interval(when: dt.datetime, interval: str) -> bool:
    if "/" not in interval:
        return when == _time(interval)
    start, end = interval.split("/", 1)
    if start not in ("", "..") and when < _time(start):
        return False
    return not (end not in ("", "..") and when > _time(end))


class StacServer:
    """STAC API over a fixed list of items, in a thread on 127.0.0.1 (context manager)."""

    def __init__(
        self,
        items: Iterable[dict[str, Any]] = (),
        *,
        collection: str = "sentinel-2-l2a",
        files: dict[str, Path] | None = None,
    ) -> None:
        self.collection = collection
        self.items = [copy.deepcopy(item) for item in items]
        self.files = dict(files or {})
        #: Paths of every request received, for tests that count traffic.
        self.requests: list[str] = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def file_url(self, name: str) -> str:
        """URL of a file served with range support (register it in ``files`` first)."""
        return f"{self.url}/files/{name}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StacServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- search -------------------------------------------------------------------------

    def search(self, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """Items matching the STAC search parameters, and how many matched in all."""
        matched = [item for item in self.items if self._matches(item, params)]
        limit = max(1, min(int(params.get("limit") or 10), 1000))
        offset = int(params.get("token") or 0)
        return matched[offset : offset + limit], len(matched)

    def _matches(self, item: dict[str, Any], params: dict[str, Any]) -> bool:
        collections = params.get("collections")
        if collections and item.get("collection", self.collection) not in collections:
            return False
        ids = params.get("ids")
        if ids and item["id"] not in ids:
            return False
        geometry = shape(item["geometry"])
        if params.get("bbox") and not geometry.intersects(box(*params["bbox"][:4])):
            return False
        if params.get("intersects") and not geometry.intersects(shape(params["intersects"])):
            return False
        interval = params.get("datetime")
        return not interval or _in_interval(_time(item["properties"]["datetime"]), interval)

    def page(self, params: dict[str, Any], method: str) -> dict[str, Any]:
        """A FeatureCollection page with a ``next`` link while more items remain."""
        features, total = self.search(params)
        offset = int(params.get("token") or 0)
        links: list[dict[str, Any]] = [{"rel": "root", "href": f"{self.url}/"}]
        if offset + len(features) < total:
            nxt = {**params, "token": str(offset + len(features))}
            if method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": f"{self.url}/search",
                        "method": "POST",
                        "body": nxt,
                        "type": "application/geo+json",
                    }
                )
            else:
                links.append(
                    {
                        "rel": "next",
                        "type": "application/geo+json",
                        "href": f"{self.url}/search?" + _query(nxt),
                    }
                )
        for feature in features:
            feature.setdefault("collection", self.collection)
            feature.setdefault("links", [])
        return {
            "type": "FeatureCollection",
            "features": features,
            "links": links,
            "numberMatched": total,
            "numberReturned": len(features),
        }

    def landing(self) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "earthsig-test-stac",
            "description": "Local STAC API for EarthSignature tests",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": f"{self.url}/", "type": "application/json"},
                {"rel": "root", "href": f"{self.url}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{self.url}/conformance"},
                {"rel": "data", "href": f"{self.url}/collections", "type": "application/json"},
                {
                    "rel": "search",
                    "href": f"{self.url}/search",
                    "method": "GET",
                    "type": "application/geo+json",
                },
                {
                    "rel": "search",
                    "href": f"{self.url}/search",
                    "method": "POST",
                    "type": "application/geo+json",
                },
            ],
        }

    def collection_doc(self) -> dict[str, Any]:
        return {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": self.collection,
            "description": "Sentinel-2 L2A",
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [[-180, -90, 180, 90]]},
                "temporal": {"interval": [[None, None]]},
            },
            "links": [
                {"rel": "self", "href": f"{self.url}/collections/{self.collection}"},
                {"rel": "root", "href": f"{self.url}/"},
                {"rel": "items", "href": f"{self.url}/collections/{self.collection}/items"},
            ],
        }


def _query(params: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    flat: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if key == "intersects":
            flat[key] = json.dumps(value)
        elif isinstance(value, list | tuple):
            flat[key] = ",".join(str(v) for v in value)
        else:
            flat[key] = str(value)
    return urlencode(flat)


def _get_params(query: str) -> dict[str, Any]:
    raw = {key: values[-1] for key, values in parse_qs(query).items()}
    params: dict[str, Any] = dict(raw)
    if "bbox" in raw:
        params["bbox"] = [float(v) for v in raw["bbox"].split(",")]
    if "intersects" in raw:
        params["intersects"] = json.loads(raw["intersects"])
    for key in ("collections", "ids"):
        if key in raw:
            params[key] = [v for v in raw[key].split(",") if v]
    return params


def _handler(api: StacServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _json(self, body: Any, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            ctype = (
                "application/geo+json"
                if body.get("type") == "FeatureCollection"
                else ("application/json")
            )
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str, body: dict[str, Any] | None) -> None:
            url = urlsplit(self.path)
            path = url.path.rstrip("/") or "/"
            api.requests.append(f"{method} {url.path}")
            try:
                if path == "/":
                    return self._json(api.landing())
                if path == "/conformance":
                    return self._json({"conformsTo": CONFORMANCE})
                if path == "/collections":
                    return self._json({"collections": [api.collection_doc()], "links": []})
                if path == f"/collections/{api.collection}":
                    return self._json(api.collection_doc())
                if path == "/search":
                    params = body if method == "POST" else _get_params(url.query)
                    return self._json(api.page(params or {}, method))
                if path.startswith("/files/") and method in ("GET", "HEAD"):
                    return self._file(path[len("/files/") :], method)
            except (ValueError, TypeError, KeyError) as exc:
                return self._json({"code": "BadRequest", "description": str(exc)}, 400)
            return self._json({"code": "NotFound", "description": path}, 404)

        def _file(self, name: str, method: str) -> None:
            path = api.files.get(name)
            if path is None or not path.is_file():
                return self._json({"code": "NotFound", "description": name}, 404)
            size = path.stat().st_size
            start, end = 0, size - 1
            status = 200
            match = _RANGE.match(self.headers.get("Range", ""))
            if match and (match[1] or match[2]):
                if match[1]:
                    start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
                else:
                    start, end = max(0, size - int(match[2])), size - 1
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "image/tiff")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if method == "GET":
                with path.open("rb") as fh:
                    fh.seek(start)
                    self.wfile.write(fh.read(end - start + 1))
            return None

        def do_GET(self) -> None:
            self._route("GET", None)

        def do_HEAD(self) -> None:
            url = urlsplit(self.path)
            if url.path.startswith("/files/"):
                self._file(url.path[len("/files/") :], "HEAD")
            else:
                self._route("GET", None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                return self._json({"code": "BadRequest", "description": "invalid JSON"}, 400)
            return self._route("POST", body)

    return Handler


def local_item(
    item: dict[str, Any], folder: Path, *, server: StacServer | None = None
) -> dict[str, Any]:
    """A copy of ``item`` whose assets point at same-named files in ``folder``.

    An asset whose href ends in a file present in ``folder`` (``.../B02.tif`` -> ``B02.tif``)
    points at that file: its absolute path, or, with ``server``, its URL on that server
    (registered there), so it is read through HTTP range requests.
    """
    out = copy.deepcopy(item)
    for key, asset in out.get("assets", {}).items():
        name = str(asset.get("href", "")).rsplit("/", 1)[-1]
        path = folder / name
        if not name or not path.is_file():
            continue
        if server is None:
            asset["href"] = str(path.resolve())
        else:
            server.files[f"{out['id']}/{name}"] = path
            asset["href"] = server.file_url(f"{out['id']}/{name}")
        out["assets"][key] = asset
    return out
