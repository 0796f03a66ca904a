"""Strip-wise vectorization: seams merged, sieving, areas, against whole-raster references."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import shapes

from earthsignature.functions.polygons import (
    PolygonBatch,
    _unions_at_row,
    iter_polygon_batches,
    mmu_pixels,
    strip_bounds,
)
from earthsignature.functions.strip_polygonize import coverage_vertices
from tests.publish.conftest import (
    CRS,
    PIXEL_M2,
    TRANSFORM,
    block_codes,
    random_codes,
    sieve_to_mmu,
    speckle_codes,
    write_raster,
)

MMU_PX = 50  # 0.5 ha at 10 m, the default minimum mapping unit


def vectorize(
    path: Path, strip_rows: int, tolerance_px: float = 1.0, workers: int = 1
) -> PolygonBatch:
    with rasterio.open(path) as src:
        batches = list(
            iter_polygon_batches(
                src,
                mmu_px=MMU_PX,
                tolerance_px=tolerance_px,
                strip_rows=strip_rows,
                workers=workers,
            )
        )
    return PolygonBatch(
        geometries=np.concatenate([b.geometries for b in batches]),
        codes=np.concatenate([b.codes for b in batches]),
        areas_m2=np.concatenate([b.areas_m2 for b in batches]),
    )


def whole_raster_components(codes: np.ndarray) -> dict[int, int]:
    """Per class, the number of 4-connected regions after sieving the whole raster at once."""
    sieved = sieve_to_mmu(codes, MMU_PX)
    counts: dict[int, int] = {}
    for _, value in shapes(sieved, connectivity=4):
        if value:
            counts[int(value)] = counts.get(int(value), 0) + 1
    return counts


def utm_areas(batch: PolygonBatch) -> np.ndarray:
    """Areas of the written EPSG:4326 geometries, measured back in the raster's UTM zone."""
    back = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    utm = shapely.transform(
        batch.geometries, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1]))
    )
    return shapely.area(utm)


@pytest.mark.parametrize("strip_rows", [7, 16, 45, 1024])
def test_u_shape_crossing_strip_borders_is_one_polygon(tmp_path: Path, strip_rows: int) -> None:
    """The U's arms are separate in every strip but the last: they must come out as one."""
    out = vectorize(write_raster(tmp_path / "u.tif", block_codes()), strip_rows)
    water = out.geometries[out.codes == 512]
    assert len(water) == 1
    assert shapely.get_num_interior_rings(water[0]) == 0
    assert utm_areas(out)[out.codes == 512][0] == pytest.approx(
        (2 * 8 * 141 + 8 * 42) * 100, rel=0.01
    )


@pytest.mark.parametrize("strip_rows", [7, 16, 45, 1024])
@pytest.mark.parametrize(
    "codes", [block_codes(), random_codes(1), random_codes(2)], ids=["blocks", "random1", "random2"]
)
def test_one_feature_per_connected_region(
    tmp_path: Path, codes: np.ndarray, strip_rows: int
) -> None:
    """Polygons per class equal the whole raster's regions: nothing is cut at a strip border."""
    out = vectorize(write_raster(tmp_path / "c.tif", codes), strip_rows)
    got = {int(c): int((out.codes == c).sum()) for c in np.unique(out.codes)}
    assert got == whole_raster_components(codes)
    assert shapely.is_valid(out.geometries).all()
    # strips simplified apart still fit: no overlaps, no gaps, edges matched
    assert shapely.coverage_is_valid(out.geometries)
    # edges along the cloud are simplified too, which may move a pixel's area across them;
    # a row lost at a seam would be 150 pixels
    assert utm_areas(out).sum() == pytest.approx((codes != 0).sum() * PIXEL_M2, rel=1e-4)


