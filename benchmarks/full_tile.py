"""A full 10980 x 10980 product end to end on the embedded defaults: time per stage, peak RSS.

    python -m benchmarks full_tile [--keep DIR] [--workers 2] [--no-parts]
    python -m benchmarks full_tile --keep DIR --replay-publish STORE

The product is generated once into ``DIR/scenes`` (not timed; reruns reuse it) and served by
a loopback STAC API; the day then runs exactly as ``earthsig run`` runs it: embedded Redis,
a local store, ``--workers`` RQ worker subprocesses, the embedded onnxruntime runner and the
configured model (the default ``dynamicworld-clc``; ``EARTHSIG_MODEL_NAME=clc-baseline`` for the
fast spectral-rule model). Stage times come from the RQ jobs' start and end stamps; the peak RSS of
every process (workers, their children, Redis, this one) is its ``VmHWM``, sampled from
``/proc`` while it runs, and each job's worker RSS is the largest ``VmRSS`` sampled while
the job ran. Afterwards the vectorize job is replayed in this process (same inputs, same code) to
split its time into stitch, COG, FlatGeobuf, PMTiles and catalog (``--no-parts`` skips it).

``--replay-publish STORE`` runs no pipeline: it publishes the product committed in STORE
again (its segmentation COG, and confidence COG when it has one, copied first: publish labels
its input's band) into a fresh store under ``DIR/replay-store``, as the vectorize stage's
publish runs it (child processes, GDAL's cache bounded as in a worker), and reports each
part's seconds, the peak RSS of every child process and the load average. The commit deletes
the ``work/`` predictions, so stitching is not replayed; this is the way to split the publish
part of a run that is over.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DAY = dt.date(2024, 6, 1)
TILE = "31TCJ"


def _status_mib(pid: int, field: str = "VmHWM") -> float | None:
    """A field of /proc/<pid>/status (VmHWM: peak resident memory) in MiB; None once gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class PeakSampler:
    """Samples VmHWM of this process's descendants until stopped (keeps the largest seen)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peaks: dict[int, float] = {}
        self.names: dict[int, str] = {}
        #: (time, pid, resident MiB) samples, to attribute peaks to the jobs running then.
        self.samples: list[tuple[float, int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        now = time.time()
        for pid in _descendants(os.getpid()):
            hwm = _status_mib(pid)
            rss = _status_mib(pid, "VmRSS")
            if hwm is None or rss is None:
                continue
            self.samples.append((now, pid, rss))
            if pid not in self.names:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                self.names[pid] = _role([part.decode() for part in cmdline if part])
            self.peaks[pid] = max(hwm, self.peaks.get(pid, 0.0))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def _descendants(root: int) -> list[int]:
    """Pids of every process below root (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _role(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "redis-server" in text:
        return "redis-server"
    if "multiprocessing" in text:
        return "worker's child (COG/PMTiles)"
    if " worker " in f"{text} ":
        return "worker"
    return os.path.basename(cmdline[0]) if cmdline else "?"


def ensure_scene(keep: Path, size: int) -> tuple[Path, float | None]:
    """The generated product's STAC item file (generated on first use); generation seconds."""
    from earthsignature.generator import generate_product

    scenes = keep / f"scenes-{size}"
    found = [p for p in sorted(scenes.glob("*/*.json")) if p.stem == p.parent.name]
    if found:
        return found[0], None
    start = time.perf_counter()
    product = generate_product(
        scenes, size=size, seed=0, date=DAY.isoformat(), tile=TILE, cloud_fraction=0.05
    )
    return Path(product.item), time.perf_counter() - start


def stage_jobs(conn: Any) -> list[dict[str, Any]]:
    """Every finished job of the run: stage, shard, worker pid, start and end (epoch s)."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from earthsignature.queue.rq_setup import make_queue
    from earthsignature.queue.stages import QUEUES

    out = []
    for name in {*QUEUES, "discover"}:
        queue = make_queue(name, conn)
        ids = queue.finished_job_registry.get_job_ids()
        for job in Job.fetch_many(ids, connection=conn, serializer=JSONSerializer):
            if job is None or job.started_at is None or job.ended_at is None:
                continue
            args = job.args or []
            stage = args[0] if args and isinstance(args[0], str) else job.func_name
            payload = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
            pid = (job.worker_name or "").split("-")
            out.append(
                {
                    "stage": stage,
                    "shard": payload.get("shard"),
                    "pid": int(pid[-2]) if len(pid) > 2 and pid[-2].isdigit() else None,
                    "start": job.started_at.replace(tzinfo=dt.UTC).timestamp(),
                    "end": job.ended_at.replace(tzinfo=dt.UTC).timestamp(),
                    "payload": payload,
                }
            )
    return sorted(out, key=lambda j: j["start"])


def replay_vectorize(store_root: Path, payload: dict[str, Any], threads: int) -> dict[str, float]:
    """Stitch and publish the product again in this process, timing each part."""
    from earthsignature.functions.messages import ProductMessage
    from earthsignature.functions.publish import publish_product
    from earthsignature.functions.stitch import stitch_segmentation
    from earthsignature.runtime import Runtime
    from earthsignature.settings import load_settings
    from earthsignature.storage import LocalStore

    store = LocalStore(store_root)
    rt = Runtime(load_settings(store=str(store_root), inference_threads=threads), store)
    msg = ProductMessage.model_validate(payload)
    parts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="earthsig-replay-") as tmp:
        start = time.perf_counter()
        stitched = Path(tmp) / "stitched.tif"
        stitch_segmentation(rt, msg, stitched)
        parts["stitch"] = time.perf_counter() - start
        publish_product(rt, msg, stitched, parallel=True, timings=parts)
    return {k: round(v, 2) for k, v in parts.items()}


def replay_publish(keep: Path, source: Path) -> dict[str, Any]:
    """Publish the product committed in source again into keep/replay-store (see the doc)."""
    from earthsignature.functions.messages import ProductMessage
    from earthsignature.functions.publish import publish_product
    from earthsignature.memory import bound_gdal_cache
    from earthsignature.runtime import Runtime
    from earthsignature.settings import load_settings
    from earthsignature.storage import LocalStore

    bound_gdal_cache()  # as a worker does; its publish children inherit it
    items = sorted((source / "catalog").glob("**/*.json"))
    if not items:
        raise SystemExit(f"no committed product under {source}/catalog")
    item = json.loads(items[0].read_text())
    keys = {name: asset["earthsig:key"] for name, asset in item["assets"].items()}
    props = item["properties"]
    target = keep / "replay-store"
    shutil.rmtree(target, ignore_errors=True)
    store = LocalStore(target)
    rt = Runtime(load_settings(store=str(target)), store)
    msg = ProductMessage(
        product_id=item["id"],
        date=props["datetime"][:10],
        tile=props["s2:mgrs_tile"],
        model=props["earthsig:model"],
        version=props["earthsig:version"],
        run="replay",
        cloud_mask=keys["cloud_mask"],
        created=props["created"],
    )
    store.put_file(keys["cloud_mask"], source / keys["cloud_mask"])  # the record needs it
    parts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="earthsig-replay-", dir=keep) as tmp:
        segmentation = _plain_copy(source / keys["segmentation"], Path(tmp) / "segmentation.tif")
        confidence = None
        if "confidence" in keys:
            confidence = _plain_copy(source / keys["confidence"], Path(tmp) / "confidence.tif")
        load_before = os.getloadavg()
        start = time.perf_counter()
        with PeakSampler() as sampler:
            publish_product(
                rt, msg, segmentation, parallel=True, timings=parts, confidence=confidence
            )
        wall = time.perf_counter() - start
    outputs = {
        name: (target / key).stat().st_size for name, key in keys.items() if (target / key).exists()
    }
    result = {
        "product": msg.product_id,
        "model": msg.model,
        "publish_wall_s": round(wall, 2),
        "parts_s": {k: round(v, 2) for k, v in parts.items()},
        "peak_rss_mib": {
            f"{sampler.names.get(pid, '?')} {pid}": round(mib, 1)
            for pid, mib in sorted(sampler.peaks.items(), key=lambda kv: -kv[1])
        },
        "this_process_peak_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "output_bytes": outputs,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
    }
    print("replay", json.dumps(result), flush=True)
    return result


def _plain_copy(cog: Path, dst: Path) -> Path:
    """A tiled GeoTIFF copy of a published COG, as stitch writes it (GDAL refuses to update
    a COG in place, which publish does to label the band)."""
    import rasterio.shutil

    rasterio.shutil.copy(
        cog, dst, driver="GTiff", tiled=True, blockxsize=512, blockysize=512,
        compress="DEFLATE", zlevel=1, predictor=2,
    )  # fmt: skip
    return dst


def run(keep: Path, size: int, workers: int, parts: bool) -> dict[str, Any]:
    from earthsignature.queue.redis_conn import redis_connection
    from earthsignature.queue.run import run_window
    from earthsignature.settings import EUROPE_WKT, load_settings
    from earthsignature.testing.stac_server import StacServer

    item_file, generation = ensure_scene(keep, size)
    item = json.loads(item_file.read_text())
    for asset in item.get("assets", {}).values():  # a scene folder moved since generation
        href = Path(str(asset.get("href", "")))
        if href.is_absolute() and not href.exists():
            asset["href"] = str(item_file.parent / href.name)
    store_root = keep / "store"
    shutil.rmtree(store_root, ignore_errors=True)
    with (
        StacServer([item]) as stac,
        redis_connection(None) as (conn, url),
        PeakSampler() as sampler,
    ):
        settings = load_settings(
            store=str(store_root), stac_api_url=stac.url, aoi_wkt=EUROPE_WKT, redis_url=url
        )
        began = time.time()
        summary = run_window(
            settings, start=DAY, workers=workers, progress=False, log_dir=keep / "logs"
        )
        wall = time.time() - began
        sampler.sample()
        jobs = stage_jobs(conn)
    if not summary.ok or not summary.with_state("committed"):
        raise SystemExit("run did not commit the product:\n" + "\n".join(summary.lines()))
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        by_stage.setdefault(job["stage"], []).append(job)
    stages: dict[str, Any] = {}
    for stage, js in by_stage.items():
        first, last = min(j["start"] for j in js), max(j["end"] for j in js)
        stages[stage] = round(last - first, 2)
        if stage == "infer":
            stages["infer_shards"] = [round(j["end"] - j["start"], 2) for j in js]
    job_rss: dict[str, float] = {}
    for job in jobs:
        seen = [
            rss
            for when, pid, rss in sampler.samples
            if pid == job["pid"] and job["start"] <= when <= job["end"]
        ]
        if seen:
            label = job["stage"] + ("" if job["shard"] is None else f" {job['shard']}")
            job_rss[label] = round(max(seen), 1)
    cloud_start = by_stage["cloud"][0]["start"]
    commit = by_stage["vectorize"][-1]["end"]
    peaks = {
        f"{sampler.names[pid]} {pid}": round(mib, 1)
        for pid, mib in sorted(sampler.peaks.items(), key=lambda kv: -kv[1])
    }
    peaks[f"benchmark {os.getpid()} (incl. generation)"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    result: dict[str, Any] = {
        "size_px": size,
        "workers": workers,
        "generation_s (not counted)": None if generation is None else round(generation, 1),
        "stage_s": stages,
        "cloud_to_commit_s": round(commit - cloud_start, 2),
        "run_wall_s (worker start, discover, fetch included)": round(wall, 2),
        "peak_rss_mib": peaks,
        "sampled_rss_of_worker_during_job_mib": job_rss,
        "jobs_per_worker": {
            str(pid): [j["stage"] for j in jobs if j["pid"] == pid]
            for pid in sorted({j["pid"] for j in jobs})
        },
        "load_avg": os.getloadavg(),
    }
    print("run", json.dumps(result), flush=True)
    if parts:
        from earthsignature.storage.errors import ObjectNotFound

        vectorize = by_stage["vectorize"][-1]["payload"]
        key = "vectorize_parts_s (replayed in-process)"
        try:
            result[key] = replay_vectorize(store_root, vectorize, settings.inference_threads)
        except ObjectNotFound as exc:  # the commit deletes work/ (predictions) since issue 19
            result[key] = f"not replayed: {exc}"
            print("replay", json.dumps({key: result[key]}), flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "earthsig-ft")
    parser.add_argument("--size", type=int, default=10980, help="10 m pixels per side")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-parts", action="store_true", help="skip the vectorize replay")
    parser.add_argument(
        "--replay-publish",
        type=Path,
        metavar="STORE",
        help="run no pipeline: publish the product committed in STORE again, timed",
    )
    args = parser.parse_args(argv)
    args.keep.mkdir(parents=True, exist_ok=True)
    if args.replay_publish is not None:
        replay_publish(args.keep.resolve(), args.replay_publish.resolve())
        return
    result = run(args.keep.resolve(), args.size, args.workers, not args.no_parts)
    print("all", json.dumps(result))


if __name__ == "__main__":
    main()
