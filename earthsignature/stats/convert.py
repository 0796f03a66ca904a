"""Statistics results as plain JSON-ready dicts (for ``earthsig stats --json`` and the viewer)."""

from __future__ import annotations

from typing import Any

from earthsignature import corine
from earthsignature.stats.areas import Change, DateAreas


def label(code: int) -> str:
    return corine.clc_class(code).label if corine.is_code(code) else str(code)


def date_areas_dict(areas: DateAreas) -> dict[str, Any]:
    return {
        "date": areas.date.isoformat(),
        "classes": [
            {"code": c, "label": label(c), "area_m2": a}
            for c, a in sorted(areas.class_areas.items())
        ],
        "cloud_m2": areas.cloud_m2,
        "low_confidence_m2": areas.low_confidence_m2,
        "product_ids": list(areas.product_ids),
        "unreadable": [{"key": e.key, "reason": e.reason} for e in areas.unreadable],
    }


def change_dict(result: Change) -> dict[str, Any]:
    return {
        "date_from": result.date_from.isoformat(),
        "date_to": result.date_to.isoformat(),
        "transitions": [
            {"from_code": f, "to_code": t, "area_m2": a} for (f, t), a in result.transitions.items()
        ],
        "cloud_m2": result.cloud_m2,
        "changed_m2": result.changed_m2,
        "low_confidence_m2": result.low_confidence_m2,
        "product_ids": list(result.product_ids),
    }
