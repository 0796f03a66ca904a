"""Overlap-tile geometry: where chips start, which part of each is kept, and a tiled
in-memory prediction built on the same rules as split/infer/stitch.

Chip ``k`` along an axis starts at ``k * step - margin`` and keeps its centre
``[k * step, k * step + step)``, where ``margin`` covers half the receptive field and
``step = chip_size - 2 * margin``. Outside the image the input is 0 in normalised space (the
band mean). So every kept pixel sees its whole receptive field exactly as it would in the whole
image padded by ``margin`` zeros, and the stitched map has no seams. Chip origins are multiples
of ``stride_multiple`` relative to the padded image, which keeps pooling networks (U-Net)
translation-equivariant across chips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from earthsignature.models.spec import ModelSpec


@dataclass(frozen=True)
class ChipGrid:
    """Chips covering a ``height`` x ``width`` image for a model's chip size and margin."""

    height: int
    width: int
    chip_size: int
    margin: int

    @classmethod
    def for_spec(cls, spec: ModelSpec, height: int, width: int) -> ChipGrid:
        return cls(height, width, spec.chip_size, spec.margin)

    @property
    def step(self) -> int:
        return self.chip_size - 2 * self.margin

    @property
    def n_rows(self) -> int:
        return -(-self.height // self.step)

    @property
    def n_cols(self) -> int:
        return -(-self.width // self.step)

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    def origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left pixel of chip (row, col) in image coordinates (negative at the border)."""
        return row * self.step - self.margin, col * self.step - self.margin

    def chips(self) -> Iterator[tuple[int, int]]:
        """Chip (row, col) indices in row-major order (the order shards store them)."""
        for row in range(self.n_rows):
            for col in range(self.n_cols):
                yield row, col


def read_padded(
    array: np.ndarray, y0: int, x0: int, height: int, width: int, fill: float = 0.0
) -> np.ndarray:
    """``array[..., y0:y0+height, x0:x0+width]`` with ``fill`` outside the array (``array``
    itself when that is all of it)."""
    if (y0, x0) == (0, 0) and array.shape[-2:] == (height, width):
        return array
    out = np.full((*array.shape[:-2], height, width), fill, dtype=array.dtype)
    h, w = array.shape[-2:]
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + height, h), min(x0 + width, w)
    if ye > ys and xe > xs:
        out[..., ys - y0 : ye - y0, xs - x0 : xe - x0] = array[..., ys:ye, xs:xe]
    return out


def centre(chips: np.ndarray, margin: int) -> np.ndarray:
    """The kept centre of chips ``[..., C, C]``."""
    if margin == 0:
        return chips
    return chips[..., margin:-margin, margin:-margin]


def predict_tiled(
    predict: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    grid: ChipGrid,
    *,
    batch: int = 16,
) -> np.ndarray:
    """Overlap-tile prediction of a normalised in-memory image ``[bands, H, W]`` (evaluation,
    tests); the pipeline does the same across split, infer and stitch, window by window."""
    (classes,) = predict_tiled_outputs(lambda chips: [predict(chips)], image, grid, batch=batch)
    return classes


def predict_tiled_outputs(
    predict: Callable[[np.ndarray], Sequence[np.ndarray]],
    image: np.ndarray,
    grid: ChipGrid,
    *,
    batch: int = 16,
) -> list[np.ndarray]:
    """:func:`predict_tiled` for a model with several uint8 ``[N, H, W]`` outputs (classes,
    confidence): one stitched ``[H, W]`` map per output, in ``predict``'s order."""
    outs: list[np.ndarray] = []
    indices = list(grid.chips())
    for start in range(0, len(indices), batch):
        part = indices[start : start + batch]
        chips = np.stack(
            [
                read_padded(image, *grid.origin(r, c), grid.chip_size, grid.chip_size)
                for r, c in part
            ]
        )
        results = predict(chips)
        if not outs:
            outs = [np.zeros((grid.height, grid.width), dtype=r.dtype) for r in results]
        for out, result in zip(outs, results, strict=True):
            kept = centre(result, grid.margin)
            for (row, col), values in zip(part, kept, strict=True):
                y, x = row * grid.step, col * grid.step
                h, w = min(grid.step, grid.height - y), min(grid.step, grid.width - x)
                out[y : y + h, x : x + w] = values[:h, :w]
    return outs
