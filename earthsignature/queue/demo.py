"""The offline demo: generated scenes, their STAC items, the whole pipeline on this machine.

Generates a few synthetic Sentinel-2 L2A products (known CORINE truth) for one day, points
discover at their STAC item files (a ``file://`` item source, no STAC API), and runs that day
end to end with the embedded defaults (embedded Redis, a local store, spawned workers, the
onnxruntime runner).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from earthsignature.queue.run import RunSummary, run_window
from earthsignature.settings import EUROPE_WKT, Settings, load_settings

#: Tiles of the demo scenes (France, Germany, Italy): inside the default European AOI.
DEMO_TILES = ("31TCJ", "32ULU", "32TQQ", "31UDQ", "33TUG", "30TYN")
DEMO_DATE = dt.date(2024, 6, 1)


@dataclass(frozen=True)
class DemoResult:
    summary: RunSummary
    store: Path
    scenes: Path
    settings: Settings


def generate_scenes(directory: Path, count: int, size: int, day: dt.date) -> list[Path]:
    """``count`` generated products of ``day``; returns their STAC item files."""
    from earthsignature.generator import generate_product

    items = []
    for index in range(count):
        product = generate_product(
            directory,
            size=size,
            seed=index,
            date=day.isoformat(),
            tile=DEMO_TILES[index % len(DEMO_TILES)],
            cloud_fraction=(0.05, 0.15, 0.3)[index % 3],
        )
        items.append(product.item)
    return items


def run_demo(
    out: Path,
    *,
    products: int = 3,
    size: int = 1098,
    workers: int = 2,
    progress: bool = True,
    day: dt.date = DEMO_DATE,
) -> DemoResult:
    """Generate and process the demo scenes; outputs go to ``out/store``."""
    out = Path(out).resolve()
    scenes, store = out / "scenes", out / "store"
    generate_scenes(scenes, products, size, day)
    settings = load_settings(
        store=str(store), stac_api_url=scenes.as_uri(), aoi_wkt=EUROPE_WKT, redis_url=None
    )
    summary = run_window(
        settings, start=day, workers=workers, progress=progress, log_dir=out / "logs"
    )
    return DemoResult(summary, store, scenes, settings)
