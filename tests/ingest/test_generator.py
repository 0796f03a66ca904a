"""The scene generator: structure like a real product, truth as claimed, clouds as asked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from earthsignature import corine
from earthsignature.cli import cli
from earthsignature.generator import GeneratedProduct, generate_product, landcover, spectra
from earthsignature.generator.mgrs import KNOWN_ORIGINS, is_close_origin, square_south_west
from earthsignature.storage import layout

REAL = "s2/S2A_29RKH_20200219_L2A"
REFLECTANCE_BANDS = [b.id for b in spectra.BANDS]


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> GeneratedProduct:
    return generate_product(
        tmp_path_factory.mktemp("gen"), size=600, seed=3, tile="29RKH", cloud_fraction=0.15
    )


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_product_identity(product: GeneratedProduct) -> None:
    assert product.product_id == "S2G_29RKH_20240601_0_L2A"
    assert layout.product_id(product.product_id) == product.product_id
    assert product.directory.is_dir() and product.item.is_file()
    assert sorted(product.bands) == sorted([*REFLECTANCE_BANDS, "SCL"])
    leftovers = [p for p in product.directory.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_band_structure_matches_real_product(product: GeneratedProduct, shared_data: Path) -> None:
    """Same band files, same resolution ratios, same dtypes, same grid corner as 29RKH."""
    real = shared_data / REAL
    with rasterio.open(real / "B02.tif") as ref10, rasterio.open(product.bands["B02"]) as gen10:
        real_base, gen_base = ref10.res[0], gen10.res[0]
        assert gen_base == 10.0
        assert (gen10.transform.c, gen10.transform.f) == (ref10.transform.c, ref10.transform.f)
        assert gen10.crs == ref10.crs
        gen_width = gen10.width
    for band in [*REFLECTANCE_BANDS, "SCL"]:
        with rasterio.open(real / f"{band}.tif") as ref, rasterio.open(product.bands[band]) as gen:
            ratio = ref.res[0] / real_base
            assert gen.res == (gen_base * ratio, gen_base * ratio), band
            assert gen.width * ratio == gen_width and gen.height * ratio == gen_width, band
            assert gen.dtypes == ref.dtypes and gen.nodata == ref.nodata == 0, band
            assert (
                gen.bounds
                == pytest.approx(
                    (
                        ref.bounds.left,
                        ref.bounds.top - gen_width * 10,
                        ref.bounds.left + gen_width * 10,
                        ref.bounds.top,
                    )
                )
                or gen.bounds[0] == ref.bounds.left
            ), band


def test_stac_item_points_at_the_files(product: GeneratedProduct, shared_data: Path) -> None:
    item = json.loads(product.item.read_text())
    real = json.loads((shared_data / REAL / "S2A_29RKH_20200219_0_L2A.json").read_text())
    keys = {b.asset_key for b in spectra.BANDS} | {"scl"}
    assert keys <= set(real["assets"]) and keys == set(item["assets"])
    for band in spectra.BANDS:
        asset = item["assets"][band.asset_key]
        assert Path(asset["href"]) == product.bands[band.id]
        assert asset["raster:bands"][0]["offset"] == pytest.approx(-0.1)
        with rasterio.open(asset["href"]) as ds:
            assert list(ds.transform)[:6] == asset["proj:transform"]
            assert [ds.height, ds.width] == asset["proj:shape"]
    assert item["properties"]["s2:processing_baseline"] == "05.10"
    assert item["properties"]["earthsearch:boa_offset_applied"] is True


def test_truth_codes_are_corine_classes(product: GeneratedProduct) -> None:
    truth = read(product.truth)
    assert truth.shape == (600, 600)
    codes = set(np.unique(truth).tolist())
    assert codes <= set(spectra.CLASSES) and all(corine.is_code(c) for c in codes)
    assert len(codes) >= 8, "a 6 km scene shows most classes"


def test_scl_agrees_with_truth_outside_clouds(product: GeneratedProduct) -> None:
    truth, scl = read(product.truth), read(product.bands["SCL"])
    index = np.searchsorted(
        spectra.CLASS_CODES, truth[1::2, 1::2], sorter=np.argsort(spectra.CLASS_CODES)
    )
    expected = spectra.CLASS_SCL[np.argsort(spectra.CLASS_CODES)[index]]
    clear = ~np.isin(scl, (3, 8, 9))
    assert clear.mean() > 0.7
    np.testing.assert_array_equal(scl[clear], expected[clear])


@pytest.mark.parametrize(
    ("code", "band", "low", "high"),
    [
        (512, "B08", 0.0, 0.05),  # water is dark in the NIR
        (211, "B08", 0.3, 0.55),  # crops are bright in the NIR
        (311, "B04", 0.0, 0.06),  # forest absorbs red
        (335, "B03", 0.6, 1.0),  # snow is bright in the visible
        (335, "B11", 0.0, 0.15),  # and dark in the SWIR
        (331, "B11", 0.3, 0.55),  # sand is bright in the SWIR
    ],
)
def test_reflectance_is_plausible_per_class(
    product: GeneratedProduct, code: int, band: str, low: float, high: float
) -> None:
    """Clear pixels of each class have that class's spectrum (DN x 1e-4 - 0.1)."""
    truth = read(product.truth)
    step = next(b.resolution for b in spectra.BANDS if b.id == band) // 10
    reflectance = read(product.bands[band]) * 1e-4 - 0.1
    clear20 = ~np.isin(read(product.bands["SCL"]), (3, 8, 9))
    clear = np.repeat(np.repeat(clear20, 2, 0), 2, 1)
    pixels = ((truth == code) & clear)[step // 2 :: step, step // 2 :: step]
    values = reflectance[pixels]
    assert values.size > 50
    assert low <= float(np.median(values)) <= high


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.4, 1.0])
def test_cloud_fraction_is_what_was_asked(tmp_path: Path, fraction: float) -> None:
    p = generate_product(tmp_path, size=300, seed=5, cloud_fraction=fraction)
    scl = read(p.bands["SCL"])
    measured = float(np.isin(scl, (3, 8, 9)).mean())
    assert measured == pytest.approx(fraction, abs=0.05)
    item = json.loads(p.item.read_text())
    assert item["properties"]["eo:cloud_cover"] == pytest.approx(100 * measured)
    if fraction > 0:
        b02 = read(p.bands["B02"]) * 1e-4 - 0.1
        cloud10 = np.repeat(np.repeat(np.isin(scl, (8, 9)), 2, 0), 2, 1)
        assert np.median(b02[cloud10]) > 0.3, "clouds are bright"


