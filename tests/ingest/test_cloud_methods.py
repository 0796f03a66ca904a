"""The cloud stage's mask methods (scl, learned = ukis-csmask's U-Net, both) on a window of the
real 29RKH tile (its cirrus corner), through the embedded runner and a real Triton server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from earthsignature.functions import cloud, cloudlearned, fetch
from earthsignature.functions.cloudmask import CLOUD_CLASSES, INVALID_CLASSES
from earthsignature.functions.errors import BadInput, ProductSkipped
from earthsignature.functions.messages import ProductMessage
from earthsignature.functions.split import BandReader
from earthsignature.models.csmask import import_csmask
from earthsignature.models.repository import SHIPPED, ModelRepository
from earthsignature.models.runners import EmbeddedRunner, TritonRunner
from earthsignature.runtime import Runtime
from earthsignature.settings import Settings
from earthsignature.storage import LocalStore, ObjectStore
from earthsignature.testing.stac_server import local_item
from earthsignature.testing.triton import TritonServer
from tests.ingest.conftest import REAL, SAHARA, message

#: The cirrus corner of 29RKH (the shared copy is at 100 m: 1098 px): 192 x 192 px, one chip
#: of csmask's geometry (256 with 32 px margins), 96 x 96 px of the 20 m bands.
ROWS, COLS, SIDE = 0, 906, 192


@pytest.fixture(scope="module")
def csmask_repo(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    """A deployment's repository: the land-cover model and the imported cloud mask side by side."""
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(SHIPPED / "clc-baseline", root / "clc-baseline")
    repo = ModelRepository(root)
    import_csmask(repo, "l2a")
    return repo


@pytest.fixture(scope="module")
def corner(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict:
    """The STAC item of the window, its bands cut from the real files into a folder."""
    folder = shared_data / REAL
    out = tmp_path_factory.mktemp("rkh-corner")
    with rasterio.open(folder / "B02.tif") as ref:
        fine = ref.res[0]
    for tif in folder.glob("*.tif"):
        with rasterio.open(tif) as ds:
            f = round(ds.res[0] / fine)
            if (ROWS % f, COLS % f, SIDE % f) != (0, 0, 0):
                continue  # 60 m bands: not read by fetch or the cloud stage
            window = Window(COLS // f, ROWS // f, SIDE // f, SIDE // f)
            profile = ds.profile | {
                "width": SIDE // f,
                "height": SIDE // f,
                "transform": window_transform(window, ds.transform),
                "tiled": False,
            }
            profile.pop("blockxsize", None), profile.pop("blockysize", None)
            with rasterio.open(out / tif.name, "w", **profile) as dst:
                dst.write(ds.read(window=window))
    item = json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text())
    return local_item(item, out)


@pytest.fixture
def fetched(
    tmp_path: Path, corner: dict, csmask_repo: ModelRepository
) -> Callable[..., tuple[ProductMessage, Runtime]]:
    store: ObjectStore = LocalStore(tmp_path / "store")

    def make(**settings: object) -> tuple[ProductMessage, Runtime]:
        rt = Runtime(
            settings=Settings(
                aoi_wkt=SAHARA,
                model_repository=csmask_repo.root,
                **settings,  # type: ignore[arg-type]
            ),
            store=store,
        )
        (msg,) = fetch.handle(message(corner), rt)
        return msg, rt

    return make


def run_cloud(msg: ProductMessage, rt: Runtime) -> tuple[float, np.ndarray]:
    (out,) = cloud.handle(msg.model_copy(deep=True), rt)
    with rt.store.gdal_env(), rasterio.open(rt.store.gdal_path(out.cloud_mask or "")) as ds:
        assert (ds.count, ds.dtypes[0], ds.shape) == (1, "uint8", (SIDE, SIDE))
        mask = ds.read(1)
    assert out.cloud_fraction is not None
    return out.cloud_fraction, mask


def test_methods_change_the_mask_fraction_and_skip(
    fetched: Callable[..., tuple[ProductMessage, Runtime]], corner: dict
) -> None:
    msg, rt = fetched(cloud_mask_method="scl", cloud_threshold=100.0)
    with rasterio.open(corner["assets"]["scl"]["href"]) as ds:
        scl = np.repeat(np.repeat(ds.read(1), 2, 0), 2, 1)
    valid = ~np.isin(scl, INVALID_CLASSES)
    scl_fraction, scl_mask = run_cloud(msg, rt)
    np.testing.assert_array_equal(scl_mask.astype(bool), np.isin(scl, CLOUD_CLASSES))

    rt.settings = rt.settings.model_copy(update={"cloud_mask_method": "learned"})
    learned_fraction, learned_mask = run_cloud(msg, rt)
    rt.settings = rt.settings.model_copy(update={"cloud_mask_method": "both"})
    both_fraction, both_mask = run_cloud(msg, rt)

    # the learned mask is its own: neither empty nor SCL's, and the union holds both
    assert 0 < learned_mask.sum() < learned_mask.size
    assert (learned_mask != scl_mask).any()
    np.testing.assert_array_equal(both_mask, learned_mask | scl_mask)
    assert both_fraction == pytest.approx(100 * both_mask[valid].sum() / valid.sum())
    assert learned_fraction == pytest.approx(100 * learned_mask[valid].sum() / valid.sum())
    assert both_fraction > scl_fraction

    # a threshold between the two: SCL lets the product through, the union skips it
    threshold = (scl_fraction + both_fraction) / 2
    rt.settings = rt.settings.model_copy(
        update={"cloud_mask_method": "scl", "cloud_threshold": threshold}
    )
    assert run_cloud(msg, rt)[0] == pytest.approx(scl_fraction)
    rt.settings = rt.settings.model_copy(update={"cloud_mask_method": "both"})
    with pytest.raises(ProductSkipped) as info:
        cloud.handle(msg.model_copy(deep=True), rt)
    assert info.value.details["cloud_fraction"] == pytest.approx(both_fraction)


def test_a_landcover_model_as_cloud_mask_is_a_clear_error(
    fetched: Callable[..., tuple[ProductMessage, Runtime]],
) -> None:
    msg, rt = fetched(cloud_mask_method="learned", cloud_mask_model="clc-baseline")
    with pytest.raises(BadInput, match="not a cloudmask model"):
        cloud.handle(msg, rt)


def test_triton_serves_the_learned_mask_like_the_embedded_runner(
    fetched: Callable[..., tuple[ProductMessage, Runtime]], csmask_repo: ModelRepository
) -> None:
    msg, rt = fetched()
    embedded = EmbeddedRunner(csmask_repo, "csmask-l2a", 1)
    reader = BandReader(msg, rt, embedded.spec)
    try:
        chip, _ = reader.read(-32, -32, 256, 256)
    finally:
        reader.close()
    chips = np.stack([chip, chip[:, ::-1].copy()])
    expected = cloudlearned.predict_classes(embedded, chips)
    assert set(np.unique(expected)) <= {0, 1, 2} and expected.any()
    with TritonServer(csmask_repo.root, "csmask-l2a", [1]) as server:
        runner = TritonRunner(server.grpc_url, embedded.spec)
        try:
            np.testing.assert_array_equal(cloudlearned.predict_classes(runner, chips), expected)
        finally:
            runner.close()
