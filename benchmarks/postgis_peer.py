"""V2 ListSegmentation against PostgreSQL + PostGIS, side by side in one run (issue 19, item 1).

The peer a user would pick instead of our API: the same polygons in PostGIS, answering the same
query (a 10 x 10 km area, one calendar month, newest ``n_results`` products, each product's
polygons clipped to the area as one geobuf FeatureCollection) with ``ST_Intersects``,
``ST_Intersection`` and ``ST_AsGeobuf``.

Catalog: :mod:`benchmarks.api`'s synthetic one (``--products`` records over Europe and 2021,
all sharing one real published product's assets), served by our ``ServerGroup`` exactly as in
``python -m benchmarks api``. PostGIS gets every product (id, time, footprint; GiST on the
footprint, btree on the time) and the polygons of every product whose footprint meets the shared
product's extent: the only products any query of this benchmark can match, so each query meets
the same products and polygons in both systems (polygons of the other products would sit
elsewhere in Europe and never be read; loading all 100,000 x ~700 would only take disk). The
polygons have the published FlatGeobuf's fields; GiST on the geometry, btree on the product.

PostgreSQL (Debian's ``postgresql-15-postgis-3``) runs as its own cluster in a temporary folder
on a loopback port, started here with ``initdb`` / ``pg_ctl`` (as the ``postgres`` user when
run as root) and stopped at the end; default settings except ``max_connections`` 120 and
``fsync`` off (the load is read-only after the import). The query keeps polygons the area
covers as they are and clips the others (``ST_CoveredBy`` first, the usual idiom), with the
clipped area in m² from ``geography`` like ours; psycopg, binary results, one connection per
client thread, prepared statements.

Load levels: 1 and 50 clients, the server's default ``n_results`` (10); each level runs
``--rounds`` times alternately ours / PostGIS (threads in ``--client-processes`` processes, at
most ``--requests`` calls or ``--seconds`` each), with the load average at each start.

``--products`` below 100,000 spreads them over a region shrunk around the query area so the
density (products per query) stays the 100,000-product catalog's; ``--europe`` keeps all Europe.

    python -m benchmarks postgis_peer [--products 100000] [--requests 600] [--seconds 15]
        [--rounds 2] [--keep DIR] [--europe] [--plain] [--area utm-square|lonlat-box]

``--plain`` leaves the pre-encoded polygons (``polygons/encoded``) out of the catalog, so V2
answers from the FlatGeobuf as products published before them do (a side-by-side of the two).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import shapely

from benchmarks import api
from earthsignature.storage import LocalStore, layout

PG_BIN = Path("/usr/lib/postgresql/15/bin")
INSTALL = "apt-get install -y postgresql-15-postgis-3 (Debian), and pip install -e '.[bench]'"

#: One request: newest products of the month meeting the area, their polygons clipped to it.
QUERY = """
WITH a AS (SELECT ST_GeomFromText(%(wkt)s, 4326) AS g),
hits AS (
  SELECT p.id, p.datetime FROM products p, a
  WHERE p.datetime BETWEEN %(start)s AND %(end)s AND ST_Intersects(p.footprint, a.g)
  ORDER BY p.datetime DESC LIMIT %(n)s
)
SELECT h.id, (
  SELECT ST_AsGeobuf(t, 'geom') FROM (
    SELECT q.code, q.label, q.product_id, q.date, q.model, q.version,
           round(ST_Area(c.geom::geography)::numeric, 1)::float8 AS area_m2, q.confidence,
           c.geom
    FROM polygons q, a,
    LATERAL (
      SELECT CASE WHEN ST_CoveredBy(q.geom, a.g) THEN q.geom
             ELSE ST_CollectionExtract(ST_Intersection(q.geom, a.g), 3) END AS geom
    ) c
    WHERE q.catalog_id = h.id AND ST_Intersects(q.geom, a.g) AND NOT ST_IsEmpty(c.geom)
  ) t
)
FROM hits h ORDER BY h.datetime DESC
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """A throw-away PostgreSQL cluster in ``folder``, listening on 127.0.0.1 only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.dsn = f"host=127.0.0.1 port={self.port} user=bench dbname=postgres"
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str) -> None:
        subprocess.run([*self.prefix, *command], check=True, capture_output=True)

    def start(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise SystemExit(f"PostgreSQL 15 not found in {PG_BIN}: {INSTALL}")
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.prefix:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "bench", "-A", "trust")
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c max_connections=120 -c fsync=off"
        )
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
            "-w", "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def pids(self) -> list[int]:
        """The postmaster and its children (one backend per connection)."""
        master = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                children.append(int(stat.parent.name))
        return [master, *children]

    def cpu_seconds(self) -> float:
        """CPU of the whole cluster: live processes plus backends that already ended."""
        master = int((self.data / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{master}/stat").read_text().rsplit(")", 1)[1].split()
        reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        live = 0.0
        for pid in self.pids():
            try:
                live += api.cpu_seconds([pid])
            except OSError:
                continue  # ended between the listing and the read: counted as reaped
        return live + reaped


def _pg_type(values: np.ndarray) -> str:
    if values.dtype.kind in "iu":
        return "bigint"
    if values.dtype.kind == "f":
        return "double precision"
    return "text"


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def import_catalog(dsn: str, products: int, fgb: Path, scale: float) -> dict[str, Any]:
    """Products (all) and polygons (of the products meeting the shared extent) into PostGIS."""
    import psycopg

    meta, _fids, wkb, columns = pyogrio.raw.read(fgb)
    names = [str(n) for n in meta["fields"]]
    geometries = shapely.from_wkb(wkb)
    extent = shapely.box(*shapely.total_bounds(geometries))
    polygons_hex = shapely.to_wkb(shapely.set_srid(geometries, 4326), hex=True, include_srid=True)
    values = [[_cell(v) for v in c.tolist()] for c in columns]
    t0 = time.perf_counter()
    loaded = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
        conn.execute(
            "CREATE TABLE products (id text PRIMARY KEY, datetime timestamptz NOT NULL,"
            " footprint geometry(Polygon, 4326) NOT NULL)"
        )
        fields = ", ".join(f"{n} {_pg_type(c)}" for n, c in zip(names, columns, strict=True))
        conn.execute(
            f"CREATE TABLE polygons (catalog_id text NOT NULL, {fields},"
            " geom geometry(Geometry, 4326) NOT NULL)"
        )
        with conn.cursor() as cur:
            with cur.copy("COPY products (id, datetime, footprint) FROM STDIN") as copy:
                meeting = []
                for pid, when, footprint in api.synthetic_products(products, scale=scale):
                    ewkb = shapely.to_wkb(
                        shapely.set_srid(footprint, 4326), hex=True, include_srid=True
                    )
                    copy.write_row((pid, when, ewkb))
                    if footprint.intersects(extent):
                        meeting.append(pid)
            names_sql = ", ".join(names)
            with cur.copy(f"COPY polygons (catalog_id, {names_sql}, geom) FROM STDIN") as copy:
                for pid in meeting:
                    for i, geometry in enumerate(polygons_hex):
                        copy.write_row((pid, *(v[i] for v in values), geometry))
                        loaded += 1
        conn.execute("CREATE INDEX ON products USING gist (footprint)")
        conn.execute("CREATE INDEX ON products (datetime)")
        conn.execute("CREATE INDEX ON polygons USING gist (geom)")
        conn.execute("CREATE INDEX ON polygons (catalog_id)")
        conn.execute("VACUUM ANALYZE")
        version = conn.execute("SELECT postgis_lib_version(), version()").fetchone()
    return {
        "setup": "postgis",
        "products": products,
        "products_with_polygons": len(meeting),
        "polygon_rows": loaded,
        "import_s": round(time.perf_counter() - t0, 2),
        "postgis": str(version[0]) if version else "?",
        "postgres": str(version[1]).split(",")[0] if version else "?",
    }


def pg_drive(
    dsn: str, client_ids: list[int], n_results: int, requests: int, seconds: float
) -> dict[str, Any]:
    """psycopg clients (one connection each); raw times (:func:`benchmarks.api.run_clients`)."""
    import psycopg

    @contextmanager
    def session() -> Iterator[api.Call]:
        with psycopg.connect(dsn, autocommit=True) as conn:

            def call(i: int, rng: np.random.Generator) -> tuple[int, int]:
                start, end = api.month(i)
                params = {"wkt": api.area(rng).wkt, "start": start, "end": end, "n": n_results}
                rows = conn.execute(QUERY, params, prepare=True, binary=True).fetchall()
                return len(rows), sum(len(r[1] or b"") for r in rows)

            yield call

    return api.run_clients(client_ids, requests, seconds, session)


def pg_load(
    pg: Postgres,
    clients: int,
    n_results: int,
    requests: int,
    seconds: float,
    client_processes: int,
    pool: Any,
) -> dict[str, Any]:
    k = max(1, min(client_processes, clients))
    groups = [list(range(clients))[i::k] for i in range(k)]
    quotas = [requests // k + (i < requests % k) for i in range(k)]
    cpu0 = pg.cpu_seconds()
    jobs = [
        pool.submit(pg_drive, pg.dsn, g, n_results, q, seconds)
        for g, q in zip(groups, quotas, strict=True)
    ]
    raws = [job.result() for job in jobs]
    summary = api.summarize(raws, pg.cpu_seconds() - cpu0)
    return {"api": "postgis", "clients": clients, "client_processes": k, **summary}


def check_answers(port: int, dsn: str, n_results: int) -> dict[str, Any]:
    """One request through both: products, polygons and area per answer (decoded geobuf)."""
    import geobuf
    import grpc
    import psycopg

    from earthsignature.proto.stubs import r2_v2_pb2_grpc

    rng_ours, rng_pg = np.random.default_rng(7), np.random.default_rng(7)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = r2_v2_pb2_grpc.DatabaseProductServiceStub(channel)
        start, end = api._stamps(3)
        from earthsignature.proto.stubs import r2_v2_pb2

        request = r2_v2_pb2.ListSegmentationRequest(
            wkt=api.area(rng_ours).wkt, start_date=start, end_date=end, n_results=n_results
        )
        answers = stub.ListSegmentation(request)
        ours = [geobuf.decode(r.segmentation.SerializeToString()) for r in answers]
    start_dt, end_dt = api.month(3)
    params = {"wkt": api.area(rng_pg).wkt, "start": start_dt, "end": end_dt, "n": n_results}
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(QUERY, params, binary=True).fetchall()
    theirs = [geobuf.decode(bytes(data)) if data else {"features": []} for _id, data in rows]

    def figures(answers: list[dict[str, Any]]) -> list[tuple[int, float]]:
        return [
            (len(a["features"]), round(sum(f["properties"]["area_m2"] for f in a["features"])))
            for a in answers
        ]

    return {"check": "one request", "ours": figures(ours), "postgis": figures(theirs)}


def loads() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=600, help="per run, at most")
    parser.add_argument("--seconds", type=float, default=15.0, help="per run, at most")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each system per level")
    parser.add_argument("--workers", type=int, default=8, help="gRPC server threads")
    parser.add_argument("--processes", type=int, default=2, help="gRPC server processes")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--n-results", type=int, default=10, help="the server's default")
    parser.add_argument("--keep", type=Path, help="catalog folder to reuse (built if empty)")
    parser.add_argument(
        "--start-timeout", type=float, default=540.0, help="seconds the index build may take"
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="catalog without the pre-encoded polygons (V2 reads FlatGeobuf, as before them)",
    )
    parser.add_argument(
        "--europe",
        action="store_true",
        help="spread --products over all Europe (else over a region giving 100,000's density)",
    )
    api.add_area_argument(parser)
    args = parser.parse_args()
    api.use_area(args.area)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise SystemExit(f"psycopg is missing: {INSTALL}") from None
    folder = args.keep or Path(tempfile.mkdtemp(prefix="earthsig-pg-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    store = LocalStore(str(folder))
    scale = 1.0 if args.europe else min(1.0, math.sqrt(args.products / 100_000))
    if not any(store.list_keys(layout.catalog_prefix())):
        item = api.shared_product(store, 50)
        if args.plain:
            item["assets"].pop("encoded", None)
        api.write_catalog(store, item, args.products, scale=scale)
    fgb = next((folder / layout.POLYGONS).rglob("*.fgb"))  # the shared product's
    pg = Postgres(Path(tempfile.mkdtemp(prefix="earthsig-postgres-")))
    pg.start()
    group = None
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(args.client_processes, mp_context=spawn)
    try:
        print(json.dumps({"setup": "catalog", "products": args.products, "scale": scale}))
        print(json.dumps({**import_catalog(pg.dsn, args.products, fgb, scale), "load": loads()}))
        group, info = api.start_servers(
            str(folder), args.workers, args.processes, args.start_timeout
        )
        print(json.dumps({"setup": "ours", **info, "load": loads()}))
        print(json.dumps(check_answers(group.port, pg.dsn, args.n_results)))
        api.load(group, "v2", 4, args.n_results, 40, 20, args.client_processes, pool)  # warm-up
        pg_load(pg, 4, args.n_results, 40, 20, args.client_processes, pool)
        for clients in (1, 50):
            for _ in range(args.rounds):
                before = loads()
                ours = api.load(
                    group, "v2", clients, args.n_results, args.requests, args.seconds,
                    args.client_processes, pool,
                )  # fmt: skip
                print(json.dumps({**ours, "load_at_start": before}))
                before = loads()
                theirs = pg_load(
                    pg, clients, args.n_results, args.requests, args.seconds,
                    args.client_processes, pool,
                )  # fmt: skip
                print(json.dumps({**theirs, "load_at_start": before}))
                ratio = ours["requests_per_s"] / theirs["requests_per_s"]
                print(json.dumps({"clients": clients, "ours_over_postgis_req_s": round(ratio, 2)}))
    finally:
        pool.shutdown()
        if group is not None:
            group.stop(grace=1.0)
        pg.stop()
        shutil.rmtree(pg.folder, ignore_errors=True)
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