def test_pattern_is_a_function_of_coordinates() -> None:
    """Any window computes the same values as the whole: the basis of streaming."""
    x = np.arange(0, 400, dtype=np.float32)[None, :] + 0.5
    y = np.arange(1700, 2100, dtype=np.float32)[:, None] + 0.5
    whole = landcover.land_cover(x, y, seed=9)
    part = landcover.land_cover(x[:, 150:], y[230:], seed=9)
    np.testing.assert_array_equal(whole.class_index[230:, 150:], part.class_index)
    np.testing.assert_array_equal(whole.brightness[230:, 150:], part.brightness)
    threshold = landcover.cloud_threshold(10980, 9, 0.3)
    c_whole = landcover.clouds(x, y, 9, threshold)
    c_part = landcover.clouds(x[:, 150:], y[230:], 9, threshold)
    np.testing.assert_array_equal(c_whole.opacity[230:, 150:], c_part.opacity)


def test_windows_join_without_seams(tmp_path: Path) -> None:
    """A product spanning several 768 px windows equals the pattern computed in one piece."""
    p = generate_product(tmp_path, size=1542, seed=4, cloud_fraction=0.0)
    truth = read(p.truth)[1500:1542, 1500:1542]
    coords = np.arange(1500, 1542, dtype=np.float32) + 0.5
    cover = landcover.land_cover(coords[None, :], coords[:, None], seed=4)
    np.testing.assert_array_equal(truth, spectra.CLASS_CODES[cover.class_index])


def test_same_seed_same_product_other_seed_other(tmp_path: Path) -> None:
    a = read(generate_product(tmp_path / "a", size=120, seed=1).bands["B04"])
    b = read(generate_product(tmp_path / "b", size=120, seed=1).bands["B04"])
    c = read(generate_product(tmp_path / "c", size=120, seed=2).bands["B04"])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(("baseline", "offset_dn"), [("05.10", 1000), ("02.14", 0)])
def test_dn_follow_processing_baseline(tmp_path: Path, baseline: str, offset_dn: int) -> None:
    p = generate_product(
        tmp_path, size=120, seed=1, cloud_fraction=0.0, processing_baseline=baseline
    )
    truth, b04 = read(p.truth), read(p.bands["B04"])
    crops = b04[truth == 211]  # red reflectance 0.06 x patch brightness 0.85..1.15
    assert crops.size > 100
    assert float(np.median(crops)) == pytest.approx(offset_dn + 600, abs=100)


@pytest.mark.parametrize("tile", sorted(KNOWN_ORIGINS))
def test_tile_origin_formula_agrees_with_real_tiles(tile: str) -> None:
    easting, northing = square_south_west(tile)
    assert is_close_origin((easting, northing + 100_000), KNOWN_ORIGINS[tile], tolerance=40)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 100},
        {"size": 0},
        {"size": 10986},
        {"cloud_fraction": 1.5},
        {"date": "2024-13-01"},
        {"tile": "99XXX"},
        {"processing_baseline": "5"},
    ],
)
def test_bad_parameters_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate_product(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_cli_generate(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            str(tmp_path),
            "--size",
            "60",
            "--tile",
            "32TQM",
            "--seed",
            "2",
            "--date",
            "2023-07-01",
            "--cloud-fraction",
            "0.2",
        ],
    )
    assert result.exit_code == 0, result.output
    folder = Path(result.output.strip())
    assert folder == tmp_path / "S2G_32TQM_20230701_0_L2A"
    with rasterio.open(folder / "B02.tif") as ds:
        assert ds.crs.to_epsg() == 32632 and ds.shape == (60, 60)
    bad = CliRunner().invoke(cli, ["generate", str(tmp_path), "--size", "61"])
    assert bad.exit_code != 0 and "multiple of 6" in bad.output
