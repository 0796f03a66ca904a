"""The composite rules on hand-made label histories (one pixel per case)."""

from __future__ import annotations

import numpy as np
import pytest

from earthsignature.composites.rules import CONFIDENCE_NODATA, add_observations, compose

CODES = (112, 211, 231, 311, 312, 333, 335, 512)


def history(*labels: int) -> np.ndarray:
    """Counts [k, 1, 1] of one pixel that was seen as ``labels``, one date each."""
    counts = np.zeros((len(CODES), 1, 1), dtype=np.uint8)
    for label in labels:
        add_observations(counts, CODES, np.array([[label]]), np.array([[True]]))
    return counts


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ((211, 333, 211, 333, 333), 211),  # bare and crops alternating: arable, not bare
        ((231, 333, 211, 333), 211),  # winter cereals look like grass: still arable
        ((311, 231, 311, 231, 312), 311),  # haze makes forest look like grass on some dates
        ((335, 335, 231, 231, 231), 231),  # snow only in winter: the other seasons' class
        ((335, 335, 335, 335, 231), 335),  # snow nearly always: glacier
        ((512, 512, 333), 512),  # water most of the time (a shore with low water)
        ((112, 231, 112), 112),  # otherwise the most frequent class
        ((333, 333, 333), 333),  # bare all year stays bare
    ],
)
def test_rules_turn_histories_into_land_use(labels: tuple[int, ...], expected: int) -> None:
    result = compose(history(*labels), CODES)
    assert result.code[0, 0] == expected
    assert result.observations[0, 0] == len(labels)


def test_confidence_grows_with_agreeing_observations() -> None:
    once, often = compose(history(311), CODES), compose(history(*[311] * 9), CODES)
    assert once.confidence[0, 0] == 50
    assert often.confidence[0, 0] == 90
    mixed = compose(history(311, 311, 231, 112), CODES)
    assert mixed.confidence[0, 0] < often.confidence[0, 0]


def test_unseen_pixel_is_no_data() -> None:
    result = compose(history(), CODES)
    assert (result.code[0, 0], result.observations[0, 0]) == (0, 0)
    assert result.confidence[0, 0] == CONFIDENCE_NODATA


def test_clouded_pixels_are_not_counted() -> None:
    counts = np.zeros((len(CODES), 1, 2), dtype=np.uint8)
    add_observations(counts, CODES, np.array([[311, 311]]), np.array([[True, False]]))
    assert counts.sum(axis=0).tolist() == [[1, 0]]


def test_counts_saturate_instead_of_wrapping() -> None:
    counts = np.full((len(CODES), 1, 1), 0, dtype=np.uint8)
    counts[CODES.index(311)] = 255
    add_observations(counts, CODES, np.array([[311]]), np.array([[True]]))
    assert counts[CODES.index(311), 0, 0] == 255


def test_labels_outside_the_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        history(121)
    with pytest.raises(ValueError, match="ascending"):
        compose(np.zeros((2, 1, 1), dtype=np.uint8), (311, 211))
