"""A few U-Net training steps on generator scenes give a version both runners load and run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from earthsignature.generator import generate_product
from earthsignature.generator.product import reflectance_offset
from earthsignature.models.repository import ModelRepository
from earthsignature.models.runners import EmbeddedRunner, TritonRunner
from earthsignature.models.train import DEFAULT_BANDS, load_scene, train_and_register
from earthsignature.testing.triton import TritonServer

pytestmark = [pytest.mark.slow, pytest.mark.triton]


def test_trained_unet_registers_and_runs_embedded_and_on_triton(tmp_path: Path) -> None:
    scenes = []
    for seed in (1, 2):
        product = generate_product(tmp_path / "gen", size=192, seed=seed, date=f"2024-06-0{seed}")
        scenes.append(
            load_scene(
                product.bands, product.truth, DEFAULT_BANDS, offset=reflectance_offset("05.10")
            )
        )
    repo = ModelRepository(tmp_path / "repo")
    first = train_and_register(
        repo, "unet-test", scenes, DEFAULT_BANDS, steps=3, chip=64, batch=2, width=4
    )
    second = train_and_register(
        repo, "unet-test", scenes, DEFAULT_BANDS, steps=3, chip=64, batch=2, width=4, seed=1
    )
    assert (first.version, second.version) == (1, 2)
    assert repo.versions("unet-test") == [1, 2]
    assert set(second.classes) <= {int(c) for s in scenes for c in np.unique(s.codes)}
    assert second.stride_multiple == 4 and second.margin % 4 == 0

    chips = np.random.default_rng(0).normal(size=(3, len(DEFAULT_BANDS), 64, 96)).astype(np.float32)
    embedded = EmbeddedRunner(repo, "unet-test", 2, threads=1).predict(chips).classes
    assert embedded.shape == (3, 64, 96) and embedded.dtype == np.uint8
    assert embedded.max() < len(second.classes)
    with TritonServer(repo.root, "unet-test", [2]) as server:
        served = TritonRunner(server.grpc_url, second).predict(chips).classes
    np.testing.assert_array_equal(served, embedded)
