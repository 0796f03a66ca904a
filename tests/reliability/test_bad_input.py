"""A corpus of bad products through the real pipeline: each is recorded, the worker goes on.

One module-scoped run: a local STAC API serves small generated products (120 px) that are
broken in one way each, between two good ones; the daily entry (``enqueue_discover``) starts
the run and ONE real worker process (embedded Redis, local store, embedded onnxruntime)
processes it. A second run asks for a model version the workers' repository lacks. Each case
is then its own test: its outcome record (status, stage, reason naming the problem), nothing
of it visible outside ``work/`` and ``records/``, and the same worker committing the good ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import redis
from click.testing import CliRunner
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.serializers import JSONSerializer

from earthsignature.cli import cli
from earthsignature.functions.errors import BadInput
from earthsignature.functions.fetch import check_reflectance
from earthsignature.functions.stac import AssetRef
from earthsignature.generator import generate_product
from earthsignature.models.errors import ModelNotFound
from earthsignature.models.repository import SHIPPED
from earthsignature.queue import EmbeddedRedis, status
from earthsignature.queue.enqueue import discover_payload, enqueue_discover
from earthsignature.queue.rq_setup import make_queue
from earthsignature.queue.run import wait_for_drain
from earthsignature.queue.stages import QUEUES
from earthsignature.queue.worker import LocalWorkers
from earthsignature.settings import load_settings
from earthsignature.storage import LocalStore, catalog, layout
from earthsignature.storage.records import OutcomeRecord, read_record
from earthsignature.testing.stac_server import StacServer
from tests.queue.conftest import make_pipeline

MODEL = "clc-baseline"
DAY = dt.date(2024, 6, 1)
DAY_V2 = dt.date(2024, 6, 2)
TILE = "29RKH"
AOI = "POLYGON ((-13 23, -10 23, -10 26, -13 26, -13 23))"  # around 29RKH (Western Sahara)
SIZE = 120


def _pid(slug: str, day: dt.date = DAY) -> str:
    return f"S2G_{TILE}_{day:%Y%m%d}_{slug}_L2A"


# -- how each case breaks its product --------------------------------------------------


def _truncate(folder: Path, item: dict[str, Any]) -> None:
    path = folder / "B12.tif"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _retag_crs(folder: Path, item: dict[str, Any]) -> None:
    with rasterio.open(folder / "B11.tif", "r+") as ds:
        ds.crs = rasterio.crs.CRS.from_epsg(32630)  # the neighbouring UTM zone


def _item_crs(folder: Path, item: dict[str, Any]) -> None:
    item["properties"]["proj:epsg"] = 32630


def _shift_grid(folder: Path, item: dict[str, Any]) -> None:
    path = folder / "B05.tif"
    with rasterio.open(path) as ds:
        data, profile = ds.read(1), ds.profile
    t = profile["transform"]
    profile["transform"] = rasterio.Affine(t.a, t.b, t.c + 140, t.d, t.e, t.f - 140)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)


def _drop_scl(folder: Path, item: dict[str, Any]) -> None:
    del item["assets"]["scl"]


def _claim_clear(folder: Path, item: dict[str, Any]) -> None:
    item["properties"]["eo:cloud_cover"] = 5.0  # the catalogue is wrong; SCL says 100 %


def _blank(folder: Path, item: dict[str, Any]) -> None:
    for path in folder.glob("*.tif"):
        with rasterio.open(path, "r+") as ds:
            ds.write(np.zeros(ds.shape, dtype=ds.dtypes[0]), 1)


def _saturate(folder: Path, item: dict[str, Any]) -> None:
    with rasterio.open(folder / "B08.tif", "r+") as ds:
        ds.write(np.full(ds.shape, 65535, dtype="uint16"), 1)


def _wrong_scale(folder: Path, item: dict[str, Any]) -> None:
    item["assets"]["red"]["raster:bands"][0].update(scale=1.0, offset=0.0)


def _hostile(new_id: str) -> Callable[[Path, dict[str, Any]], None]:
    def mutate(folder: Path, item: dict[str, Any]) -> None:
        item["id"] = new_id

    return mutate


@dataclass(frozen=True)
class Case:
    """One product of the corpus and the outcome it must have."""

    name: str
    mutate: Callable[[Path, dict[str, Any]], None] | None
    status: str  # committed, skipped or failed
    stage: str
    reason: str = ""  # regex the record's reason must match
    cloudy: bool = False  # derived from the 100 % cloud product
    day: dt.date = DAY
    version: int = 1

    @property
    def product_id(self) -> str:
        return _pid(self.name.replace("_", "-"), self.day)

    @property
    def hostile_id(self) -> str | None:
        if self.mutate is None or not self.name.startswith("hostile"):
            return None
        item: dict[str, Any] = {}
        self.mutate(Path(), item)
        return str(item["id"])

    @property
    def record_id(self) -> str:
        """The id its record is kept under (a stand-in for hostile ids)."""
        return layout.safe_product_id(self.hostile_id or self.product_id)


CASES = [
    Case("good_first", None, "committed", "vectorize"),
    Case("truncated_b12", _truncate, "failed", "fetch", r"band B12 .*unreadable or truncated"),
    Case("wrong_crs_band", _retag_crs, "failed", "fetch", r"band B11 is in EPSG:32630.*32629"),
    Case("wrong_crs_item", _item_crs, "failed", "discover", r"CRS mismatch.*proj:epsg 32630"),
    Case("mismatched_grid", _shift_grid, "failed", "fetch", r"band B05 is not on the grid"),
    Case("missing_scl", _drop_scl, "failed", "fetch", r"lacks band asset\(s\) SCL"),
    Case("cloudy_scene", None, "skipped", "discover", r"scene cloud cover 100\.0 % is over", True),
    Case(
        "cloudy_pixels",
        _claim_clear,
        "skipped",
        "cloud",
        r"cloud fraction 100\.00 % is over the threshold",
        True,
    ),
    Case("all_nodata", _blank, "failed", "cloud", r"no valid pixel \(SCL all no data\)"),
    Case("saturated", _saturate, "failed", "fetch", r"band B08 reflectance out of range: 100\.0%"),
    Case("wrong_scale", _wrong_scale, "failed", "fetch", r"band B04 reflectance out of range"),
    Case(
        "hostile_parent",
        _hostile("../../x"),
        "failed",
        "discover",
        r"hostile/invalid product id '\.\./\.\./x'",
    ),
    Case(
        "hostile_absolute",
        _hostile("/etc/passwd"),
        "failed",
        "discover",
        r"hostile/invalid product id '/etc/passwd'",
    ),
    Case(
        "hostile_long",
        _hostile("S2G_" + "x" * 320),
        "failed",
        "discover",
        r"hostile/invalid product id 'S2G_x+\.\.\. \(324 chars\)",
    ),
    Case(
        "hostile_nul",
        _hostile("S2G_29RKH\x00_L2A"),
        "failed",
        "discover",
        r"hostile/invalid product id 'S2G_29RKH\\x00_L2A'",
    ),
    Case(
        "hostile_newline",
        _hostile("S2G_29RKH_L2A\n"),
        "failed",
        "discover",
        r"hostile/invalid product id 'S2G_29RKH_L2A\\n'",
    ),
    Case("good_last", None, "committed", "vectorize"),
    Case(
        "unknown_version",
        None,
        "failed",
        "fetch",
        r"unknown model version clc-baseline v2: .*available versions: 1\)",
        day=DAY_V2,
        version=2,
    ),
]
BAD = [c for c in CASES if c.status != "committed"]
GOOD = [c for c in CASES if c.status == "committed"]


def _item(case: Case, sources: dict[bool, Path], root: Path) -> dict[str, Any]:
    """A copy of the good (or 100 % cloud) product, broken as the case says."""
    source = sources[case.cloudy]
    folder = root / case.name
    shutil.copytree(source, folder)
    item = json.loads(next(source.glob("S2G_*.json")).read_text())
    item["id"] = case.product_id
    item["properties"]["datetime"] = f"{case.day.isoformat()}T10:30:00.000000Z"
    for asset in item["assets"].values():
        asset["href"] = str(folder / Path(asset["href"]).name)
    if case.mutate is not None:
        case.mutate(folder, item)
    return item


def _repository_with_v2(root: Path) -> Path:
    """The enqueuing host's repository: the shipped model plus a version 2 (same graph)."""
    repo = root / "repository"
    shutil.copytree(SHIPPED / MODEL, repo / MODEL)
    shutil.copytree(repo / MODEL / "1", repo / MODEL / "2")
    meta = repo / MODEL / "2" / "earthsig.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": 2}))
    return repo


