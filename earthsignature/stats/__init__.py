"""Land-cover statistics over committed segmentations: class areas per date and change.

Pure computation over windowed reads of the stored COGs (see :mod:`earthsignature.stats.areas`);
the gRPC service, ``earthsig stats`` and the viewer all call these functions.
"""

from earthsignature.stats.areas import (
    CLOUD,
    Change,
    DateAreas,
    area_by_date,
    change,
    parse_aoi,
)

__all__ = ["CLOUD", "Change", "DateAreas", "area_by_date", "change", "parse_aoi"]
