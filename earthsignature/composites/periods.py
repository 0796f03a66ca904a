"""Composite periods of an acquisition date: its calendar month, season and rolling 12 months.

Seasons are meteorological (DJF, MAM, JJA, SON); a December belongs to the winter named by
the following year (``2024-12-15`` is in ``2025-DJF``), so one winter is one period.

A rolling 12 months ``R12-2024-05`` is the twelve calendar months ending with May 2024 (June
2023 to May 2024); ``R12-2024-12`` is the calendar year 2024. Rolling periods are not folded
from products: their per-pixel counts are the sum of their twelve month states (see
:mod:`~earthsignature.composites.rolling`). Plain years (``2024``) are still valid ids (older
stores may hold them) but no longer built.
"""

from __future__ import annotations

import datetime as dt

from earthsignature.storage import layout

_SEASONS = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM"}
_SEASONS |= {6: "JJA", 7: "JJA", 8: "JJA", 9: "SON", 10: "SON", 11: "SON"}
#: Prefix of rolling 12-month period ids.
ROLLING = "R12-"


def _shift(month: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after ``month`` (negative: before)."""
    index = month.year * 12 + month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def folded_periods(date: dt.date | str) -> tuple[str, str]:
    """``(month, season)``: the periods a product of ``date`` is folded into."""
    day = layout.acquisition_date(date)
    season_year = day.year + 1 if day.month == 12 else day.year
    return (f"{day:%Y-%m}", f"{season_year}-{_SEASONS[day.month]}")


def rolling_id(month: str) -> str:
    """``R12-YYYY-MM``: the 12 months ending with ``month`` (``YYYY-MM``)."""
    return ROLLING + layout.period_id(month)


def is_rolling(period: str) -> bool:
    return period.startswith(ROLLING)


def rolling_containing(month: str) -> list[str]:
    """The 12 rolling periods that hold ``month``: ending with it and the 11 after it."""
    first = dt.date.fromisoformat(month + "-01")
    return [rolling_id(f"{_shift(first, k):%Y-%m}") for k in range(12)]


def months_of(period: str) -> list[str]:
    """The calendar months (``YYYY-MM``, ascending) a rolling period sums."""
    if not is_rolling(period):
        raise ValueError(f"{period} is not a rolling period")
    last = dt.date.fromisoformat(layout.period_id(period)[len(ROLLING) :] + "-01")
    return [f"{_shift(last, k):%Y-%m}" for k in range(-11, 1)]


def periods_of(date: dt.date | str) -> tuple[str, str, str]:
    """``(month, season, rolling)`` period ids of an acquisition date; the rolling period is
    the 12 months ending with the date's month."""
    month, season = folded_periods(date)
    return month, season, rolling_id(month)


def period_range(period: str) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of a period id."""
    layout.period_id(period)
    if is_rolling(period):
        months = months_of(period)
        first = dt.date.fromisoformat(months[0] + "-01")
        _, last = period_range(months[-1])
        return first, last
    year = int(period[:4])
    if len(period) == 4:
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    part = period[5:]
    if part.isdigit():
        first = dt.date(year, int(part), 1)
        return first, _shift(first, 1) - dt.timedelta(days=1)
    start_month = {"DJF": 12, "MAM": 3, "JJA": 6, "SON": 9}[part]
    first = dt.date(year - 1 if part == "DJF" else year, start_month, 1)
    return first, _shift(first, 3) - dt.timedelta(days=1)