@dataclass
class Outcome:
    """What the run left: store keys, records, statuses, jobs and the worker."""

    root: Path
    store: LocalStore
    keys: list[str]
    statuses: dict[tuple[str, int], status.ProductStatus]
    jobs: list[Job]
    failed_jobs: int
    worker_pid: int
    worker_alive: bool
    run_errors: dict[str, str]
    rejected: dict[str, int]


RUNS = {"r-v2": (DAY_V2, 2), "r-v1": (DAY, 1)}  # the unknown-version product is met first


def _settled(conn: redis.Redis) -> bool:
    found = [p for run in RUNS for p in status.products(conn, run)]
    discovered = all(status.run_discovered(conn, run) for run in RUNS)
    return discovered and all(p.terminal for p in found)


def _snapshot(conn: redis.Redis, store: LocalStore, root: Path, workers: LocalWorkers) -> Outcome:
    """Everything the tests look at, read before the workers stop."""
    (proc,) = workers.procs
    finished = [
        jid for q in QUEUES for jid in FinishedJobRegistry(queue=make_queue(q, conn)).get_job_ids()
    ]
    jobs = Job.fetch_many(finished, connection=conn, serializer=JSONSerializer)
    return Outcome(
        root=root,
        store=store,
        keys=[info.key for info in store.list_keys("")],
        statuses={(p.product_id, p.version): p for run in RUNS for p in status.products(conn, run)},
        jobs=[job for job in jobs if job is not None],
        failed_jobs=sum(FailedJobRegistry(queue=make_queue(q, conn)).count for q in QUEUES),
        worker_pid=proc.pid,
        worker_alive=proc.poll() is None,
        run_errors={run: (status.run_discovered(conn, run) or {}).get("error", "") for run in RUNS},
        rejected={
            run: int((status.run_discovered(conn, run) or {}).get("rejected", 0)) for run in RUNS
        },
    )


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis) -> Outcome:
    """The corpus through one real worker: the v2 run and the v1 run, from the STAC API."""
    root = tmp_path_factory.mktemp("bad-input")
    sources = {
        cloudy: generate_product(
            root / "generated" / str(cloudy), size=SIZE, seed=1, tile=TILE, cloud_fraction=share
        ).directory
        for cloudy, share in ((False, 0.05), (True, 1.0))
    }
    items = [_item(case, sources, root / "products") for case in CASES]
    store = LocalStore(root / "sandbox" / "store")
    conn = redis_server.connection()
    conn.flushall()
    try:
        with (
            StacServer(items) as stac,
            contextlib.contextmanager(make_pipeline)(
                conn,
                redis_server,
                store,
                root,
                EARTHSIG_STAGE_HANDLERS="{}",
                EARTHSIG_STAC_API_URL=stac.url,
                EARTHSIG_AOI_WKT=AOI,
            ) as pipeline,
        ):
            workers = pipeline.start_workers(1)
            enqueuer = pipeline.settings.model_copy(
                update={"model_repository": _repository_with_v2(root)}
            )
            for run, (day, version) in RUNS.items():
                payload = discover_payload(
                    start=day, end=day, run=run, model=MODEL, version=version, aoi_wkt=AOI
                )
                assert enqueue_discover(conn, enqueuer, payload) is not None
            pipeline.wait(lambda: _settled(conn), timeout=90, what="the corpus runs to settle")
            # a product's status turns terminal inside its last job, before RQ files the job
            # as finished: the snapshot reads the registries once every queue has drained
            wait_for_drain(conn, QUEUES, workers, timeout=60)
            return _snapshot(conn, store, root, workers)
    finally:
        conn.close()


