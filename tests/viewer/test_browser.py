"""The viewer in real headless Chromium: polygons in CLC colours, date switch, clouds, stats."""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pyproj import Transformer

from earthsignature import corine
from tests.viewer.conftest import COMPOSITE, CRS, DATES, ORIGIN, SIZE, Viewer

FIRST, SECOND = sorted(DATES)
TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
#: quadrant index -> (col, row) of a point well inside it, in raster pixels
QUADRANT_PX = {0: (50, 60), 1: (150, 60), 2: (50, 150), 3: (150, 150)}


def lonlat(col: float, row: float) -> tuple[float, float]:
    return TO_LONLAT.transform(ORIGIN[0] + 10 * col, ORIGIN[1] - 10 * row)


def wait(driver: Any, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    logs = driver.execute_script("return window.esState")
    raise AssertionError(f"timed out waiting; page state {logs}")


def idle(driver: Any) -> None:
    wait(driver, lambda: driver.execute_script("return !!(window.esState && window.esState.idle)"))


def screen_point(driver: Any, col: float, row: float) -> tuple[int, int]:
    """Page pixel of a raster pixel, through the map's own projection."""
    lon, lat = lonlat(col, row)
    x, y = driver.execute_script(
        "const p = window.esMap.project(arguments[0]);"
        "const r = window.esMap.getCanvas().getBoundingClientRect();"
        "return [r.left + p.x, r.top + p.y];",
        [lon, lat],
    )
    return round(x), round(y)


def pixel(driver: Any, col: float, row: float) -> np.ndarray:
    from PIL import Image

    x, y = screen_point(driver, col, row)
    shot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
    return shot[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)


def assert_colour(actual: np.ndarray, rgb: tuple[int, int, int], tolerance: float = 8) -> None:
    assert np.abs(actual - np.array(rgb)).max() <= tolerance, (actual, rgb)


@pytest.fixture(scope="module")
def page(browser: Any, viewer: Viewer) -> Any:
    browser.get(viewer.url)
    idle(browser)
    return browser


def select_date(driver: Any, date: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "date")).select_by_value(date)
    wait(driver, lambda: driver.execute_script("return window.esState.date") == date)
    idle(driver)


def test_page_loads_with_controls_and_legend(page: Any) -> None:
    assert page.title == "EarthSignature viewer"
    dates = [o.get_attribute("value") for o in page.find_elements("css selector", "#date option")]
    assert dates == [d.isoformat() for d in sorted(DATES)]
    models = [o.text for o in page.find_elements("css selector", "#model option")]
    assert models == ["clc-viewer v1"]
    present = page.find_elements("css selector", "#legend li.present")
    assert sorted(li.text.split()[0] for li in present) == sorted(
        str(c) for c in set(DATES[SECOND])
    )


@pytest.mark.parametrize("date", [SECOND, FIRST])
def test_polygons_drawn_in_clc_colours_for_the_chosen_date(page: Any, date: Any) -> None:
    select_date(page, date.isoformat())
    for quadrant, (col, row) in QUADRANT_PX.items():
        code = DATES[date][quadrant]
        assert_colour(pixel(page, col, row), corine.clc_class(code).rgb)


def test_changing_the_date_changes_what_is_drawn(page: Any) -> None:
    select_date(page, FIRST.isoformat())
    before = pixel(page, *QUADRANT_PX[0])
    select_date(page, SECOND.isoformat())
    after = pixel(page, *QUADRANT_PX[0])
    assert_colour(before, corine.clc_class(DATES[FIRST][0]).rgb)
    assert_colour(after, corine.clc_class(DATES[SECOND][0]).rgb)
    # the quadrant that did not change keeps its colour
    assert_colour(pixel(page, *QUADRANT_PX[3]), corine.clc_class(512).rgb)


def test_cloud_toggle_overlays_the_cloud_mask(page: Any) -> None:
    select_date(page, SECOND.isoformat())
    clear = pixel(page, 10, 10)
    page.find_element("id", "clouds").click()
    wait(page, lambda: page.execute_script("return !!window.esMap.getLayer('cloud-0')"))
    idle(page)
    cloudy, outside = pixel(page, 10, 10), pixel(page, *QUADRANT_PX[0])
    page.find_element("id", "clouds").click()
    idle(page)
    assert_colour(clear, corine.clc_class(DATES[SECOND][0]).rgb)
    assert cloudy.min() > clear.min() + 40  # white over the class colour
    assert_colour(outside, corine.clc_class(DATES[SECOND][0]).rgb)


