"""``min_confidence``: pixels the model was less sure of are left out of class areas and change,
counted apart; the CLI takes ``--min-confidence``; a model without confidence is a clear error."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner

from earthsignature import stats
from earthsignature.cli import cli
from earthsignature.functions.cog import to_cog
from earthsignature.functions.errors import BadInput
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.publish import publish_product
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, layout
from earthsignature.testing.products import product_ref
from tests.stats.conftest import DAY1, DAY2, URBAN, Scene

MODEL, VERSION = "clc-conf-stats", 1
PX_M2 = 100.0
THRESHOLD = 60


def write(path: Path, data: np.ndarray, scene: Scene, nodata: int | None) -> Path:
    profile = {
        "driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
        "dtype": data.dtype.name, "crs": scene.crs, "transform": scene.transform,
        "nodata": nodata, "tiled": True, "blockxsize": 64, "blockysize": 64,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def commit(
    rt: Runtime, folder: Path, scene: Scene, day: dt.date, maps: tuple[np.ndarray, ...], conf: bool
) -> None:
    """Publish one product on date ``day``: (codes, cloud, confidence) on the scene's grid."""
    codes, cloud, confidence = maps
    pid = f"S2G_31TCJ_{day:%Y%m%d}_0_L2A"
    folder.mkdir(parents=True, exist_ok=True)
    mask_key = layout.mask_key(day, "31TCJ", pid)
    to_cog(write(folder / "cloud-raw.tif", cloud, scene, None), folder / "cloud.tif", nbits=1)
    rt.store.put_file(mask_key, folder / "cloud.tif")
    msg = ProductMessage(
        product_id=pid, date=day.isoformat(), tile="31TCJ", model=MODEL, version=VERSION,
        run="r1", item=product_ref(pid, f"{day.isoformat()}T10:30:00Z", "31TCJ"),
        cloud_mask=mask_key, created="2026-01-01T00:00:00Z",
    )  # fmt: skip
    seg = write(folder / "seg.tif", codes, scene, 0)
    conf_path = write(folder / "conf.tif", confidence, scene, 255) if conf else None
    publish_product(rt, msg, seg, confidence=conf_path)