def _record(outcome: Outcome, case: Case) -> OutcomeRecord | None:
    return read_record(outcome.store, MODEL, case.version, case.day, case.record_id)


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_bad_product_is_recorded_with_its_reason(outcome: Outcome, case: Case) -> None:
    record = _record(outcome, case)
    assert record is not None, f"no record for {case.name}"
    assert (record.status, record.stage) == (case.status, case.stage)
    assert re.search(case.reason, record.reason), record.reason
    if case.hostile_id is not None:
        assert record.product_id.startswith("rejected-")
        assert record.details["item_id"] == case.hostile_id[:1000]
    else:
        assert record.product_id == case.product_id
    state = outcome.statuses.get((record.product_id, case.version))
    if case.stage != "discover" or case.status == "skipped":  # refused items never enter
        assert state is not None and (state.state, state.stage) == (case.status, case.stage)
        assert state.retries == 0  # bad input is not retried


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_nothing_partial_is_visible(outcome: Outcome, case: Case) -> None:
    name = case.hostile_id or case.product_id
    visible = [
        k
        for k in outcome.keys
        if name in k and not k.startswith((f"{layout.WORK}/", f"{layout.RECORDS}/"))
    ]
    assert visible == []
    assert not catalog.is_committed(outcome.store, MODEL, case.version, case.day, case.record_id)


