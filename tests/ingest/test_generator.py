"""The scene generator: structure like a real product, truth as claimed, clouds as asked."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.enums
from click.testing import CliRunner

from earthsignature import corine
from earthsignature.cli import cli
from earthsignature.generator import (
    GeneratedProduct,
    generate_product,
    landcover,
    library,
    seasons,
    spectra,
)
from earthsignature.mgrs import KNOWN_ORIGINS, is_close_origin, square_south_west
from earthsignature.models import bigearthnet
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
    seasonal = CliRunner().invoke(
        cli, ["generate", str(tmp_path / "s"), "--size", "60", "--seasonal"]
    )
    assert seasonal.exit_code == 0, seasonal.output
    item = json.loads(next(Path(seasonal.output.strip()).glob("*.json")).read_text())
    assert item["properties"]["earthsig:seasonal"] is True


def test_spectral_library_is_real_small_and_credited() -> None:
    lib = library.load()
    record = library.provenance()
    assert "BigEarthNet" in record["credit"] and record["licence"] == "CDLA-Permissive-1.0"
    shipped = Path(library.__file__).with_name(library.LIBRARY_FILE)
    assert shipped.stat().st_size < 2_000_000
    for code in (111, 112, 211, 231, 311, 312, 511, 512):
        k = spectra.CLASSES.index(code)
        assert lib.real[k] and len(lib.spectra[k]) == library.PER_CLASS
        pool = lib.spectra[k]
        assert pool.shape[1] == len(spectra.BANDS) and float(pool.std(axis=0).max()) > 0.005
    ndvi = {c: _ndvi(lib.spectra[spectra.CLASSES.index(c)].mean(axis=0)) for c in (111, 311, 512)}
    assert ndvi[311] > 0.6 and ndvi[111] < 0.4 and ndvi[512] < 0


def test_texture_windows_are_real_mixtures_with_spatial_structure() -> None:
    """Textures keep a real window's pixels: urban fabric 112 is a mix of built-up and green
    pixels, as CORINE's 30-80 % sealed; neighbouring pixels look alike (unlike i.i.d. draws)."""
    lib = library.load()
    side = library.CHIP_PX
    for code in (112, 211, 231, 311, 312, 512):
        chips = lib.chips[spectra.CLASSES.index(code)]
        assert chips is not None and chips.shape[1:] == (side, side, len(spectra.BANDS))
        nir = chips[..., REFLECTANCE_BANDS.index("B08")]
        step = np.abs(np.diff(nir, axis=2)).mean()
        shuffled = np.random.default_rng(0).permutation(nir.ravel()).reshape(nir.shape)
        assert step < 0.8 * np.abs(np.diff(shuffled, axis=2)).mean(), code
    urban = lib.chips[spectra.CLASSES.index(112)]
    assert urban is not None
    red, nir = (
        urban[..., REFLECTANCE_BANDS.index("B04")],
        urban[..., REFLECTANCE_BANDS.index("B08")],
    )
    green = float(((nir - red) / (nir + red) > 0.5).mean())
    assert 0.2 < green < 0.7
    assert lib.chips[spectra.CLASSES.index(111)] is None  # no real window is 80 % sealed


def test_held_out_patches_do_not_feed_the_library() -> None:
    record = library.provenance()
    names = {n for group in record["patches_per_class"].values() for n in group}
    names |= {n.split("@")[0] for g in record["texture_windows"].values() for n in g}
    stub = [bigearthnet.Patch(n, "BigEarthNet v2" if "_T" in n else "BigEarthNet v1",
                              np.zeros(0), frozenset(), False) for n in names]  # fmt: skip
    assert names and not any(library.held_out(p) for p in stub)
    held = bigearthnet.Patch("S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_34_69",
                             "BigEarthNet v2", np.zeros(0), frozenset(), False)  # fmt: skip
    assert library.held_out(held) and held.name not in names


def _ndvi(refl: np.ndarray) -> float:
    red, nir = refl[REFLECTANCE_BANDS.index("B04")], refl[REFLECTANCE_BANDS.index("B08")]
    return float((nir - red) / (nir + red))


def test_spectral_library_rebuilds_from_bigearthnet(tmp_path: Path) -> None:
    try:
        bigearthnet.mock_data()
    except FileNotFoundError:
        pytest.skip("no BigEarthNet samples (EARTHSIG_BIGEARTHNET)")
    out = tmp_path / "library.npz"
    library.build(None, out)
    shipped = library._stored()
    with np.load(out) as rebuilt:
        assert sorted(rebuilt.files) == sorted(shipped)
        record = json.loads(str(rebuilt["provenance"]))
        assert record == library.provenance()  # same source patches per class, same rule
        for name in rebuilt.files:
            if name.startswith("t"):  # texture windows: the same real pixels
                np.testing.assert_array_equal(rebuilt[name], shipped[name])
            if name.startswith("c"):  # sampled spectra (DN): equal up to float rounding
                mean = rebuilt[name].mean(axis=0)
                np.testing.assert_allclose(mean, shipped[name].mean(axis=0), atol=20)


SEASONAL_DATES = ("2024-01-15", "2024-06-22")  # neither hazy (seasons.haze)


