"""A per-product haze figure from what L2A provides, computed by the cloud stage.

Haze (thin cloud, smoke, dust) brightens and flattens the spectrum without being flagged as
cloud, and models misread it (a hazy forest looks like grassland). Sen2Cor leaves three traces
of it, which the cloud stage summarises over the product's valid pixels inside the area of
interest, on the SCL (20 m) grid, window by window:

- ``aot_median``, ``aot_p90``: aerosol optical thickness at 550 nm (the ``AOT`` band, DN x
  its scale, 0.001) over clear pixels (valid SCL, not cloud, shadow or cirrus). Clear air is
  about 0.05-0.2; haze and smoke push it to 0.3-1 and more. ``None`` without an AOT band.
- ``cirrus_percent``: SCL class 10 (thin cirrus) in percent of valid pixels. Cirrus is also
  counted in the cloud fraction; here it is reported apart because thin cirrus is haze.
- ``blue_median``: median B02 reflectance of clear land (SCL 4 vegetation, 5 bare soil).
  Vegetation and soil are dark in blue (about 0.02-0.08); haze scatters blue light and
  raises it. ``None`` without a B02 band or clear land.

Percentiles are exact: AOT and B02 digital numbers are counted in 16-bit histograms, so memory
stays constant whatever the tile size. The figure travels in the message (``msg.haze``), goes
into the product's catalog record (``earthsig:haze``) and into skip records (``details``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from earthsignature.functions.cloudmask import CLOUD_CLASSES, valid_mask

#: SCL thin cirrus.
SCL_CIRRUS = 10
#: SCL vegetation and not-vegetated (bare soil): clear land, where blue should be dark.
SCL_CLEAR_LAND = (4, 5)
_DN = 1 << 16


class HazeFigure(BaseModel):
    """Haze indicators of one product (see the module docstring for their definitions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aot_median: float | None = Field(
        default=None, description="Median AOT (550 nm) of clear pixels; None without AOT."
    )
    aot_p90: float | None = Field(default=None, description="90th percentile of the same AOT.")
    cirrus_percent: float = Field(description="SCL thin cirrus (10), % of valid pixels.")
    blue_median: float | None = Field(
        default=None, description="Median B02 reflectance of clear land (SCL 4, 5)."
    )


class HazeCounter:
    """Accumulates the histograms of :class:`HazeFigure` window by window."""

    def __init__(
        self,
        *,
        aot_scale: float = 0.001,
        aot_offset: float = 0.0,
        blue_scale: float = 1e-4,
        blue_offset: float = 0.0,
    ) -> None:
        self.aot_scale, self.aot_offset = aot_scale, aot_offset
        self.blue_scale, self.blue_offset = blue_scale, blue_offset
        self.aot_hist = np.zeros(_DN, dtype=np.int64)
        self.blue_hist = np.zeros(_DN, dtype=np.int64)
        self.cirrus = 0
        self.valid = 0

    def add(
        self,
        scl: NDArray[np.uint8],
        inside: NDArray[np.bool_] | None = None,
        aot: NDArray[np.uint16] | None = None,
        blue: NDArray[np.uint16] | None = None,
    ) -> None:
        """One window: SCL, the area mask, and AOT / B02 digital numbers on the same grid
        (0 = no data)."""
        area = valid_mask(scl)
        if inside is not None:
            area &= inside
        self.valid += int(np.count_nonzero(area))
        self.cirrus += int(np.count_nonzero(area & (scl == SCL_CIRRUS)))
        if aot is not None:
            clear = area & ~np.isin(scl, CLOUD_CLASSES) & (aot > 0)
            self.aot_hist += np.bincount(aot[clear], minlength=_DN)
        if blue is not None:
            land = area & np.isin(scl, SCL_CLEAR_LAND) & (blue > 0)
            self.blue_hist += np.bincount(blue[land], minlength=_DN)

    def figure(self) -> HazeFigure:
        """The figure of everything added so far."""
        aot_median = _percentile(self.aot_hist, 50, self.aot_scale, self.aot_offset)
        return HazeFigure(
            aot_median=aot_median,
            aot_p90=_percentile(self.aot_hist, 90, self.aot_scale, self.aot_offset),
            cirrus_percent=round(100.0 * self.cirrus / self.valid, 4) if self.valid else 0.0,
            blue_median=_percentile(self.blue_hist, 50, self.blue_scale, self.blue_offset),
        )


def _percentile(hist: NDArray[np.int64], q: float, scale: float, offset: float) -> float | None:
    """The ``q`` th percentile (lower value) of a DN histogram, in physical units."""
    total = int(hist.sum())
    if total == 0:
        return None
    rank = max(1, int(np.ceil(q / 100.0 * total)))
    dn = int(np.searchsorted(np.cumsum(hist), rank))
    return round(dn * scale + offset, 4)
