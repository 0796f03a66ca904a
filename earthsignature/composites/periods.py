"""Composite periods of an acquisition date: its calendar month, season and calendar year.

Seasons are meteorological (DJF, MAM, JJA, SON); a December belongs to the winter named by
the following year (``2024-12-15`` is in ``2025-DJF``), so one winter is one period.
"""

from __future__ import annotations

import datetime as dt

from earthsignature.storage import layout

_SEASONS = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM"}
_SEASONS |= {6: "JJA", 7: "JJA", 8: "JJA", 9: "SON", 10: "SON", 11: "SON"}


def periods_of(date: dt.date | str) -> tuple[str, str, str]:
    """``(month, season, year)`` period ids of an acquisition date."""
    day = layout.acquisition_date(date)
    season_year = day.year + 1 if day.month == 12 else day.year
    return (f"{day:%Y-%m}", f"{season_year}-{_SEASONS[day.month]}", f"{day.year}")


def period_range(period: str) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of a period id."""
    layout.period_id(period)
    year = int(period[:4])
    if len(period) == 4:
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    part = period[5:]
    if part.isdigit():
        month = int(part)
        first = dt.date(year, month, 1)
        nxt = dt.date(year + month // 12, month % 12 + 1, 1)
        return first, nxt - dt.timedelta(days=1)
    start_month = {"DJF": 12, "MAM": 3, "JJA": 6, "SON": 9}[part]
    first = dt.date(year - 1 if part == "DJF" else year, start_month, 1)
    end = {"DJF": dt.date(year, 3, 1), "MAM": dt.date(year, 6, 1), "JJA": dt.date(year, 9, 1)}
    last = end.get(part, dt.date(year, 12, 1)) - dt.timedelta(days=1)
    return first, last
