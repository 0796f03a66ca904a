"""No seams: the overlap-tiled prediction equals the whole-image prediction pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from earthsignature.functions import infer, shards, split
from earthsignature.functions.chips import ChipGrid, predict_tiled, read_padded
from earthsignature.functions.stitch import stitch_segmentation
from earthsignature.models import dynamicworld as dw
from earthsignature.models.repository import SHIPPED, ModelRepository
from earthsignature.models.runners import EmbeddedRunner
from tests.models.conftest import CONV_CLASSES, TEST_MODEL, smooth_field


def whole_image(runner: EmbeddedRunner, image: np.ndarray, margin: int) -> np.ndarray:
    """The model on the whole image, padded by ``margin`` zeros as the chips are."""
    padded = read_padded(
        image, -margin, -margin, image.shape[1] + 2 * margin, image.shape[2] + 2 * margin
    )
    out = runner.predict(padded[None]).classes[0]
    return out[margin : out.shape[0] - margin, margin : out.shape[1] - margin]


@pytest.fixture(scope="module")
def conv(model_repo: ModelRepository) -> EmbeddedRunner:
    return EmbeddedRunner(model_repo, TEST_MODEL, 2, threads=1)


@pytest.mark.parametrize(
    ("height", "width", "chip", "margin"),
    [(97, 131, 32, 2), (64, 64, 24, 3), (50, 211, 48, 2), (20, 20, 48, 2)],
)
def test_tiled_equals_whole_image(
    conv: EmbeddedRunner, height: int, width: int, chip: int, margin: int
) -> None:
    rng = np.random.default_rng(height * width)
    image = np.stack([smooth_field(rng, (height, width), 5) * 4 - 2 for _ in range(6)]).astype(
        np.float32
    )
    grid = ChipGrid(height, width, chip, margin)
    assert len(grid) > 1 or height <= chip
    tiled = predict_tiled(lambda c: conv.predict(c).classes, image, grid, batch=5)
    expected = whole_image(conv, image, margin)
    assert len(np.unique(expected)) >= 3  # the map has structure for seams to show in
    np.testing.assert_array_equal(tiled, expected)


def test_margin_below_receptive_field_leaves_seams(conv: EmbeddedRunner) -> None:
    """The same comparison fails when the overlap is too small: the check above has teeth."""
    rng = np.random.default_rng(7)
    image = np.stack([smooth_field(rng, (96, 96), 5) * 4 - 2 for _ in range(6)]).astype(np.float32)
    tiled = predict_tiled(lambda c: conv.predict(c).classes, image, ChipGrid(96, 96, 32, 0))
    assert (tiled != whole_image(conv, image, 0)).sum() > 10


@pytest.mark.parametrize("shard_megabytes", [1, 64])
def test_split_infer_stitch_has_no_seams(
    store, model_repo, make_runtime, synthetic_product, tmp_path: Path, shard_megabytes: int
) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(store, model_repo, shard_megabytes=shard_megabytes)
    msg = synthetic_product(store, h=300, w=130, scl_invalid=(10, 20, 30, 45))
    shard_msgs = split.handle(msg, rt)
    assert [m.shard for m in shard_msgs] == list(range(len(shard_msgs)))
    # 7 x 3 chips of 48 x 48 x 6 float32; 1 MiB holds 18 of them
    assert [m.n_shards for m in shard_msgs] == [len(shard_msgs)] * len(shard_msgs)
    assert len(shard_msgs) == (1 if shard_megabytes == 64 else 2)
    for m in shard_msgs:
        assert infer.handle(m, rt) == [m]
    out = tmp_path / "seg.tif"
    stitch_segmentation(rt, shard_msgs[0], out)

    spec = model_repo.spec(TEST_MODEL, 2)
    reader = split.BandReader(msg, rt, spec)
    try:
        image, valid = reader.read(0, 0, 300, 130)
    finally:
        reader.close()
    runner = EmbeddedRunner(model_repo, TEST_MODEL, 2, threads=1)
    classes = whole_image(runner, image.astype(np.float16).astype(np.float32), spec.margin)
    expected = np.where(valid, np.array(CONV_CLASSES, dtype=np.uint16)[classes], 0)
    with rasterio.open(out) as ds:
        assert (ds.height, ds.width, ds.crs.to_epsg(), ds.res) == (300, 130, 32631, (10.0, 10.0))
        got = ds.read(1)
    assert not valid[20:40, 60:90].any()  # SCL 0 at 20 m -> 10 m rows 20-39, cols 60-89
    assert (got[20:40, 60:90] == 0).all() and (got[0, :3] == 0).all()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shape", [(3, 6, 8, 8), (1, 2, 5, 7), (0, 6, 4, 4)])
def test_shard_archive_round_trips_exactly(shape: tuple[int, ...]) -> None:
    """Shards and predictions come back bit for bit (signed zeros included)."""
    rng = np.random.default_rng(len(shape) + sum(shape))
    chips = rng.normal(size=shape).astype(np.float16)
    chips.reshape(-1)[:1] = np.float16(-0.0)  # signed zero survives
    valid = rng.random((shape[0], *shape[2:])) > 0.5
    origins = rng.integers(-5, 500, (shape[0], 2)).astype(np.int32)
    data = shards.encode({"chips": chips, "valid": valid, "origins": origins})
    out = shards.decode(data)
    assert sorted(out) == ["chips", "origins", "valid"]
    assert out["chips"].dtype == np.float16 and out["chips"].shape == shape
    np.testing.assert_array_equal(out["chips"].view(np.uint16), chips.view(np.uint16))
    np.testing.assert_array_equal(out["valid"], valid)
    np.testing.assert_array_equal(out["origins"], origins)


def test_default_model_has_no_seams_at_its_chip_size() -> None:
    """The shipped Dynamic World graph (2x downscale inside, 15 x 15 window in its head) tiled
    at its own chip size and margin gives the whole-image classes: the spec's receptive field
    and stride multiple hold for the 512 px chips. Real reflectance (the golden chips)."""
    spec = ModelRepository(SHIPPED).spec(dw.NAME, 1)
    golden = np.load(Path(__file__).parent / "data" / "dynamicworld-clc-1-golden.npz")
    patches = golden["dn"].astype(np.float32) / np.float32(10000)  # [3, 9, 120, 120]
    row = np.concatenate([patches[i % 3] for i in range(4)], axis=2)
    image = np.concatenate([row, np.roll(row, 120, axis=2)], axis=1)[:, :, :470]
    grid = ChipGrid(240, 470, spec.chip_size, spec.margin)
    assert len(grid) == 2  # the kept centres meet inside the image
    runner = EmbeddedRunner(ModelRepository(SHIPPED), dw.NAME, 1, threads=2)
    tiled = predict_tiled(lambda c: runner.predict(c).classes, image, grid, batch=2)
    expected = whole_image(runner, image, spec.margin)
    assert len(np.unique(expected)) >= 3
    np.testing.assert_array_equal(tiled, expected)
