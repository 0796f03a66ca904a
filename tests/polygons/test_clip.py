"""Clipping polygons to a query area: GEOS's rectangle cut for boxes answers as the overlay."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box

from earthsignature.polygons.table import clip, intersect, rectangle


@pytest.mark.parametrize(
    ("aoi", "expected"),
    [
        (box(3.0, 44.9, 3.1, 45.0), (3.0, 44.9, 3.1, 45.0)),
        # a box drawn with extra vertices along its sides, clockwise: still that box
        (Polygon([(0, 0), (0, 1), (0, 2), (2, 2), (2, 0), (1, 0)]), (0.0, 0.0, 2.0, 2.0)),
        (shapely.affinity.rotate(box(0, 0, 1, 1), 10), None),
        (Polygon([(0, 0), (1, 0), (0, 1)]), None),
        (box(0, 0, 4, 4).difference(box(1, 1, 2, 2)), None),  # a hole
        (shapely.MultiPolygon([box(0, 0, 1, 1), box(2, 0, 3, 1)]), None),
    ],
)
def test_rectangle_recognises_axis_aligned_boxes_only(aoi, expected) -> None:  # type: ignore[no-untyped-def]
    assert rectangle(aoi) == expected


def _polygons(rng: np.random.Generator, count: int, snap: bool) -> np.ndarray:
    """Star-shaped (concave) polygons around the unit square, some with holes."""
    found = []
    for _ in range(count):
        n = int(rng.integers(4, 25))
        angle, radius = np.sort(rng.uniform(0, 2 * np.pi, n)), rng.uniform(0.1, 0.6, n)
        centre = rng.uniform(-0.2, 1.2, 2)
        ring = np.column_stack([np.cos(angle), np.sin(angle)]) * radius[:, None] + centre
        if snap:  # vertices on the grid the rectangle's sides lie on
            ring = np.round(ring * 8) / 8
        polygon = shapely.make_valid(Polygon(ring))
        if rng.uniform() < 0.3:
            polygon = polygon.difference(shapely.Point(centre).buffer(0.05))
        if polygon.geom_type in ("Polygon", "MultiPolygon") and not polygon.is_empty:
            found.append(polygon)
    return np.array(found, dtype=object)


@pytest.mark.parametrize("snap", [False, True])
def test_rectangle_cut_answers_as_the_overlay(snap: bool) -> None:
    rng = np.random.default_rng(7)
    area = box(0.0, 0.25, 1.0, 0.875)
    for _ in range(20):
        polygons = _polygons(rng, 100, snap)
        fast = intersect(polygons, area, rectangle(area))
        overlay = shapely.intersection(polygons, area)
        wrong = shapely.area(shapely.symmetric_difference(fast, overlay))
        assert (wrong <= 1e-12).all()
        assert shapely.is_valid(fast).all()


def test_a_vertex_on_the_rectangle_side_gets_the_right_side() -> None:
    """GEOS's rectangle cut answers this one with the triangle above the V (GEOS 3.14), the
    overlay with the two below it: such a polygon is left to the overlay."""
    v_shape = Polygon([(10, 0), (10, 60), (50, 20), (90, 60), (90, 0)])
    area = box(30, 20, 70, 40)
    [cut] = intersect(np.array([v_shape], dtype=object), area, rectangle(area))
    assert shapely.equals(cut, shapely.intersection(v_shape, area))
    assert cut.geom_type == "MultiPolygon" and cut.area == pytest.approx(400.0)


def test_clip_keeps_inside_polygons_and_cuts_the_others_for_a_box() -> None:
    squares = np.array([box(x, 0, x + 0.9, 0.9) for x in range(5)], dtype=object)
    area = box(0.5, -1.0, 3.2, 2.0)
    clipped, rows = clip(squares, area)
    assert rows.tolist() == [0, 1, 2, 3]
    assert clipped[1] is squares[1] and clipped[2] is squares[2]  # inside: untouched
    assert shapely.area(clipped).tolist() == pytest.approx([0.36, 0.81, 0.81, 0.18])
