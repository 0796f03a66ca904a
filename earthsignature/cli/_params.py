"""Click parameter types shared by the commands."""

from __future__ import annotations

import datetime as dt

import click


class IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD; a date that does not exist is named as such."""

    name = "YYYY-MM-DD"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        text = str(value).strip()
        try:
            return dt.date.fromisoformat(text)
        except ValueError as exc:
            if len(text) == 10 and text[4] == "-" and text[7] == "-":
                self.fail(f"{text} is not a valid date ({exc})", param, ctx)
            self.fail(f"{text!r} is not a date in the form YYYY-MM-DD", param, ctx)


ISO_DATE = IsoDate()
