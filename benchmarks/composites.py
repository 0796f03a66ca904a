"""Composites: agreement with a known land-use truth, the cost a commit adds, storage.

    python -m benchmarks composites [--size 10980] [--dates 6] [--vectors none|rolling|all]
        [--mmu 5000]
    python -m benchmarks composites --store DIR --model M [--version 1] [--job stage|rebuild]

Truth: the generator's land-cover map (``generator.landcover``) on a size x size grid. Each
date distorts it as single Sentinel-2 dates do (arable fields bare outside the growing
season, forest hazed into grass on one date, snow over the northern fifth in winter, a
tenth of pixels misread, a cloud block per date that the mask hides), and is committed as a
product (segmentation and cloud mask COGs and a catalog record, no publish). Every date is
then folded into its month and season composites and re-summed into its rolling 12 months,
as the composite stage does, with vectors (polygons and PMTiles) for no period, the rolling
periods only (the stage's default) or all. Prints per-date and composite agreement with the
truth (pixels with data), the seconds (wall and CPU) each commit adds (and wall seconds per
period kind), peak RSS and the stored bytes per tile-period.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from earthsignature.composites import stage
from earthsignature.composites.periods import periods_of
from earthsignature.functions.cog import to_cog
from earthsignature.generator.landcover import land_cover
from earthsignature.generator.spectra import CLASSES
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, catalog, layout

TILE, CRS = "31TCJ", "EPSG:32631"
MODEL = "bench-composite"
WINDOW = 1024
MONTHS = (1, 3, 5, 6, 8, 10, 11, 12)


def truth_window(transform: Affine, window: Window) -> np.ndarray:
    cols = np.arange(window.col_off, window.col_off + window.width, dtype=np.float32)[None, :]
    rows = np.arange(window.row_off, window.row_off + window.height, dtype=np.float32)[:, None]
    cover = land_cover(cols, rows, seed=11)
    return np.asarray(CLASSES, dtype=np.uint16)[cover.class_index]


def date_view(truth: np.ndarray, day: dt.date, i: int, row0: int, size: int, rng) -> np.ndarray:  # type: ignore[no-untyped-def]
    labels = truth.copy()
    if day.month in (11, 12, 1, 2, 3):
        labels[np.isin(truth, (211, 212, 213))] = 333
    if i == 2:
        labels[np.isin(truth, (311, 312, 313))] = 231
    if day.month in (12, 1, 2):
        north = np.arange(row0, row0 + truth.shape[0]) < size // 5
        labels[north, :] = 335
    noise = rng.random(truth.shape) < 0.1
    labels[noise] = rng.choice(np.array([112, 231, 324], dtype=np.uint16), int(noise.sum()))
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="measure on this store's products instead")
    parser.add_argument("--model", default="dynamicworld-clc", help="with --store")
    parser.add_argument("--version", type=int, default=1, help="with --store")
    parser.add_argument(
        "--job",
        choices=("stage", "rebuild", "window"),
        default="stage",
        help="with --store (window: CPU seconds of each fold step on one 1024² window)",
    )
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--dates", type=int, default=6)
    parser.add_argument(
        "--vectors",
        choices=("none", "rolling", "all"),
        default="rolling",
        help="periods that get polygons and PMTiles (default: as the stage, rolling only)",
    )
    parser.add_argument(
        "--mmu", type=float, default=0.0, help="min_mapping_unit_m2 of the polygons (m²)"
    )
    args = parser.parse_args()
    if args.store is not None and args.job == "window":
        print(json.dumps(one_window(args.store, args.model, args.version)))
        return
    if args.store is not None:
        print(json.dumps(on_store(args.store, args.model, args.version, args.job)))
        return
    size, n = args.size, args.dates
    days = [dt.date(2024, MONTHS[i % len(MONTHS)], 5 + i // len(MONTHS)) for i in range(n)]
    transform = Affine(10, 0, 300000, 0, -10, 4800000)
    windows = [
        Window(c, r, min(WINDOW, size - c), min(WINDOW, size - r))
        for r in range(0, size, WINDOW)
        for c in range(0, size, WINDOW)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-composites-") as tmp:
        root = Path(tmp)
        store = LocalStore(root / "store")
        rt = Runtime(Settings(store=str(root / "store"), min_mapping_unit_m2=args.mmu), store)
        profile = {"driver": "GTiff", "width": size, "height": size, "crs": CRS}
        profile |= {"transform": transform, "tiled": True, "compress": "DEFLATE", "count": 1}
        agree = np.zeros(n, dtype=np.int64)
        valid = 0
        entries = []
        for i, day in enumerate(days):
            pid = f"S2G_{TILE}_{day:%Y%m%d}_0_L2A"
            seg, mask = root / "seg.tif", root / "mask.tif"
            rng = np.random.default_rng(i)
            codes: set[int] = set()
            with (
                rasterio.open(seg, "w", dtype="uint16", nodata=0, **profile) as s,
                rasterio.open(mask, "w", dtype="uint8", **profile) as m,
            ):
                for w in windows:
                    truth = truth_window(transform, w)
                    labels = date_view(truth, day, i, int(w.row_off), size, rng)
                    cloud = np.zeros(truth.shape, dtype=np.uint8)
                    r0 = (i * size // n) - int(w.row_off)
                    cloud[max(0, r0) : max(0, r0 + size // 8), :] = 1
                    s.write(labels, 1, window=w)
                    m.write(cloud, 1, window=w)
                    codes |= {int(c) for c in np.unique(labels)}
                    agree[i] += int(np.sum((labels == truth) & (cloud == 0)))
                    if i == 0:
                        valid += truth.size
            keys = {
                "segmentation": layout.segmentation_key(MODEL, 1, day, pid),
                "cloud_mask": layout.mask_key(day, TILE, pid),
            }
            for name, path in (("segmentation", seg), ("cloud_mask", mask)):
                cog = root / f"{name}.cog.tif"
                to_cog(path, cog, nbits=1 if name == "cloud_mask" else None)
                store.put_file(keys[name], cog)
            item = {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": pid,
                "geometry": {"type": "Point", "coordinates": [1.0, 43.0]},
                "bbox": [1.0, 43.0, 1.0, 43.0],
                "properties": {
                    "datetime": f"{day}T10:30:00Z",
                    catalog.PROP_MODEL: MODEL,
                    catalog.PROP_VERSION: 1,
                    catalog.PROP_TILE: TILE,
                    catalog.PROP_CATEGORIES: sorted(codes),
                },
                "assets": {k: {"href": v, catalog.ASSET_KEY: v} for k, v in keys.items()},
                "links": [],
            }
            entries.append(catalog.commit(store, item))
        costs, cpu = [], []
        by_kind: dict[str, list[float]] = {"month": [], "season": [], "rolling": []}
        vectors = {"none": False, "rolling": None, "all": True}[args.vectors]
        for entry in entries:
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            for report in stage.update_composites(rt, entry, vectors=vectors):
                by_kind[_kind(report.period)].append(round(report.seconds, 1))
            costs.append(time.perf_counter() - start)
            cpu.append(_cpu_seconds() - cpu_start)
        last = periods_of(days[-1])[2]
        year = layout.composite_prefix(MODEL, 1, last, TILE)
        composite_agree = 0
        with rasterio.open(store.gdal_path(year + "composite.tif")) as ds:
            for w in windows:
                composite_agree += int(np.sum(ds.read(1, window=w) == truth_window(transform, w)))
        sizes: dict[str, int] = {}
        for info in store.list_keys(layout.COMPOSITES + "/"):
            period = info.key.split("period=")[1].split("/")[0]
            sizes[period] = sizes.get(period, 0) + info.size
        month = layout.composite_prefix(MODEL, 1, periods_of(days[-1])[0], TILE)
        state_bytes = sum(i.size for i in store.list_keys(month) if "/state-" in i.key)
    print(
        json.dumps(
            {
                "size_px": size,
                "dates": n,
                "vectors": args.vectors,
                "mmu_m2": args.mmu,
                "single_date_agreement": [round(a / valid, 3) for a in agree],
                f"{last}_composite_agreement": round(composite_agree / valid, 3),
                "seconds_per_commit": [round(c, 1) for c in costs],
                "cpu_seconds_per_commit (with tippecanoe)": [round(c, 1) for c in cpu],
                "seconds_by_period_kind": by_kind,
                "stored_MB_per_tile_period": {k: round(v / 1e6, 2) for k, v in sizes.items()},
                "month_state_MB": round(state_bytes / 1e6, 2),
                "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )


def on_store(root: Path, model: str, version: int, job: str) -> dict[str, object]:
    """The composite job's cost on the committed products of ``root`` (see the module doc)."""
    from benchmarks.full_tile import PeakSampler

    store = LocalStore(root)
    store.delete_prefix(layout.composites_prefix(model, version))
    env = os.environ | {"EARTHSIG_STORE": str(root)}
    if job == "stage":
        code = f"from benchmarks.composites import _stage_job; _stage_job({model!r}, {version})"
        command = [sys.executable, "-c", code]
    else:
        command = ["earthsig", "composites", "rebuild", "--model", model]
        command += ["--version", str(version)]
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with PeakSampler(interval=0.5) as sampler:
        subprocess.run(command, env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sizes: dict[str, dict[str, float]] = {}
    for info in store.list_keys(layout.composites_prefix(model, version)):
        period = info.key.split("period=")[1].split("/")[0]
        name = info.key.rsplit("/", 1)[1]
        sizes.setdefault(period, {})[name] = round(info.size / 1e6, 3)
    return {
        "job": job,
        "wall_s": round(wall, 1),
        "cpu_s (children included)": round(cpu, 1),
        "peak_vmhwm_mib_by_process": {
            f"{sampler.names.get(pid, '?')} {pid}": round(mib, 1)
            for pid, mib in sorted(sampler.peaks.items(), key=lambda kv: -kv[1])
        },
        "stored_MB_per_tile_period": {p: round(sum(v.values()), 1) for p, v in sizes.items()},
        "stored_MB_by_file": sizes,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def one_window(root: Path, model: str, version: int, repeat: int = 5) -> dict[str, object]:
    """CPU seconds (``process_time``, so less sensitive to a shared machine's load) of each
    step of a fold on the middle 1024² window of the store's first product."""
    from earthsignature.composites.fold import profile_of
    from earthsignature.composites.rules import CONFIDENCE_NODATA, add_observations, compose

    store = LocalStore(root)
    entry = next(iter(catalog.iter_entries(store, model, version)))
    codes = sorted(entry.categories)
    out: dict[str, object] = {"classes": len(codes)}

    def cpu(name: str, step: Callable[[], object]) -> object:
        start = time.process_time()
        for _ in range(repeat):
            result = step()
        out[f"{name}_cpu_s"] = round((time.process_time() - start) / repeat, 4)
        return result

    with rasterio.open(store.gdal_path(entry.assets["segmentation"])) as seg:
        w = Window(seg.width // 2, seg.height // 2, WINDOW, WINDOW)
        grid = {"crs": seg.crs.to_string(), "transform": list(seg.transform)[:6]}
        labels = seg.read(1, window=w)
    with rasterio.open(store.gdal_path(entry.assets["cloud_mask"])) as cloud:
        clear = (labels != 0) & (cloud.read(1, window=w) == 0)
    if "confidence" in entry.assets:
        with rasterio.open(store.gdal_path(entry.assets["confidence"])) as conf:
            c = conf.read(1, window=w)
            clear &= (c >= 50) & (c != CONFIDENCE_NODATA)
    out["clear_share"] = round(float(clear.mean()), 3)
    counts = np.zeros((len(codes), WINDOW, WINDOW), dtype=np.uint8)
    cpu("add_observations", lambda: add_observations(counts, codes, labels, clear))
    result = cpu("compose", lambda: compose(counts, codes))
    assert result is not None
    profile = profile_of(grid | {"width": WINDOW, "height": WINDOW})
    with tempfile.TemporaryDirectory() as tmp:

        def write(name: str, data: np.ndarray) -> None:
            with rasterio.open(
                Path(tmp) / name, "w", count=len(data), dtype=data.dtype, **profile
            ) as ds:
                ds.write(data)

        cpu("write_state", lambda: write("state.tif", counts))
        composite = compose(counts, codes)
        rasters = (composite.code, composite.confidence, composite.observations)

        def write_three() -> None:
            for k, data in enumerate(rasters):
                write(f"{k}.tif", data[None])

        cpu("write_three_rasters", write_three)
    return out


def _stage_job(model: str, version: int) -> None:
    """Fold every committed product of the store as the composite stage's job does."""
    from earthsignature.memory import bound_gdal_cache
    from earthsignature.settings import load_settings

    bound_gdal_cache()  # as a worker does
    rt = Runtime.from_settings(load_settings())
    for entry in sorted(catalog.iter_entries(rt.store, model, version), key=lambda e: e.datetime):
        for report in stage.update_composites(rt, entry):
            print(report.period, round(report.seconds, 1), flush=True)


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (tippecanoe): the cost on a
    machine shared with others, where wall time mostly measures the others."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _kind(period: str) -> str:
    return "rolling" if period.startswith("R12-") else "season" if period[5:].isalpha() else "month"


if __name__ == "__main__":
    main()
