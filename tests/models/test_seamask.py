"""Sea (523) apart from inland water (512) by the shipped land polygons: on rasters straddling
the Dutch coast (North Sea, Markermeer), in the stitch stage, and on a real BigEarthNet sea
patch with the shipped default model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import Affine, from_origin, rowcol

from earthsignature.functions import shards
from earthsignature.functions.messages import ProductGrid, ProductMessage
from earthsignature.functions.stitch import stitch_segmentation
from earthsignature.models import baseline, bigearthnet, seamask
from earthsignature.models.repository import SHIPPED, ModelRepository
from earthsignature.models.spec import ModelSpec
from tests.models.conftest import register

#: 100 x 60 km at 200 m around the IJsselmeer, UTM 31N: North Sea to the west, land, lakes.
CRS = "EPSG:32631"
TRANSFORM = from_origin(580_000, 5_860_000, 200, 200)
SHAPE = (300, 500)
#: lon/lat of places the raster holds (Natural Earth: lakes are land, the sea is not).
PLACES = {
    "north_sea": (4.30, 52.60),
    "markermeer": (5.25, 52.50),
    "ijsselmeer": (5.40, 52.75),
    "noord_holland": (4.80, 52.60),
}


def pixel(place: str, transform: Affine = TRANSFORM) -> tuple[int, int]:
    x, y = Transformer.from_crs(4326, CRS, always_xy=True).transform(*PLACES[place])
    row, col = rowcol(transform, x, y)
    return int(row), int(col)


def test_land_polygons_place_known_seas_lakes_and_land() -> None:
    """The shipped file: seas and lagoons outside the land, lakes and inland Lapland inside
    (a ring crossing the antimeridian once cut a band across Scandinavia)."""
    import shapely

    polygons, tree = seamask.land_polygons()
    inside = {
        name: len(tree.query(shapely.Point(lon, lat), predicate="within")) > 0
        for name, (lon, lat) in {
            "Gulf of Bothnia": (20.0, 63.0),
            "Norwegian Sea": (0.0, 70.0),
            "Black Sea": (34.0, 43.5),
            "Curonian Lagoon": (21.1, 55.3),
            "Lake Ladoga": (31.5, 61.0),
            "Lake Geneva": (6.5, 46.45),
            "Lapland": (25.7, 66.5),
            "Boadella reservoir": (2.81, 42.35),
        }.items()
    }
    assert inside == {
        "Gulf of Bothnia": False,
        "Norwegian Sea": False,
        "Black Sea": False,
        "Curonian Lagoon": False,  # CORINE 521: a known limit of the rule
        "Lake Ladoga": True,
        "Lake Geneva": True,
        "Lapland": True,
        "Boadella reservoir": True,
    }
    assert seamask.LAND_FILE.stat().st_size < 2_000_000 and len(polygons) > 100


@pytest.mark.parametrize("water", [512, 511])
def test_inland_water_outside_land_becomes_sea(water: int) -> None:
    codes = np.full(SHAPE, water, np.uint16)
    codes[:, :5] = 311  # a strip of forest, at sea too: only water codes change
    out = seamask.apply_sea(codes, CRS, TRANSFORM)
    assert out[pixel("north_sea")] == 523
    assert out[pixel("markermeer")] == out[pixel("ijsselmeer")] == water
    assert out[pixel("noord_holland")] == water
    assert (out[:, :5] == 311).all()
    assert 0.05 < (out == 523).mean() < 0.5
    assert codes[pixel("north_sea")] == water  # the input is left as it was


def test_rule_leaves_grids_outside_the_coverage_and_without_water_alone() -> None:
    south = from_origin(580_000, 2_000_000, 200, 200)  # UTM 31N at 18 N: Atlantic, no data
    codes = np.full((50, 50), 512, np.uint16)
    assert seamask.apply_sea(codes, CRS, south) is codes
    land_only = np.full(SHAPE, 211, np.uint16)
    assert seamask.apply_sea(land_only, CRS, TRANSFORM) is land_only
    assert seamask.postprocess([], codes, CRS, TRANSFORM) is codes  # not declared
    assert seamask.postprocess(["sea"], codes, None, None) is codes  # not georeferenced


def _stitch(tmp_path: Path, make_runtime: Any, local_store: Any, postprocess: list[str]) -> Any:
    repo = ModelRepository(tmp_path / "models")
    meta = {**baseline.metadata(), "name": "clc-sea", "postprocess": postprocess}
    version = register(repo, baseline.build_graph(), meta)
    rt = make_runtime(local_store, repo)
    grid = ProductGrid(crs=CRS, transform=list(TRANSFORM)[:6], width=SHAPE[1], height=SHAPE[0])
    msg = ProductMessage(
        product_id="S2X_SEA", date="2024-06-01", tile="31UFU", model="clc-sea",
        version=version, run="r1", n_shards=1, grid=grid,
    )  # fmt: skip
    classes = np.full((1, *SHAPE), baseline.metadata()["classes"].index(512), np.uint8)
    prediction = {
        "classes": classes,
        "valid": np.ones((1, *SHAPE), bool),
        "origins": np.zeros((1, 2), np.int32),
    }
    local_store.put_bytes(shards.prediction_key(msg, 0), shards.encode(prediction))
    out = tmp_path / "seg.tif"
    stitch_segmentation(rt, msg, out)
    with rasterio.open(out) as ds:
        return ds.read(1)


def test_stitch_applies_the_declared_rule_and_only_then(
    tmp_path: Path, make_runtime: Any, local_store: Any
) -> None:
    with_rule = _stitch(tmp_path / "a", make_runtime, local_store, ["sea"])
    assert with_rule[pixel("north_sea")] == 523 and with_rule[pixel("markermeer")] == 512
    without = _stitch(tmp_path / "b", make_runtime, local_store, [])
    assert (without == 512).all()
    assert ((with_rule == 523) == (seamask.apply_sea(without, CRS, TRANSFORM) == 523)).all()


def test_scene_evaluation_applies_the_rule_on_the_label_grid() -> None:
    """``earthsig evaluate``'s prediction: a stand-in model that calls everything water."""
    from earthsignature.models import evaluate

    spec = ModelSpec(
        name="w", version=1, bands=["B08"], mean=[0.0], std=[1.0], chip_size=64,
        receptive_field=1, classes=[512], postprocess=["sea"],
    )  # fmt: skip
    reflectance = np.full((1, *SHAPE), 0.05, np.float32)

    def water(chips: np.ndarray) -> np.ndarray:
        return np.zeros((chips.shape[0], *chips.shape[2:]), np.uint8)

    placed = evaluate.predict_codes(water, spec, reflectance, CRS, TRANSFORM)
    assert placed[pixel("north_sea")] == 523 and placed[pixel("markermeer")] == 512
    assert (evaluate.predict_codes(water, spec, reflectance) == 512).all()  # no georeference