def test_click_shows_polygon_attributes(page: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    select_date(page, SECOND.isoformat())
    canvas = page.find_element("css selector", "#map canvas")
    x, y = screen_point(page, *QUADRANT_PX[1])
    rect = canvas.rect
    ActionChains(page).move_to_element_with_offset(
        canvas, x - rect["x"] - rect["width"] / 2, y - rect["y"] - rect["height"] / 2
    ).click().perform()
    wait(page, lambda: "code" in page.find_element("id", "info").text)
    rows = dict(
        r.text.split(" ", 1)
        for r in page.find_elements("css selector", "#info tr")
        if " " in r.text
    )
    assert rows["code"] == str(DATES[SECOND][1])
    assert rows["date"] == SECOND.isoformat()
    assert rows["model"] == "clc-viewer"
    assert rows["label"] == corine.clc_class(DATES[SECOND][1]).label
    assert rows["product_id"].startswith("S2G_31TEJ_20240901")


def test_typed_area_shows_statistics_chart(page: Any) -> None:
    select_date(page, SECOND.isoformat())
    ring = [lonlat(c, r) for c, r in ((0, 0), (SIZE, 0), (SIZE, SIZE), (0, SIZE), (0, 0))]
    wkt = "POLYGON ((" + ", ".join(f"{x:.6f} {y:.6f}" for x, y in ring) + "))"
    box = page.find_element("id", "wkt")
    box.clear()
    box.send_keys(wkt)
    page.find_element("id", "compute").click()
    wait(page, lambda: len(page.find_elements("css selector", "#chart svg rect")) > 0)
    rows = page.find_elements("css selector", "#chart svg")
    assert len(rows) == 1
    fills = {
        r.get_attribute("data-code"): r.get_attribute("fill")
        for r in page.find_elements("css selector", "#chart svg rect")
    }
    expected = {str(c) for codes in DATES.values() for c in codes} | {"cloud"}
    assert set(fills) == expected
    assert all(fills[str(c)] == corine.clc_class(c).hex for codes in DATES.values() for c in codes)
    stats = page.execute_script("return window.esState.stats")
    assert [d["date"] for d in stats["dates"]] == [d.isoformat() for d in sorted(DATES)]
    assert "Changed" in page.find_element("css selector", "#chart p.change").text


def test_drawn_rectangle_shows_statistics_of_that_area(page: Any) -> None:
    """Drag a rectangle over the top-left quadrant only: the chart holds its classes alone."""
    from selenium.webdriver.common.action_chains import ActionChains

    select_date(page, SECOND.isoformat())
    page.execute_script("window.esState.stats = null")
    canvas = page.find_element("css selector", "#map canvas")
    rect = canvas.rect
    (x0, y0), (x1, y1) = screen_point(page, 30, 30), screen_point(page, 80, 80)
    page.find_element("id", "draw").click()
    ActionChains(page).move_to_element_with_offset(
        canvas, x0 - rect["x"] - rect["width"] / 2, y0 - rect["y"] - rect["height"] / 2
    ).click_and_hold().move_by_offset((x1 - x0) // 2, (y1 - y0) // 2).move_by_offset(
        x1 - x0 - (x1 - x0) // 2, y1 - y0 - (y1 - y0) // 2
    ).release().perform()
    wait(page, lambda: bool(page.execute_script("return window.esState.stats")))
    stats = page.execute_script("return window.esState.stats")
    assert page.find_element("id", "wkt").get_attribute("value").startswith("POLYGON ((")
    for day in stats["dates"]:
        (only,) = day["classes"]
        assert only["code"] == DATES[dt.date.fromisoformat(day["date"])][0]
        assert only["area_m2"] == pytest.approx(50 * 50 * 100, rel=0.1)


def test_opens_fitted_to_the_products_with_footprints_scale_and_basemap(
    browser: Any, viewer: Viewer
) -> None:
    browser.get(viewer.url)
    idle(browser)
    west, south = lonlat(0, SIZE)
    east, north = lonlat(SIZE, 0)
    bounds = browser.execute_script("return window.esMap.getBounds().toArray()")
    (w, s), (e, n) = bounds
    assert w <= west and s <= south and e >= east and n >= north  # every product in view
    # and fitted: the 2 km product spans a good part of the map, not a 10-pixel speck
    x0, _ = screen_point(browser, 0, 0)
    x1, _ = screen_point(browser, SIZE, 0)
    width = browser.execute_script("return window.esMap.getCanvas().clientWidth")
    assert (x1 - x0) > width / 3
    layers = browser.execute_script("return window.esMap.getStyle().layers.map(l => l.id)")
    assert {"land", "coast", "borders", "footprint-line", "footprint-marker"} <= set(layers)
    assert layers.index("land") < layers.index("fill-0") < layers.index("footprint-line")
    assert "edge-0" in layers  # polygon edges keep pale classes readable
    scale = browser.find_element("css selector", ".maplibregl-ctrl-scale").text
    assert scale.endswith(("m", "km"))


def test_confidence_toggle_enabled_only_where_a_map_exists(page: Any) -> None:
    select_date(page, FIRST.isoformat())
    assert not page.find_element("id", "confidence").is_enabled()
    select_date(page, SECOND.isoformat())
    box = page.find_element("id", "confidence")
    assert box.is_enabled()
    box.click()
    wait(page, lambda: page.execute_script("return !!window.esMap.getLayer('conf-0')"))
    idle(page)
    dark, light = pixel(page, 5, SIZE // 2), pixel(page, SIZE - 5, SIZE // 2)
    box.click()
    idle(page)
    assert dark.max() < 60 and light.min() > 190  # black 0 %, white 100 %
    assert np.ptp(dark) < 12 and np.ptp(light) < 12  # grey, not class colours


def test_chart_labels_fit_and_areas_read_in_hectares(page: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    select_date(page, SECOND.isoformat())
    ring = [lonlat(c, r) for c, r in ((0, 0), (SIZE, 0), (SIZE, SIZE), (0, SIZE), (0, 0))]
    box = page.find_element("id", "wkt")
    box.clear()
    box.send_keys("POLYGON ((" + ", ".join(f"{x:.6f} {y:.6f}" for x, y in ring) + "))")
    page.find_element("id", "compute").click()
    wait(page, lambda: len(page.find_elements("css selector", "#chart svg text.total")) > 0)
    overflow = page.execute_script(
        "const svg = document.querySelector('#chart svg');"
        "const w = svg.getBoundingClientRect().right;"
        "return [...svg.querySelectorAll('text')].map(t => t.getBoundingClientRect().right - w);"
    )
    assert max(overflow) <= 0, overflow
    canvas = page.find_element("css selector", "#map canvas")
    x, y = screen_point(page, *QUADRANT_PX[3])
    rect = canvas.rect
    ActionChains(page).move_to_element_with_offset(
        canvas, x - rect["x"] - rect["width"] / 2, y - rect["y"] - rect["height"] / 2
    ).click().perform()
    wait(page, lambda: "code" in page.find_element("id", "info").text)
    rows = dict(
        r.text.split(" ", 1)
        for r in page.find_elements("css selector", "#info tr")
        if " " in r.text
    )
    assert "area_m2" not in rows
    assert rows["area"].endswith(" ha")


def test_view_switches_between_per_date_maps_and_composites(page: Any) -> None:
    from selenium.webdriver.support.ui import Select

    period, codes = COMPOSITE
    select_date(page, SECOND.isoformat())
    view = Select(page.find_element("id", "view"))
    view.select_by_value("composites")
    wait(page, lambda: page.execute_script("return window.esState.date") == period)
    idle(page)
    periods = [o.get_attribute("value") for o in page.find_elements("css selector", "#date option")]
    assert periods == ["R12-2024-05", period]
    assert page.find_element("id", "date-label").text == "Period"
    for quadrant, (col, row) in QUADRANT_PX.items():
        assert_colour(pixel(page, col, row), corine.clc_class(codes[quadrant]).rgb)
    view.select_by_value("dates")
    wait(page, lambda: page.execute_script("return window.esState.date") == SECOND.isoformat())
    idle(page)
    assert_colour(pixel(page, *QUADRANT_PX[0]), corine.clc_class(DATES[SECOND][0]).rgb)