def test_strips_in_threads_give_the_same_polygons(tmp_path: Path) -> None:
    """Strips vectorized in two threads (full tiles) come out as in one."""
    path = write_raster(tmp_path / "c.tif", random_codes(1))
    one = vectorize(path, strip_rows=16)
    two = vectorize(path, strip_rows=16, workers=2)
    np.testing.assert_array_equal(two.codes, one.codes)
    assert shapely.equals_exact(two.geometries, one.geometries, tolerance=0).all()


@pytest.mark.parametrize("strip_rows", [7, 45])
def test_unsimplified_strips_keep_the_valid_area_exactly(tmp_path: Path, strip_rows: int) -> None:
    """Without simplification every valid pixel is in exactly one polygon, whatever the strips.

    The polygons need not be an exact GEOS coverage here (no T-junction vertices, as in
    ``gdal_polygonize``'s output): they overlap nowhere and cover every valid pixel.
    """
    codes = random_codes(2)
    out = vectorize(write_raster(tmp_path / "c.tif", codes), strip_rows, tolerance_px=0)
    assert shapely.is_valid(out.geometries).all()
    union_area = shapely.area(shapely.union_all(out.geometries))
    assert union_area == pytest.approx(shapely.area(out.geometries).sum(), rel=1e-9)
    assert utm_areas(out).sum() == pytest.approx((codes != 0).sum() * PIXEL_M2, rel=1e-9)


@pytest.mark.parametrize("strip_rows", [16, 1024])
def test_no_boundary_between_same_class_polygons(tmp_path: Path, strip_rows: int) -> None:
    """No two polygons of one class share an edge (a polygon cut at a seam would)."""
    codes = random_codes(3)
    out = vectorize(write_raster(tmp_path / "b.tif", codes), strip_rows)
    assert len(out) > 10
    for code in np.unique(out.codes):
        parts = out.geometries[out.codes == code]
        tree = shapely.STRtree(parts)
        left, right = tree.query(parts, predicate="touches")
        for i, j in zip(left, right, strict=True):
            if i < j:
                shared = shapely.intersection(parts[i], parts[j])
                assert shapely.length(shared) == 0, f"class {code} polygons share an edge"


@pytest.mark.parametrize("codes", [block_codes(), random_codes(4)], ids=["blocks", "random"])
def test_class_areas_match_the_raster(tmp_path: Path, codes: np.ndarray) -> None:
    """Per class, polygons' area within 1 % of the (sieved) raster's class area.

    Sieving is meant to move regions below the MMU to a neighbour, so the reference is the
    raster sieved as a whole; coverage simplification then moves a little area across
    shared edges, and the total over all classes is kept exactly.
    """
    out = vectorize(write_raster(tmp_path / "a.tif", codes), strip_rows=16)
    areas = utm_areas(out)
    np.testing.assert_allclose(areas, out.areas_m2, rtol=1e-4)
    sieved = sieve_to_mmu(codes, MMU_PX)
    for code in np.unique(sieved[sieved != 0]):
        raster = float((sieved == code).sum()) * PIXEL_M2
        polygons = float(areas[out.codes == code].sum())
        assert polygons == pytest.approx(raster, rel=0.01), code
    assert areas.sum() == pytest.approx((codes != 0).sum() * PIXEL_M2, rel=1e-4)


def test_sieve_removes_regions_below_the_mmu_only(tmp_path: Path) -> None:
    out = vectorize(write_raster(tmp_path / "s.tif", block_codes()), strip_rows=16)
    assert 111 not in out.codes  # 9 px speck < 50 px
    assert (out.codes == 112).sum() == 1  # 100 px patch kept
    assert 0 not in out.codes


@pytest.mark.parametrize("seed", [5, 6])
def test_speckle_leaves_no_polygon_below_the_mmu(tmp_path: Path, seed: int) -> None:
    """Speckle, where one GDAL sieve pass keeps most small regions, is sieved to the MMU."""
    codes = speckle_codes(seed)
    out = vectorize(write_raster(tmp_path / "n.tif", codes), strip_rows=32)
    assert len(out) > 3
    assert (out.areas_m2 >= MMU_PX * PIXEL_M2 * 0.9).all()  # simplification moves a little
    got = {int(c): int((out.codes == c).sum()) for c in np.unique(out.codes)}
    assert got == whole_raster_components(codes)


