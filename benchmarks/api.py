"""API at scale: index build, V2/V1 query latency at 1 and 50 clients, requests per second.

A local-store catalog of ``--products`` synthetic products (default 100,000) spread uniformly
over Europe (lon -10..30, lat 36..70; a 1 x 1 degree footprint each, about a Sentinel-2 tile)
and over 2021. One real product is published by the pipeline's own publish step
(``grpc_api.ingest``: segmentation COG, 1-bit cloud COG, FlatGeobuf polygons, PMTiles) on a
12 x 12 km, 10 m grid around the query area; every synthetic record is that product's STAC
item with its own id, time, footprint and bbox, written straight to its catalog key with
``store.put_bytes`` (``catalog.commit`` would only add 4 ``exists`` checks per record on the
same four assets). So every product a query meets reads real files by window / bounding box.

The servers (``ServerGroup``: ``--processes`` ``ApiServer`` processes on one port, real gRPC on
127.0.0.1, each with its own index) start after a one-process server on an empty catalog gives
the baseline RSS; start-up (index build) is timed and every process's RSS read. Clients are
threads in ``--client-processes`` processes (never the servers'), one channel each, calling the
generated stubs (V2: the final module's ``snapearth.api.v2`` with the published request, wkt +
start_date/end_date + n_results); each request is a 10 x 10 km area (jittered by up to 1 km)
over one calendar month (cycled), its whole stream consumed (every message parsed into the
generated message, as a client's stub does; sizes from the wire, no ``ByteSize`` walk). Load
levels: V2 ListSegmentation at 1 and 50 clients with the server's default number of results
(``api_default_results``, 10) and with ``n_results`` 1; V1 ListSegmentation (AOI-clipped
segmentation and cloud rasters) with ``n_results`` 1 at 1 and 50 clients. Each level stops
after ``--requests`` calls or ``--seconds``, whichever comes first, and reports latency
percentiles, requests per second, the 1-minute load average (the host's cores may be shared)
and the CPU time servers and clients spent per request, which does not depend on what else
runs on the host.

    python -m benchmarks api [--products 100000] [--requests 1000] [--seconds 30]
        [--processes 2] [--client-processes 2] [--keep DIR] [--only v1|v2]
        [--area utm-square|lonlat-box]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import numpy as np
import shapely
from affine import Affine
from google.protobuf.timestamp_pb2 import Timestamp
from pyproj import Transformer
from shapely.geometry import box, mapping

from earthsignature import corine
from earthsignature.grpc_api import ingest
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, layout
from earthsignature.testing.rasters import geotiff_bytes

CRS = "EPSG:32631"
MODEL, VERSION = "clc-bench", 1
ORIGIN = (494_000.0, 4_987_000.0)  # upper-left of the shared product, UTM 31N
SIDE_PX = 1200  # 12 km at 10 m
CENTRE = (500_000.0, 4_981_000.0)  # of the query area
YEAR = 2021
TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def _rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _geotiff(array: np.ndarray, **extra: Any) -> bytes:
    transform = Affine(10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1])
    return geotiff_bytes(array, transform, CRS, **extra)


def shared_product(store: LocalStore, block: int) -> dict[str, Any]:
    """Publish the one real product (``block`` px squares of random CORINE codes).

    At 50 px (500 m, 25 ha: CORINE's minimum mapping unit) nearly every square is its own
    polygon, about 400 per 10 x 10 km: more than real CORINE maps hold there, an upper bound.
    Returns the product's STAC item.
    """
    rng = np.random.default_rng(0)
    codes = np.array(corine.CODES, dtype=np.uint16)
    n = -(-SIDE_PX // block)
    seg = codes[rng.integers(0, len(codes), size=(n, n))].repeat(block, 0).repeat(block, 1)
    seg = np.ascontiguousarray(seg[:SIDE_PX, :SIDE_PX])
    cloud = np.zeros_like(seg, dtype=np.uint8)
    cloud[:200, :300] = 1
    # no composites: they would be one more product (and FlatGeobuf) beside the synthetic ones
    settings = Settings(
        model_name=MODEL, model_version=VERSION, min_mapping_unit_m2=0.0, composites=False
    )
    entry = ingest.ingest(
        Runtime(settings=settings, store=store),
        ingest.Upload(
            product_id="S2A_MSIL2A_20210101T103021_N0500_R108_T31TEJ_20210101T120000",
            acquired=dt.datetime(YEAR, 1, 1, 10, 30, 21, tzinfo=dt.UTC),
            model=MODEL,
            version=VERSION,
            segmentation=_geotiff(seg, nodata=0),
            cloud_mask=_geotiff(cloud),
        ),
    )
    item = json.loads(store.get_bytes(entry.key))
    store.delete(entry.key)  # its clones below are the catalog
    return item


def synthetic_products(
    products: int, seed: int = 1, scale: float = 1.0
) -> Iterator[tuple[str, dt.datetime, shapely.Geometry]]:
    """Id, time and 1 x 1 degree footprint of each synthetic product (the catalog's records).

    ``scale`` < 1 shrinks the region around the query area (lon/lat spans times ``scale``): a
    smaller catalog with ``scale = sqrt(products / 100_000)`` has the 100,000-product one's
    density, so a query meets as many products.
    """
    rng = np.random.default_rng(seed)
    lon0, lat0 = 2.5, 44.5  # footprints' lower-left corner when centred on the query area
    lons = rng.uniform(lon0 + (-10.0 - lon0) * scale, lon0 + (29.0 - lon0) * scale, products)
    lats = rng.uniform(lat0 + (36.0 - lat0) * scale, lat0 + (69.0 - lat0) * scale, products)
    start = dt.datetime(YEAR, 1, 1, tzinfo=dt.UTC).timestamp()
    seconds = rng.uniform(0, 365 * 86400, products)
    for i in range(products):
        when = dt.datetime.fromtimestamp(start + seconds[i], dt.UTC).replace(microsecond=0)
        pid = f"S2B_MSIL2A_{when:%Y%m%dT%H%M%S}_N0500_R{i % 143:03d}_T31TEJ_{i:08d}"
        yield pid, when, box(lons[i], lats[i], lons[i] + 1.0, lats[i] + 1.0)


def write_catalog(
    store: LocalStore, item: dict[str, Any], products: int, seed: int = 1, scale: float = 1.0
) -> None:
    """``products`` clones of ``item`` over Europe and one year, written with 4 threads."""

    def record(product: tuple[str, dt.datetime, shapely.Geometry]) -> None:
        pid, when, footprint = product
        clone = dict(item, id=pid, geometry=mapping(footprint), bbox=list(footprint.bounds))
        clone["properties"] = dict(item["properties"], datetime=when.isoformat())
        key = layout.catalog_key(MODEL, VERSION, when.date(), pid)
        store.put_bytes(key, json.dumps(clone, sort_keys=True, separators=(",", ":")).encode())

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(record, synthetic_products(products, seed, scale), chunksize=1000))


def start_servers(
    root: str, workers: int, processes: int, start_timeout: float = 540.0
) -> tuple[Any, dict[str, Any]]:
    """``processes`` server processes on one port (``ServerGroup``), start-up timed, RSS read."""
    from earthsignature.grpc_api.server import ServerGroup

    settings = Settings(
        store=root,
        model_name=MODEL,
        model_version=VERSION,
        api_host="127.0.0.1",
        api_port=0,
        api_workers=workers,
        api_processes=processes,
        api_refresh_seconds=3600,
    )
    group = ServerGroup(settings, grace=1.0, start_timeout=start_timeout)
    t0 = time.perf_counter()
    port = group.start()
    return group, {
        "port": port,
        "processes": processes,
        "products": group.products,
        "index_build_s": round(time.perf_counter() - t0, 2),
        "server_rss_mib_per_process": [round(_rss_mib(p.pid), 1) for p in group.processes],
    }


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (load-independent cost, unlike wall latency)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def server_rss(group: Any) -> float:
    return round(sum(_rss_mib(p.pid) for p in group.processes), 1)


#: Environment variable naming the query area's shape (set by ``--area``; client processes
#: inherit it): ``utm-square`` (default) or ``lonlat-box``.
AREA_ENV = "EARTHSIG_BENCH_AREA"
AREA_SHAPES = ("utm-square", "lonlat-box")


def area(rng: np.random.Generator) -> shapely.Geometry:
    """A 10 x 10 km lon/lat area around CENTRE, shifted by up to 1 km: a UTM square (edges
    segmentized every 500 m, then in lon/lat), or with ``lonlat-box`` that square's lon/lat
    bounding box (an axis-aligned rectangle, as a map view asks)."""
    dx, dy = rng.uniform(-1000, 1000, 2)
    x, y = CENTRE[0] + dx, CENTRE[1] + dy
    utm = shapely.segmentize(box(x - 5000, y - 5000, x + 5000, y + 5000), 500.0)
    lonlat = shapely.transform(
        utm, lambda xy: np.column_stack(TO_LONLAT.transform(xy[:, 0], xy[:, 1]))
    )
    if os.environ.get(AREA_ENV, AREA_SHAPES[0]) == "lonlat-box":
        return box(*lonlat.bounds)
    return lonlat


def add_area_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--area",
        choices=AREA_SHAPES,
        default=AREA_SHAPES[0],
        help="query area: a 10 km UTM square (default) or its lon/lat bounding box",
    )


def use_area(shape: str) -> None:
    """Make :func:`area` (here and in the client processes started later) give ``shape``."""
    os.environ[AREA_ENV] = shape


def month(i: int) -> tuple[dt.datetime, dt.datetime]:
    first = dt.datetime(YEAR, i % 12 + 1, 1, tzinfo=dt.UTC)
    nxt = dt.datetime(YEAR + (first.month == 12), first.month % 12 + 1, 1, tzinfo=dt.UTC)
    return first, nxt - dt.timedelta(seconds=1)


def _stamps(i: int) -> tuple[Timestamp, Timestamp]:
    start, end = month(i)
    stamps = (Timestamp(), Timestamp())
    stamps[0].FromDatetime(start)
    stamps[1].FromDatetime(end)
    return stamps


def v2_call(stub: Any, i: int, rng: np.random.Generator, n_results: int | None) -> tuple[int, int]:
    """V2 as the final module (R2, ``snapearth.api.v2``) publishes it: wkt, dates, n_results."""
    from earthsignature.proto.stubs import r2_v2_pb2

    start, end = _stamps(i)
    request = r2_v2_pb2.ListSegmentationRequest(
        wkt=area(rng).wkt, start_date=start, end_date=end, n_results=n_results
    )
    responses = list(stub.ListSegmentation(request))
    return len(responses), sum(size for size, _message in responses)


def v1_call(stub: Any, i: int, rng: np.random.Generator, n_results: int | None) -> tuple[int, int]:
    from earthsignature.proto.stubs import v1_pb2

    start, end = _stamps(i)
    request = v1_pb2.ListSegmentationRequest(
        wkt=area(rng).wkt, start_date=start, end_date=end, n_results=n_results
    )
    responses = list(stub.ListSegmentation(request))
    return len(responses), sum(size for size, _message in responses)


CALLS = {"v1": v1_call, "v2": v2_call}


#: One client's calls: (request number, the client's random generator) -> (messages, bytes).
Call = Callable[[int, np.random.Generator], tuple[int, int]]


def run_clients(
    client_ids: list[int],
    requests: int,
    seconds: float,
    session: Callable[[], AbstractContextManager[Call]],
) -> dict[str, Any]:
    """Client threads (one ``session`` each) until ``requests`` calls or ``seconds`` pass."""
    latencies: list[float] = []
    answers: list[int] = []
    sizes: list[int] = []
    counter = iter(range(requests))
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(c: int) -> None:
        rng = np.random.default_rng(c)
        with session() as call:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                n, size = call(c * 7919 + i, rng)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    answers.append(n)
                    sizes.append(size)

    t0, cpu0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=client, args=(c,)) for c in client_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {"latencies": latencies, "answers": answers, "sizes": sizes, "wall": wall, "cpu": cpu}


def drive(
    port: int,
    version: str,
    client_ids: list[int],
    n_results: int | None,
    requests: int,
    seconds: float,
) -> dict[str, Any]:
    """gRPC clients (one channel each) of ``version``; raw times (:func:`run_clients`)."""
    from earthsignature.proto.stubs import r2_v2_pb2, v1_pb2

    messages = v1_pb2 if version == "v1" else r2_v2_pb2
    service = messages.DESCRIPTOR.services_by_name["DatabaseProductService"].full_name
    call = CALLS[version]
    limit = 256 * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit)]

    def sized(data: bytes) -> tuple[int, Any]:
        return len(data), messages.SegmentationResponse.FromString(data)

    @contextmanager
    def session() -> Iterator[Call]:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            # as the generated stub, but each message comes with its size on the wire: every
            # message is parsed as a client's would be, none walked again to size it (ByteSize
            # of a 0.6 MB answer cost ~7 ms of the client's time, no client needs it)
            list_segmentation = channel.unary_stream(
                f"/{service}/ListSegmentation",
                request_serializer=messages.ListSegmentationRequest.SerializeToString,
                response_deserializer=sized,
            )
            stub = SimpleNamespace(ListSegmentation=list_segmentation)
            yield lambda i, rng: call(stub, i, rng, n_results)

    return run_clients(client_ids, requests, seconds, session)


def load(
    group: Any,
    version: str,
    clients: int,
    n_results: int | None,
    requests: int,
    seconds: float,
    client_processes: int = 1,
    pool: Any = None,
) -> dict[str, Any]:
    """``clients`` clients spread over ``client_processes`` processes (``pool``); statistics."""
    port = group.port
    pids = [p.pid for p in group.processes]
    server_cpu0 = cpu_seconds(pids)
    k = max(1, min(client_processes, clients))
    groups = [list(range(clients))[i::k] for i in range(k)]
    quotas = [requests // k + (i < requests % k) for i in range(k)]
    if k == 1 or pool is None:
        raws = [drive(port, version, groups[0], n_results, requests, seconds)]
    else:
        jobs = [
            pool.submit(drive, port, version, g, n_results, q, seconds)
            for g, q in zip(groups, quotas, strict=True)
        ]
        raws = [job.result() for job in jobs]
    summary = summarize(raws, cpu_seconds(pids) - server_cpu0)
    return {
        "api": version,
        "clients": clients,
        "client_processes": k,
        "n_results": n_results or "server default",
        **summary,
    }


def summarize(raws: list[dict[str, Any]], server_cpu: float) -> dict[str, Any]:
    """Latency percentiles, throughput and CPU per request of the client processes' raw times."""
    latencies = [x for r in raws for x in r["latencies"]]
    answers = [x for r in raws for x in r["answers"]]
    sizes = [x for r in raws for x in r["sizes"]]
    wall = max(r["wall"] for r in raws)
    client_cpu = sum(r["cpu"] for r in raws)
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "requests_per_s": round(len(latencies) / wall, 1),
        "products_per_answer": round(statistics.mean(answers), 1),
        "bytes_per_answer": int(statistics.mean(sizes)),
        "server_cpu_ms_per_request": round(server_cpu / len(latencies) * 1000, 2),
        "client_cpu_ms_per_request": round(client_cpu / len(latencies) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000, help="per load level, at most")
    parser.add_argument("--seconds", type=float, default=30.0, help="per load level, at most")
    parser.add_argument("--workers", type=int, default=8, help="server worker threads")
    parser.add_argument("--processes", type=int, default=2, help="server processes, one port")
    parser.add_argument("--client-processes", type=int, default=2, help="processes of clients")
    parser.add_argument("--block", type=int, default=50, help="px side of one code square")
    parser.add_argument("--keep", type=Path, help="catalog folder to reuse (built if empty)")
    parser.add_argument(
        "--only", choices=["v1", "v2"], help="run only this API's load levels (profiling)"
    )
    add_area_argument(parser)
    args = parser.parse_args()
    use_area(args.area)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="earthsig-api-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    store = LocalStore(str(folder))
    if not any(store.list_keys(layout.catalog_prefix())):
        t0 = time.perf_counter()
        item = shared_product(store, args.block)
        t1 = time.perf_counter()
        write_catalog(store, item, args.products)
        print(
            json.dumps(
                {
                    "setup": "catalog",
                    "products": args.products,
                    "publish_shared_product_s": round(t1 - t0, 2),
                    "write_records_s": round(time.perf_counter() - t1, 2),
                }
            )
        )
    empty = tempfile.mkdtemp(prefix="earthsig-api-empty-")
    group, _ = start_servers(empty, args.workers, 1)
    baseline = server_rss(group)
    group.stop(grace=0)
    shutil.rmtree(empty, ignore_errors=True)
    group, info = start_servers(str(folder), args.workers, args.processes)
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(args.client_processes, mp_context=ctx)
    try:
        info["server_rss_mib_empty_catalog"] = baseline
        print(json.dumps({"setup": "index", **info, "load": os.getloadavg()[0]}))
        load(group, "v2", 4, None, 40, 30, args.client_processes, pool)  # warm-up
        runs = [
            ("v2", 1, None),
            ("v2", 50, None),
            ("v2", 1, 1),
            ("v2", 50, 1),
            ("v1", 1, 1),
            ("v1", 50, 1),
        ]
        for version, clients, n_results in runs:
            if args.only and version != args.only:
                continue
            result = load(
                group,
                version,
                clients,
                n_results,
                args.requests,
                args.seconds,
                args.client_processes,
                pool,
            )
            result["server_rss_mib"] = server_rss(group)
            result["load"] = round(os.getloadavg()[0], 2)
            print(json.dumps(result))
    finally:
        pool.shutdown()
        group.stop(grace=1.0)
    print(f"client peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"catalog kept in {folder}")


if __name__ == "__main__":
    main()
