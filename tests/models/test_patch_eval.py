"""Patch-level scoring against CORINE multi-labels (BigEarthNet-style), on hand-made patches
and a stand-in model whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from earthsignature.models import bigearthnet, patch_eval
from earthsignature.models.bigearthnet import Patch
from earthsignature.models.spec import ModelSpec


def test_levels_compare_the_code_prefixes() -> None:
    assert patch_eval.in_labels(312, {311, 211}, 2) and not patch_eval.in_labels(312, {311}, 3)
    assert patch_eval.in_labels(231, {211}, 1) and not patch_eval.in_labels(231, {211}, 2)


def test_v1_and_v2_label_names_map_to_codes() -> None:
    assert bigearthnet.code_of_name("Non-irrigated arable land") == 211
    assert (
        bigearthnet.code_of_name(
            "Land principally occupied by agriculture, with significant areas of natural vegetation"
        )
        == 243
    )
    with pytest.raises(ValueError, match="not a CORINE"):
        bigearthnet.code_of_name("Cloud")
    codes = set().union(*bigearthnet.BEN19.values())
    assert len(bigearthnet.BEN19) == 19 and all(100 < c < 600 for c in codes)


def test_dominant_class_recall_and_groups() -> None:
    spec = ModelSpec(
        name="fake", version=1, bands=["B08"], mean=[0.0], std=[1.0], chip_size=64,
        receptive_field=1, classes=[311, 211], outputs=["classes", "confidence"],
    )  # fmt: skip

    def predict(chips: np.ndarray) -> list[np.ndarray]:
        classes = np.where(chips[:, 0] > 0.3, np.uint8(0), np.uint8(1))  # 0: 311 if bright
        return [classes.astype(np.uint8), np.full(classes.shape, 80, np.uint8)]

    bright = np.full((1, 20, 20), 0.4, np.float32)
    dark = np.full((1, 20, 20), 0.1, np.float32)
    patches = [
        Patch("a", "set", bright, frozenset({311}), False),  # right at every level
        Patch("b", "set", dark, frozenset({231}), False),  # 211 vs 231: level 1 only
        Patch("c", "set", dark, frozenset({211}), True),  # disturbed, reported apart
    ]
    results = [patch_eval.evaluate_patch(predict, spec, p) for p in patches]
    assert [r.dominant for r in results] == [311, 211, 211]
    report = patch_eval.report(results)
    clear = report["clear"]
    assert clear["patches"] == 2 and clear["level1"] == 1.0 and clear["level2"] == 0.5
    assert clear["mean_confidence"] == pytest.approx(80.0)
    assert clear["recall_level2"] == {"23": {"patches": 1, "recall": 0.0},
                                      "31": {"patches": 1, "recall": 1.0}}  # fmt: skip
    assert report["snow_cloud_shadow"]["patches"] == 1
    assert set(report["groups"]) == {"set clear", "set snow_cloud_shadow"}