@pytest.mark.parametrize(("mmu_m2", "expected"), [(5000.0, 50), (0.0, 1), (150.0, 2), (100.0, 1)])
def test_mmu_pixels(mmu_m2: float, expected: int) -> None:
    assert mmu_pixels(mmu_m2, TRANSFORM) == expected


@pytest.mark.shared_data
def test_real_corine_raster_matches_the_official_polygons(
    shared_data: Path, tmp_path: Path
) -> None:
    """CLC 2018 over Lanjarón (25 m, EPSG:3042): per class, our polygons are within 1 % of the
    raster and within 3 % of the official CLC polygons it was rasterized from (the raster
    itself differs from them by up to 2.5 %)."""
    with rasterio.open(shared_data / "corine" / "clc.tif") as src:
        codes = src.read(1).astype(np.uint16)
        profile = {**src.profile, "dtype": "uint16", "nodata": 0, "compress": "deflate"}
    path = tmp_path / "clc16.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(codes, 1)
    with rasterio.open(path) as src:
        batches = list(iter_polygon_batches(src, mmu_px=8, tolerance_px=0.4, strip_rows=64))
    out_codes = np.concatenate([b.codes for b in batches])
    out_geoms = np.concatenate([b.geometries for b in batches])
    assert shapely.coverage_is_valid(out_geoms)
    areas = np.concatenate([b.areas_m2 for b in batches])
    meta, _fids, wkb, fields = pyogrio.raw.read(shared_data / "corine" / "clc.gpkg", layer="clc")
    official = shapely.area(shapely.from_wkb(wkb))  # EPSG:25830, metres
    official_codes = fields[list(meta["fields"]).index("CODE_18")].astype(int)
    pixel_m2 = abs(src.transform.a * src.transform.e)
    for code in np.unique(codes):
        raster = float((codes == code).sum()) * pixel_m2
        assert areas[out_codes == code].sum() == pytest.approx(raster, rel=0.01), code
        reference = official[official_codes == code].sum()
        assert areas[out_codes == code].sum() == pytest.approx(reference, rel=0.03), code


def test_union_at_a_border_keeps_every_hole() -> None:
    """Holes away from the border are set aside during the union and come back unchanged;
    a hole the border cuts is closed by the union itself."""
    holes = [shapely.box(2, 2, 4, 4), shapely.box(6, 8, 8, 12), shapely.box(2, 15, 4, 17)]
    whole = shapely.Polygon(
        shapely.box(0, 0, 10, 20).exterior, [h.exterior.coords[::-1] for h in holes]
    )
    pieces = shapely.intersection(whole, [shapely.box(0, 0, 10, 10), shapely.box(0, 10, 10, 20)])
    pieces = coverage_vertices(pieces, dense_rows=[10], junctions=False)
    (union,) = _unions_at_row([pieces], 10)
    assert isinstance(union, shapely.Polygon) and union.is_valid
    assert len(union.interiors) == 3
    assert union.equals(whole)
    assert union.equals(shapely.coverage_union_all(pieces))


@pytest.mark.parametrize(("height", "strip_rows"), [(10980, 1024), (200, 7), (2048, 1024), (5, 2)])
def test_strips_cover_every_row_in_an_even_count(height: int, strip_rows: int) -> None:
    bounds = strip_bounds(height, strip_rows)
    assert bounds[0][0] == 0 and bounds[-1][1] == height
    assert all(end == nxt for (_, end), (nxt, _) in itertools.pairwise(bounds))
    sizes = [end - first for first, end in bounds]
    assert max(sizes) <= strip_rows and max(sizes) - min(sizes) <= 1
    assert len(bounds) % 2 == 0


def test_a_raster_within_one_strip_is_one_strip() -> None:
    assert strip_bounds(200, 1024) == [(0, 200)]
    assert strip_bounds(0, 1024) == []