def test_hostile_ids_never_reach_a_key_or_the_file_system(outcome: Outcome) -> None:
    for key in outcome.keys:
        assert ".." not in key and not key.startswith("/"), key
        assert not re.search(r"[\x00-\x1f]", key), key
        assert all(len(part) <= 210 for part in key.split("/")), key
    sandbox = outcome.store.root.parent
    assert [p.name for p in sandbox.iterdir()] == ["store"]  # nothing written beside the store
    assert not (outcome.root / "x").exists() and not (outcome.root.parent / "x").exists()


@pytest.mark.parametrize("case", GOOD, ids=[c.name for c in GOOD])
def test_good_products_commit(outcome: Outcome, case: Case) -> None:
    assert catalog.is_committed(outcome.store, MODEL, 1, case.day, case.product_id)
    assert _record(outcome, case) is None
    state = outcome.statuses[(case.product_id, 1)]
    assert (state.state, state.retries) == ("committed", 0)


def test_one_worker_survived_the_corpus(outcome: Outcome) -> None:
    assert outcome.worker_alive
    assert outcome.failed_jobs == 0 and outcome.run_errors == dict.fromkeys(RUNS, "")
    workers = {job.worker_name for job in outcome.jobs}
    assert len(workers) == 1 and f"-{outcome.worker_pid}-" in workers.pop()  # type: ignore[operator]
    bad_ids = {c.product_id for c in BAD}
    bad_ends = [job.ended_at for job in outcome.jobs if job.args[1].get("product_id") in bad_ids]
    last = next(
        job
        for job in outcome.jobs
        if job.args[0] == "vectorize" and job.args[1]["product_id"] == _pid("good-last")
    )
    assert bad_ends and last.started_at is not None
    assert last.started_at > max(e for e in bad_ends if e is not None)


def test_unknown_version_is_refused_at_enqueue(redis_conn: Any) -> None:
    payload = discover_payload(start=DAY, end=DAY, run="r-x", model=MODEL, version=7)
    with pytest.raises(ModelNotFound, match=r"'clc-baseline' version 7 not available .*: 1\)"):
        enqueue_discover(redis_conn, load_settings(), payload)
    assert make_queue("discover", redis_conn).count == 0


def test_unknown_version_is_a_clear_cli_error(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {"EARTHSIG_STORE": str(store), "EARTHSIG_MODEL_VERSION": "7", "REDIS_URL": None}
    result = CliRunner().invoke(cli, ["run", "--date", "2024-06-01", "--no-progress"], env=env)
    assert result.exit_code == 2, result.output
    assert "error: model 'clc-baseline' version 7 not available" in result.output
    assert "available versions: 1" in result.output
    assert not store.exists()  # refused before anything started


@pytest.mark.parametrize(
    ("dn", "refused"),
    [
        ({2000: 0.9, 65535: 0.1}, False),  # some saturated (bright cloud, snow) pixels pass
        ({17000: 0.5, 3000: 0.5}, False),  # bright cloud tops (1.6 reflectance) are in range
        ({65535: 0.995, 2000: 0.005}, True),  # essentially all saturated
        ({65535: 1.0}, True),
        ({0: 0.9995, 65535: 0.0005}, False),  # nearly empty tile: too few valid pixels to judge
    ],
)
def test_reflectance_rule(dn: dict[int, float], refused: bool) -> None:
    n = 65536
    sample = np.concatenate([np.full(round(n * share), v, float) for v, share in dn.items()])
    asset = AssetRef("B04.tif", scale=1e-4, offset=-0.1)
    if refused:
        with pytest.raises(BadInput, match="band B04 reflectance out of range"):
            check_reflectance("B04", sample, 0.0, asset)
    else:
        check_reflectance("B04", sample, 0.0, asset)


def test_run_status_counts_items_refused_at_discover(outcome: Outcome) -> None:
    refused = [c for c in CASES if c.status == "failed" and c.stage == "discover"]
    expected = {run: sum(c.day == day for c in refused) for run, (day, _) in RUNS.items()}
    assert outcome.rejected == expected
    assert expected["r-v1"] == 6  # five hostile ids and the item whose CRS contradicts its tile