@pytest.fixture(scope="module")
def seasonal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GeneratedProduct]:
    root = tmp_path_factory.mktemp("seasonal")
    return {
        day: generate_product(root, size=192, seed=5, date=day, cloud_fraction=0.2, seasonal=True)
        for day in SEASONAL_DATES
    }


def _reflectance(product: GeneratedProduct, band: str, shape: tuple[int, ...]) -> np.ndarray:
    with rasterio.open(product.bands[band]) as ds:
        dn = ds.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
    return dn.astype(np.float32) * 1e-4 - 0.1


def test_seasonal_product_keeps_the_shape_and_one_truth(
    seasonal: dict[str, GeneratedProduct],
) -> None:
    winter, summer = (seasonal[d] for d in SEASONAL_DATES)
    np.testing.assert_array_equal(read(winter.truth), read(summer.truth))
    item = json.loads(summer.item.read_text())
    assert item["properties"]["earthsig:seasonal"] is True
    assert sorted(summer.bands) == sorted([*REFLECTANCE_BANDS, "SCL"])
    for band in [*REFLECTANCE_BANDS, "SCL"]:
        with rasterio.open(summer.bands[band]) as a, rasterio.open(winter.bands[band]) as b:
            assert a.profile == b.profile
    # clouds move from date to date (the simple generator's stay put)
    clouds = [np.isin(read(p.bands["SCL"]), (3, 8, 9)) for p in (winter, summer)]
    assert 0.1 < clouds[0].mean() < 0.35 and 0.1 < clouds[1].mean() < 0.35
    assert (clouds[0] != clouds[1]).mean() > 0.1


def test_seasonal_classes_follow_the_date(seasonal: dict[str, GeneratedProduct]) -> None:
    truth = read(seasonal[SEASONAL_DATES[1]].truth)
    ndvi, scl = {}, {}
    for day, p in seasonal.items():
        red, nir = (_reflectance(p, b, truth.shape) for b in ("B04", "B08"))
        ndvi[day] = (nir - red) / np.maximum(nir + red, 1e-6)
        s = read(p.bands["SCL"])
        scl[day] = np.repeat(np.repeat(s, 2, 0), 2, 1)
    clear = ~np.isin(scl[SEASONAL_DATES[0]], (3, 8, 9, 10)) & ~np.isin(
        scl[SEASONAL_DATES[1]], (3, 8, 9, 10)
    )
    w, s = ndvi[SEASONAL_DATES[0]], ndvi[SEASONAL_DATES[1]]
    for code in (211, 311):  # crops and leaves in summer, bare soil and branches in winter
        where = clear & (truth == code)
        assert where.sum() > 100
        assert float(np.median(s[where])) > float(np.median(w[where])) + 0.3, code
    mountains = clear & np.isin(truth, (332, 333))
    assert mountains.sum() > 100
    assert (scl[SEASONAL_DATES[0]][mountains] == spectra.SCL_SNOW).mean() > 0.9
    assert (scl[SEASONAL_DATES[1]][mountains] == spectra.SCL_SNOW).mean() < 0.05
    fields = clear & (truth == 211)  # SCL says what is seen: green crops, then bare soil
    assert (scl[SEASONAL_DATES[1]][fields] == spectra.SCL_VEGETATION).mean() > 0.8
    assert (scl[SEASONAL_DATES[0]][fields] == spectra.SCL_NOT_VEGETATED).mean() > 0.8


def test_seasonal_pixels_come_from_the_library(seasonal: dict[str, GeneratedProduct]) -> None:
    summer = seasonal[SEASONAL_DATES[1]]
    truth = read(summer.truth)
    coords = np.arange(truth.shape[0], dtype=np.float32) + 0.5
    day = dt.date.fromisoformat(SEASONAL_DATES[1])
    assert not seasons.haze(coords[None, :], coords[:, None], 5, day).any()
    clear = ~np.isin(np.repeat(np.repeat(read(summer.bands["SCL"]), 2, 0), 2, 1), (3, 8, 9, 10))
    nir = _reflectance(summer, "B08", truth.shape)
    lib = library.load()
    for code in (211, 311, 512):
        chips = lib.chips[spectra.CLASSES.index(code)]
        assert chips is not None
        seen = nir[clear & (truth == code)]
        assert seen.size > 100
        expected = np.median(chips[..., 7])
        assert float(np.median(seen)) == pytest.approx(expected, rel=0.25, abs=0.01), code


def test_seasonal_urban_fabric_is_a_mix(seasonal: dict[str, GeneratedProduct]) -> None:
    """Discontinuous urban fabric shows roofs, roads and gardens, not only roofs."""
    summer = seasonal[SEASONAL_DATES[1]]
    truth = read(summer.truth)
    red, nir = (_reflectance(summer, b, truth.shape) for b in ("B04", "B08"))
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    clear = ~np.isin(np.repeat(np.repeat(read(summer.bands["SCL"]), 2, 0), 2, 1), (3, 8, 9, 10))
    where = clear & (truth == 112)
    assert where.sum() > 100
    assert 0.15 <= float((ndvi[where] > 0.5).mean()) <= 0.75
