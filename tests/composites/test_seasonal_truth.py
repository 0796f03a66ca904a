"""A year composite of real model labels against the seasonal generator's land-use truth.

Unlike test_fold (which distorts the truth by hand), every date here is a generated scene of
one tile (:func:`generate_product` with ``seasonal=True``: real library spectra, crops bare
out of season, leaf-off forest and mountain snow in winter, haze and clouds moving from date
to date) labelled by the rule-graph baseline, cloud masked by the scene's SCL, and folded with
the composite rules. The composite must agree with the truth on more pixels than any single
date does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from earthsignature.composites import rules
from earthsignature.generator import generate_product
from earthsignature.generator.product import reflectance_offset
from earthsignature.models import baseline, evaluate
from earthsignature.models.train import load_scene

SIZE = 192
DATES = ("2024-01-15", "2024-03-20", "2024-05-10", "2024-06-20", "2024-08-15", "2024-10-05")
CODES = sorted(baseline.CLASSES)


def _labelled(folder: Path, date: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, baseline labels, clear) of one generated date."""
    product = generate_product(
        folder, size=SIZE, seed=21, date=date, cloud_fraction=0.2, seasonal=True
    )
    scene = load_scene(
        product.bands, product.truth, baseline.BANDS, offset=reflectance_offset("05.10")
    )
    index = baseline.predict_numpy(scene.reflectance[None])[0]
    labels = np.asarray(baseline.CLASSES, dtype=np.uint16)[index]
    cloud = evaluate.scl_cloud(product.bands["SCL"], (SIZE, SIZE))
    assert cloud is not None
    return scene.codes, labels, ~cloud


@pytest.fixture(scope="module")
def dates(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, ...]]:
    root = tmp_path_factory.mktemp("seasonal")
    return [_labelled(root / date, date) for date in DATES]


def _share(labels: np.ndarray, truth: np.ndarray, level: int) -> float:
    """Share of truth pixels whose label has the truth's CORINE code down to ``level``."""
    div = 10 ** (3 - level)
    return float(np.mean(labels // div == truth // div))


@pytest.mark.parametrize("level", [1, 2, 3])
def test_year_composite_beats_every_single_date(
    dates: list[tuple[np.ndarray, ...]], level: int
) -> None:
    truth = dates[0][0]
    assert all(np.array_equal(d[0], truth) for d in dates)  # one land-use truth for the year
    counts = np.zeros((len(CODES), SIZE, SIZE), dtype=np.uint8)
    singles = []
    for _, labels, clear in dates:
        rules.add_observations(counts, CODES, labels, clear)
        singles.append(_share(np.where(clear, labels, 0), truth, level))
    composite = rules.compose(counts, CODES).code
    assert _share(composite, truth, level) > max(singles), (composite, singles)
