"""A strip polygonized in pyogrio's GDAL, and the numpy pixel-corner densification."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from rasterio.features import shapes
from shapely.geometry import shape

from earthsignature.functions.strip_polygonize import pixel_corners, polygonize_strip
from tests.publish.conftest import random_codes, speckle_codes


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
    geoms, codes = polygonize_strip(strip, row0=300)
    ours = {
        (int(c), shapely.to_wkb(shapely.normalize(g))) for g, c in zip(geoms, codes, strict=True)
    }
    assert len(ours) == len(geoms)
    assert ours == _rasterio_polygons(strip, 300)
    assert shapely.area(geoms).sum() == strip.size  # an exact coverage of the strip


def test_empty_strip_has_no_polygon() -> None:
    geoms, codes = polygonize_strip(np.zeros((0, 5), dtype=np.uint16), row0=0)
    assert len(geoms) == len(codes) == 0


def test_pixel_corners_puts_a_vertex_at_every_pixel_corner() -> None:
    ring = shapely.Polygon(
        [(0, 0), (5, 0), (5, 3), (0, 3)], holes=[[(1, 1), (1, 2), (3, 2), (3, 1)]]
    )
    l_shape = shapely.Polygon([(10, 0), (12, 0), (12, 1), (11, 1), (11, 4), (10, 4)])
    geoms = np.array([ring, l_shape], dtype=object)
    dense = pixel_corners(geoms)
    assert shapely.equals(dense, geoms).all()
    for geom in dense:
        for r in [geom.exterior, *geom.interiors]:
            xy = np.asarray(r.coords)
            assert (xy == np.rint(xy)).all()
            steps = np.abs(np.diff(xy, axis=0)).sum(axis=1)
            assert (steps == 1).all()  # unit steps: one vertex per pixel corner, no repeat
    # perimeter in pixels, plus the closing vertex of each ring
    assert shapely.get_num_coordinates(dense).tolist() == [16 + 1 + 6 + 1, 12 + 1]


def test_pixel_corners_of_polygonized_regions_match_between_neighbours() -> None:
    geoms, _ = polygonize_strip(random_codes(1)[:50], row0=0)
    dense = pixel_corners(geoms)
    # an exact coverage vertex for vertex: the union of all edges has each inner edge twice
    assert shapely.equals(dense, geoms).all()
    assert shapely.coverage_is_valid(dense)
