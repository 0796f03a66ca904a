"""Structured logs: one JSON object per line, with the product id and stage of the job.

The stage runner sets the context with :func:`log_context`; every record logged inside it
(by any module) carries ``product_id`` and ``stage``, so a log system can follow one product
through the pipeline. Enabled with ``EARTHSIG_LOG_FORMAT=json``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

_product_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "earthsig_product_id", default=None
)
_stage: contextvars.ContextVar[str | None] = contextvars.ContextVar("earthsig_stage", default=None)

#: LogRecord attributes that are not user ``extra=`` fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def log_context(product_id: str | None = None, stage: str | None = None) -> Iterator[None]:
    """Tag every log record in this block (this thread/task) with the product and stage."""
    tokens = (_product_id.set(product_id), _stage.set(stage))
    try:
        yield
    finally:
        _stage.reset(tokens[1])
        _product_id.reset(tokens[0])


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, message, product_id,
    stage, any ``extra=`` fields and the exception text."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "product_id": getattr(record, "product_id", None) or _product_id.get(),
            "stage": getattr(record, "stage", None) or _stage.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: int, fmt: str = "text") -> None:
    """Set up the root logger once per process: ``text`` (human) or ``json`` lines."""
    if fmt == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level, handlers=[handler], force=True)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