def test_spec_declares_what_the_rule_adds() -> None:
    base = {**baseline.metadata(), "name": "m", "version": 1}
    assert ModelSpec(**base).output_codes == baseline.metadata()["classes"]
    assert ModelSpec(**base, postprocess=["sea"]).output_codes[-1] == 523
    with pytest.raises(ValueError, match="postprocess"):
        ModelSpec(**base, postprocess=["lagoon"])
    shipped = ModelRepository(SHIPPED)
    assert shipped.spec("dynamicworld-clc", 1).postprocess == ["sea"]
    assert shipped.spec("clc-baseline", 1).postprocess == []


def test_bigearthnet_names_give_the_patch_grid() -> None:
    crs, transform = bigearthnet.georeference("S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_37_88")
    assert crs == "EPSG:32633" and transform == Affine(10, 0, 344_400, 0, -10, 5_294_400)
    v1 = bigearthnet.georeference("S2A_MSIL2A_20170613T101031_39_24")  # tile from V1_TILES
    assert v1 is not None and v1[0] == "EPSG:32634"
    assert bigearthnet.georeference("S2A_MSIL2A_20170613T101031_87_48") is None  # not listed


@pytest.mark.shared_data
def test_default_model_calls_a_real_sea_patch_sea() -> None:
    """A BigEarthNet v1 patch of the Gulf of Bothnia (labelled 'Sea and ocean'): the shipped
    model sees water (512), the sea rule places it outside the land (523)."""
    from earthsignature.models import evaluate, patch_eval

    repo = ModelRepository(SHIPPED)
    spec = repo.spec("dynamicworld-clc", 1)
    try:
        patches = [
            p
            for p in bigearthnet.v1_patches(spec.bands)
            if p.name == "S2A_MSIL2A_20170613T101031_39_24"
        ]
    except (FileNotFoundError, ImportError) as exc:
        pytest.skip(f"BigEarthNet samples unavailable: {exc}")
    (patch,) = patches
    predict = evaluate.session_predict(repo.onnx_path(spec.name, 1), spec, 2)
    codes, *_ = patch_eval.predict_patch(predict, spec, patch.reflectance)  # one DW run
    assert (codes == 512).mean() > 0.9  # what the network alone says
    result = patch_eval.score_patch(patch, patch_eval.postprocess_patch(spec, patch, codes), None)
    assert result.labels == {523} and result.dominant == 523 and result.right[3]
    assert result.georeferenced