@pytest.fixture(scope="module")
def confident(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two dates of the stats scene (no shift) committed with confidence maps."""
    root = tmp_path_factory.mktemp("conf-stats")
    rng = np.random.default_rng(3)
    conf1 = rng.integers(0, 101, size=scene.truth1.shape).astype(np.uint8)
    conf2 = rng.integers(0, 101, size=scene.truth1.shape).astype(np.uint8)
    codes2 = scene.truth1.copy()
    codes2[100:150, 50:120] = URBAN
    cloud2 = np.zeros_like(scene.cloud1)
    cloud2[150:180, 150:180] = 1
    store = LocalStore(root / "store")
    settings = Settings(store=str(root / "store"), model_name=MODEL, model_version=VERSION)
    rt = Runtime(settings=settings, store=store)
    commit(rt, root / "1", scene, DAY1, (scene.truth1, scene.cloud1, conf1), True)
    commit(rt, root / "2", scene, DAY2, (codes2, cloud2, conf2), True)
    return {"store": store, "conf1": conf1, "conf2": conf2, "codes2": codes2, "cloud2": cloud2}


def test_area_by_date_leaves_out_low_confidence(scene: Scene, whole_area, confident) -> None:  # type: ignore[no-untyped-def]
    (day1,) = stats.area_by_date(
        confident["store"], whole_area, DAY1, DAY1, model=MODEL, version=VERSION,
        min_confidence=THRESHOLD, window_px=70,
    )  # fmt: skip
    codes, cloud, conf = scene.truth1, scene.cloud1, confident["conf1"]
    clear = (codes > 0) & (cloud == 0)
    sure = clear & (conf >= THRESHOLD)
    values, counts = np.unique(codes[sure], return_counts=True)
    assert day1.class_areas == {int(v): n * PX_M2 for v, n in zip(values, counts, strict=True)}
    assert day1.low_confidence_m2 == np.count_nonzero(clear & ~sure) * PX_M2
    assert day1.cloud_m2 == np.count_nonzero((codes > 0) & (cloud == 1)) * PX_M2
    (unfiltered,) = stats.area_by_date(
        confident["store"], whole_area, DAY1, DAY1, model=MODEL, version=VERSION
    )
    assert unfiltered.low_confidence_m2 == 0.0
    total = sum(unfiltered.class_areas.values())
    assert total == sum(day1.class_areas.values()) + day1.low_confidence_m2


def test_change_leaves_out_low_confidence_on_either_date(
    scene: Scene, whole_area, confident
) -> None:  # type: ignore[no-untyped-def]
    result = stats.change(
        confident["store"], whole_area, DAY1, DAY2, model=MODEL, version=VERSION,
        min_confidence=THRESHOLD,
    )  # fmt: skip
    a, b = scene.truth1, confident["codes2"]
    both = (a > 0) & (b > 0) & (scene.cloud1 == 0) & (confident["cloud2"] == 0)
    sure = both & (confident["conf1"] >= THRESHOLD) & (confident["conf2"] >= THRESHOLD)
    pairs = a[sure].astype(np.uint32) << 16 | b[sure].astype(np.uint32)
    values, counts = np.unique(pairs, return_counts=True)
    expected = {
        (int(v) >> 16, int(v) & 0xFFFF): n * PX_M2 for v, n in zip(values, counts, strict=True)
    }
    assert result.transitions == expected
    assert result.low_confidence_m2 == np.count_nonzero(both & ~sure) * PX_M2


def test_a_model_without_confidence_is_a_clear_error(scene: Scene, whole_area) -> None:  # type: ignore[no-untyped-def]
    from tests.stats.conftest import MODEL as PLAIN_MODEL
    from tests.stats.conftest import VERSION as PLAIN_VERSION

    with pytest.raises(BadInput, match="needs confidence maps"):
        stats.area_by_date(
            scene.store, whole_area, DAY1, DAY1, model=PLAIN_MODEL, version=PLAIN_VERSION,
            min_confidence=50,
        )  # fmt: skip
    with pytest.raises(BadInput, match="percentage"):
        stats.area_by_date(
            scene.store, whole_area, DAY1, DAY1, model=PLAIN_MODEL, version=PLAIN_VERSION,
            min_confidence=101,
        )  # fmt: skip


def test_cli_min_confidence(scene: Scene, whole_area: shapely.Geometry, confident) -> None:  # type: ignore[no-untyped-def]
    env = {"EARTHSIG_STORE": str(confident["store"].root)}
    args = ["stats", "--wkt", whole_area.wkt, "--model", MODEL, "--version", str(VERSION)]
    args += ["--from", DAY1.isoformat(), "--to", DAY1.isoformat()]
    result = CliRunner().invoke(cli, [*args, "--min-confidence", str(THRESHOLD), "--json"], env=env)
    assert result.exit_code == 0, result.output
    (day,) = json.loads(result.output)["dates"]
    clear = (scene.truth1 > 0) & (scene.cloud1 == 0)
    low = np.count_nonzero(clear & (confident["conf1"] < THRESHOLD)) * PX_M2
    assert day["low_confidence_m2"] == low
    table = CliRunner().invoke(cli, [*args, "--min-confidence", str(THRESHOLD)], env=env)
    assert table.exit_code == 0 and f"below {THRESHOLD} % confidence" in table.output
    bad = CliRunner().invoke(cli, [*args, "--min-confidence", "150"], env=env)
    assert bad.exit_code == 2 and "150" in bad.output and "Traceback" not in bad.output


def test_cli_min_confidence_without_confidence_maps(scene: Scene, whole_area) -> None:  # type: ignore[no-untyped-def]
    from tests.stats.conftest import MODEL as PLAIN_MODEL

    env = {"EARTHSIG_STORE": str(scene.store.root), "EARTHSIG_MODEL_NAME": PLAIN_MODEL}
    args = ["stats", "--wkt", whole_area.wkt, "--from", DAY1.isoformat(), "--to", DAY1.isoformat()]
    result = CliRunner().invoke(cli, [*args, "--min-confidence", "50"], env=env)
    assert result.exit_code != 0
    assert "needs confidence maps" in result.output and "Traceback" not in result.output
