"""A small committed catalog, the viewer serving it on loopback, and headless Chromium.

Two dates over the same place, each a map of four quadrants whose codes are known, so a
screenshot pixel's colour says which class was drawn; and their rolling 12-month composites.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from earthsignature.composites import stage
from earthsignature.grpc_api import ingest
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, catalog
from earthsignature.testing.rasters import geotiff_bytes
from earthsignature.viewer import ViewerServer

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
MODEL, VERSION = "clc-viewer", 1
CRS = "EPSG:32631"
SIZE = 200  # px of 10 m
ORIGIN = (500_000.0, 4_900_000.0)
TRANSFORM = Affine(10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1])
#: date -> quadrant codes (top-left, top-right, bottom-left, bottom-right)
DATES = {
    dt.date(2024, 5, 1): (311, 211, 111, 512),
    dt.date(2024, 9, 1): (112, 231, 311, 512),
}
#: The rolling 12 months holding both dates, by the composite rules
#: (earthsignature/composites/rules.py): the second date's confidence is under 50 % on the
#: left half (see confidence_map), so only the first date counts there; on the right, arable
#: once and grass once is arable.
COMPOSITE = ("R12-2024-09", (311, 211, 111, 512))


def quadrants(codes: tuple[int, int, int, int]) -> np.ndarray:
    half = SIZE // 2
    out = np.zeros((SIZE, SIZE), dtype=np.uint16)
    out[:half, :half], out[:half, half:], out[half:, :half], out[half:, half:] = codes
    return out


def _tiff(array: np.ndarray, **extra: object) -> bytes:
    return geotiff_bytes(array, TRANSFORM, CRS, **extra)


def confidence_map() -> np.ndarray:
    """Confidence rising from 0 % (left) to 99 % (right), no data (255) in the top 10 rows."""
    cols = np.arange(SIZE) * 100 // SIZE
    out = np.repeat(cols[None, :], SIZE, axis=0).astype(np.uint8)
    out[:10] = 255
    return out


def add_confidence(store: LocalStore, day: dt.date) -> None:
    """What the infer stage writes when the model gives confidences: a uint8 COG under
    ``confidence/`` and a ``confidence`` asset in the product's record (a relative href)."""
    pid = f"S2G_31TEJ_{day:%Y%m%d}_0_L2A"
    key = f"confidence/model={MODEL}/version={VERSION}/date={day.isoformat()}/{pid}.tif"
    store.put_bytes(key, _tiff(confidence_map(), nodata=255))
    record = f"catalog/model={MODEL}/version={VERSION}/date={day.isoformat()}/{pid}.json"
    item = json.loads(store.get_bytes(record))
    item["assets"]["confidence"] = {
        "href": f"../../../../{key}",
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"],
        "title": "Per-pixel confidence, percent (255 = no data)",
    }
    store.put_bytes(record, json.dumps(item).encode())


@dataclass(frozen=True)
class Viewer:
    url: str
    store: LocalStore


@pytest.fixture(scope="session")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    root = tmp_path_factory.mktemp("viewer")
    store = LocalStore(root / "store")
    settings = Settings(
        store=str(root / "store"), model_name=MODEL, model_version=VERSION, min_mapping_unit_m2=0.0
    )
    rt = Runtime(settings=settings, store=store)
    for day, codes in DATES.items():
        cloud = np.zeros((SIZE, SIZE), dtype=np.uint8)
        cloud[:20, :20] = 1
        ingest.ingest(
            rt,
            ingest.Upload(
                product_id=f"S2G_31TEJ_{day:%Y%m%d}_0_L2A",
                acquired=dt.datetime.combine(day, dt.time(10, 30), tzinfo=dt.UTC),
                model=MODEL,
                version=VERSION,
                tile="31TEJ",
                segmentation=_tiff(quadrants(codes), nodata=0),
                cloud_mask=_tiff(cloud),
            ),
        )
    add_confidence(store, max(DATES))
    for entry in catalog.iter_entries(store, MODEL, VERSION):  # rolling composites get tiles
        stage.update_composites(rt, entry)
    server = ViewerServer(settings, store)
    url = server.start()
    try:
        yield Viewer(url, store)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium through chromedriver (Debian packages), WebGL by SwiftShader."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs Debian's chromium and chromium-driver (/usr/bin/chromium, chromedriver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="earthsig-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        "--window-size=1100,800",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
