"""Overlap-tile geometry for split, infer and stitch; it lives in :mod:`earthsignature.models.chips`
(evaluation needs it too, and models/ must not import functions/)."""

from earthsignature.models.chips import (
    ChipGrid,
    centre,
    predict_tiled,
    predict_tiled_outputs,
    read_padded,
)

__all__ = ["ChipGrid", "centre", "predict_tiled", "predict_tiled_outputs", "read_padded"]
