"""Class areas and change from the committed maps match the truth they were made from."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from earthsignature import stats
from earthsignature.functions.errors import BadInput
from tests.stats.conftest import (
    DAY1,
    DAY2,
    MODEL,
    PX_M2,
    SHIFT_PX,
    SIZE,
    URBAN,
    VERSION,
    Scene,
    expected_areas,
)


@pytest.mark.parametrize("window_px", [1024, 50])
def test_whole_scene_areas_equal_truth(scene: Scene, whole_area, window_px: int) -> None:
    (day1, day2) = stats.area_by_date(
        scene.store, whole_area, DAY1, DAY2, model=MODEL, version=VERSION, window_px=window_px
    )
    areas1, cloud1 = expected_areas(scene.truth1, scene.cloud1)
    assert (day1.date, day1.class_areas, day1.cloud_m2) == (DAY1, areas1, cloud1)
    assert cloud1 == 40 * 40 * PX_M2  # the cloud block is counted apart, not as a class
    # date 2 covers the whole area on its own (shifted) grid: compare totals per class
    assert day2.class_areas[URBAN] >= (50 * 70 - 30 * 30) * PX_M2
    assert day2.cloud_m2 == 30 * 30 * PX_M2
    assert sum(day2.class_areas.values()) + day2.cloud_m2 == (SIZE - SHIFT_PX) ** 2 * PX_M2


@pytest.mark.parametrize("corner", [(20, 30, 90, 140), (60, 10, 191, 100)])
def test_sub_area_within_one_pixel_ring(scene: Scene, corner: tuple[int, int, int, int]) -> None:
    """A UTM box given in lon/lat: off by at most the boundary ring of pixels per class."""
    r0, c0, r1, c1 = corner
    minx, maxy = scene.transform * (c0, r0)
    maxx, miny = scene.transform * (c1, r1)
    aoi = scene.lonlat(shapely.box(minx, miny, maxx, maxy))
    (day1,) = stats.area_by_date(scene.store, aoi, DAY1, DAY1, model=MODEL, version=VERSION)
    areas, cloud = expected_areas(scene.truth1[r0:r1, c0:c1], scene.cloud1[r0:r1, c0:c1])
    tolerance = 2 * ((r1 - r0) + (c1 - c0)) * PX_M2  # the pixels on the area's edge
    assert set(day1.class_areas) <= set(areas) | {int(c) for c in np.unique(scene.truth1)}
    for code, area in areas.items():
        assert abs(day1.class_areas.get(code, 0.0) - area) <= tolerance, code
    assert abs(day1.cloud_m2 - cloud) <= tolerance
    total = sum(day1.class_areas.values()) + day1.cloud_m2
    assert abs(total - (r1 - r0) * (c1 - c0) * PX_M2) <= tolerance


def test_products_of_one_date_add_up(scene: Scene) -> None:
    """An area over both tiles of date 1 sums them; the other tile alone is its own truth."""
    minx, maxy = scene.transform * (0, 0)
    maxx, miny = scene.other_transform * (SIZE, SIZE)
    aoi = scene.lonlat(shapely.box(minx - 100, miny - 100, maxx + 100, maxy + 100))
    (day1,) = stats.area_by_date(scene.store, aoi, DAY1, DAY1, model=MODEL, version=VERSION)
    first, cloud = expected_areas(scene.truth1, scene.cloud1)
    other, _ = expected_areas(scene.other_truth, np.zeros_like(scene.cloud1))
    both = {c: first.get(c, 0.0) + other.get(c, 0.0) for c in first.keys() | other.keys()}
    assert day1.class_areas == both
    assert day1.cloud_m2 == cloud
    assert len(day1.product_ids) == 2


def test_change_matches_generated_change(scene: Scene, whole_area) -> None:
    result = stats.change(scene.store, whole_area, DAY1, DAY2, model=MODEL, version=VERSION)
    a, b = scene.truth1, scene.truth2
    both = (a > 0) & (b > 0)
    cloudy = (scene.cloud1 == 1) | (scene.cloud2 == 1)
    keep = both & ~cloudy
    pairs, counts = np.unique(np.stack([a[keep], b[keep]]), axis=1, return_counts=True)
    expected = {
        (int(f), int(t)): float(n) * PX_M2 for (f, t), n in zip(pairs.T, counts, strict=True)
    }
    assert result.transitions == expected
    assert result.cloud_m2 == float(np.count_nonzero(both & cloudy)) * PX_M2
    # every change is into urban, inside the block that was changed
    changed = {k: v for k, v in result.transitions.items() if k[0] != k[1]}
    assert changed and all(t == URBAN for _, t in changed)
    assert result.changed_m2 == sum(changed.values())


def test_no_products_in_range_gives_nothing(scene: Scene, whole_area) -> None:
    import datetime as dt

    assert (
        stats.area_by_date(
            scene.store,
            whole_area,
            dt.date(2020, 1, 1),
            dt.date(2020, 12, 31),
            model=MODEL,
            version=VERSION,
        )
        == []
    )
    assert (
        stats.change(
            scene.store, whole_area, DAY1, dt.date(2020, 1, 1), model=MODEL, version=VERSION
        ).transitions
        == {}
    )


@pytest.mark.parametrize(
    ("wkt", "match"),
    [
        ("POLYGON ((0 0, 1 0", "not valid WKT"),
        ("POINT (1 2)", "Polygon"),
        ("POLYGON EMPTY", "Polygon"),
        ("POLYGON ((500000 4900000, 500100 4900000, 500100 4900100, 500000 4900000))", "degrees"),
    ],
)
def test_bad_area_is_bad_input(wkt: str, match: str) -> None:
    with pytest.raises(BadInput, match=match):
        stats.parse_aoi(wkt)


def test_reads_from_s3_by_range_requests(scene: Scene, s3_store, whole_area) -> None:
    """The same committed product on the S3 server (GDAL /vsis3/) gives the same areas."""
    from earthsignature.grpc_api import ingest
    from earthsignature.runtime import Runtime
    from tests.stats.conftest import upload

    rt = Runtime(settings=scene.settings, store=s3_store)
    ingest.ingest(
        rt,
        upload(
            "S2G_31TCJ_20240601_0_L2A",
            DAY1,
            "31TCJ",
            scene.truth1,
            scene.cloud1,
            scene.transform,
            scene.crs,
        ),
    )
    (day1,) = stats.area_by_date(s3_store, whole_area, DAY1, DAY2, model=MODEL, version=VERSION)
    areas, cloud = expected_areas(scene.truth1, scene.cloud1)
    assert (day1.class_areas, day1.cloud_m2) == (areas, cloud)


def test_area_under_cloud_only_has_no_class(scene: Scene) -> None:
    minx, maxy = scene.transform * (5, 5)
    maxx, miny = scene.transform * (35, 35)
    aoi = scene.lonlat(shapely.box(minx, miny, maxx, maxy))
    (day1,) = stats.area_by_date(scene.store, aoi, DAY1, DAY1, model=MODEL, version=VERSION)
    assert day1.class_areas == {}
    assert day1.cloud_m2 == pytest.approx(30 * 30 * PX_M2, rel=0.05)
