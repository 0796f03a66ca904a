"""A strip polygonized in pyogrio's GDAL, and the vertices that make it an exact coverage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from rasterio.features import shapes
from shapely.geometry import shape

from earthsignature.functions.polygons import sieve_thresholds
from earthsignature.functions.strip_polygonize import coverage_vertices, polygonize_strip
from tests.conftest import ROOT
from tests.publish.conftest import random_codes, sieve_to_mmu, speckle_codes


def _rasterio_polygons(strip: np.ndarray, row0: int) -> set[tuple[int, bytes]]:
    """(code, normalized WKB) of every region, as rasterio's shapes finds them."""
    found = set()
    for geojson, value in shapes(strip, connectivity=4):
        geom = shapely.affinity.translate(shape(geojson), 0, row0)
        found.add((int(value), shapely.to_wkb(shapely.normalize(geom))))
    return found


@pytest.mark.parametrize("make", [random_codes, speckle_codes])
def test_strip_polygons_equal_rasterio_shapes(make) -> None:
    strip = make(0)[:64]  # a strip of the map, zeros (a cloud) included
    geoms, codes = polygonize_strip(strip, top=300)
    ours = {
        (int(c), shapely.to_wkb(shapely.normalize(g))) for g, c in zip(geoms, codes, strict=True)
    }
    assert len(ours) == len(geoms)
    assert ours == _rasterio_polygons(strip, 300)
    assert shapely.area(geoms).sum() == strip.size  # an exact coverage of the strip


@pytest.mark.parametrize("top", [0, 40])
def test_sieved_rows_equal_rasterio_sieve_then_shapes(top: int) -> None:
    """Sieve passes over the whole block, then only the asked rows polygonized: as rasterio's
    sieve (in memory, another GDAL) then shapes of those rows. From the raster's first row
    too, where GDAL would otherwise lose the rows' offset."""
    block = speckle_codes(0)[:80]
    sizes = [3, 12, 50]
    geoms, codes = polygonize_strip(block, top=top, rows=(top + 20, top + 60), sieve_sizes=sizes)
    ours = {
        (int(c), shapely.to_wkb(shapely.normalize(g))) for g, c in zip(geoms, codes, strict=True)
    }
    sieved = sieve_to_mmu(block, 50)
    assert sieve_thresholds(50) == sizes
    assert ours == _rasterio_polygons(np.ascontiguousarray(sieved[20:60]), top + 20)
    assert (sieved != block).any()  # the sieve had work to do


def test_polygonizes_from_a_directory_it_cannot_write(tmp_path: Path) -> None:
    """GDAL's polygonize step writes a temporary GeoPackage, by default in the current
    directory; a worker started in a read-only or removed one must still polygonize."""
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (
        "import os, numpy as np\n"
        "from earthsignature.functions.strip_polygonize import polygonize_strip\n"
        f"os.chdir({str(gone)!r}); os.rmdir({str(gone)!r})\n"
        "block = np.arange(1, 61, dtype=np.uint16).reshape(6, 10) % 3 + 1\n"
        "geoms, codes = polygonize_strip(block, 0, rows=(1, 5), sieve_sizes=[3])\n"
        "print(len(geoms), sorted(set(codes.tolist())))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CPL_TMPDIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    count, _codes = done.stdout.split(" ", 1)
    assert int(count) > 0


def test_rows_outside_the_block_are_refused() -> None:
    with pytest.raises(ValueError, match="not within the block"):
        polygonize_strip(np.zeros((10, 5), dtype=np.uint16), top=100, rows=(95, 105))


def test_empty_strip_has_no_polygon() -> None:
    geoms, codes = polygonize_strip(np.zeros((0, 5), dtype=np.uint16), top=0)
    assert len(geoms) == len(codes) == 0


def _vertices(geom: shapely.Polygon) -> set[tuple[float, float]]:
    return {xy for ring in [geom.exterior, *geom.interiors] for xy in ring.coords}


def test_coverage_vertices_fills_t_junctions_and_dense_rows() -> None:
    # a long top polygon over two bottom ones meeting at x=4: the top lacks (4, 2)
    top = shapely.Polygon([(0, 0), (10, 0), (10, 2), (0, 2)])
    left = shapely.Polygon([(0, 2), (4, 2), (4, 5), (0, 5)])
    right = shapely.Polygon([(4, 2), (10, 2), (10, 5), (4, 5)])
    geoms = np.array([top, left, right], dtype=object)
    assert not shapely.coverage_is_valid(geoms)  # GEOS needs the junction on both sides
    fixed = coverage_vertices(geoms)
    assert shapely.equals(fixed, geoms).all()
    assert shapely.coverage_is_valid(fixed)
    assert (4, 2) in _vertices(fixed[0])
    assert shapely.get_num_coordinates(fixed).tolist() == [6, 5, 5]  # nothing else added
    # a border row gets every pixel corner, on every polygon along it, nowhere else
    dense = coverage_vertices(geoms, dense_rows=[5])
    assert shapely.equals(dense, geoms).all()
    assert {(x, 5) for x in range(0, 5)} <= _vertices(dense[1])
    assert {(x, 5) for x in range(4, 11)} <= _vertices(dense[2])
    # the junction, then the row's inner corners (3 on the left, 5 on the right), no more
    assert shapely.get_num_coordinates(dense).tolist() == [6, 5 + 3, 5 + 5]


@pytest.mark.parametrize("make", [random_codes, speckle_codes])
def test_coverage_vertices_make_polygonized_regions_an_exact_coverage(make) -> None:
    geoms, _ = polygonize_strip(make(1)[:50], top=0)
    fixed = coverage_vertices(geoms, dense_rows=[50])
    assert shapely.equals(fixed, geoms).all()
    assert shapely.coverage_is_valid(fixed)
    # only vertices that lie on the other polygons' corners or on the border row are added
    corners = {xy for g in geoms for xy in _vertices(g)}
    added = {xy for g in fixed for xy in _vertices(g)} - corners
    assert all(y == 50 for _, y in added)
    simplified = shapely.coverage_simplify(fixed, 1.0, simplify_boundary=False)
    assert shapely.coverage_is_valid(simplified)
    assert shapely.area(simplified).sum() == pytest.approx(shapely.area(geoms).sum())
