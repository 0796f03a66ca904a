"""JSON log lines carry the product id and stage of the job that logged them."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from earthsignature.errors import ConfigurationError
from earthsignature.logs import JsonFormatter, log_context
from earthsignature.settings import load_settings


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("earthsignature.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("product_id", "stage"),
    [("S2A_MSIL2A_20260301T105031_N0510_R051_T31TCJ_20260301T140001", "cloud"), (None, "discover")],
)
def test_lines_inside_a_context_are_tagged(
    captured: tuple[logging.Logger, io.StringIO], product_id: str | None, stage: str
) -> None:
    logger, stream = captured
    logger.info("before")
    with log_context(product_id, stage):
        logger.warning("cloud fraction %.1f%%", 97.5, extra={"attempt": 2})
    logger.info("after")
    before, inside, after = lines(stream)
    assert (before["product_id"], before["stage"]) == (None, None)
    assert (inside["product_id"], inside["stage"]) == (product_id, stage)
    assert inside["message"] == "cloud fraction 97.5%" and inside["attempt"] == 2
    assert inside["level"] == "WARNING" and inside["logger"] == "earthsignature.test_logs"
    assert inside["time"].endswith("+00:00")
    assert (after["product_id"], after["stage"]) == (None, None)


def test_exceptions_stay_on_one_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    with log_context("S2B_X", "fetch"):
        try:
            raise OSError("connection reset by peer")
        except OSError:
            logger.exception("band read failed")
    (record,) = lines(stream)  # one JSON object although the traceback has many lines
    assert "OSError: connection reset by peer" in record["exception"]
    assert record["product_id"] == "S2B_X"


def test_contexts_of_concurrent_threads_do_not_mix(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    barrier = threading.Barrier(4)

    def job(index: int) -> None:
        with log_context(f"P{index}", "infer"):
            barrier.wait()  # all four contexts are open at once
            logger.info("shard %d", index)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {(r["product_id"], r["message"]) for r in lines(stream)} == {
        (f"P{i}", f"shard {i}") for i in range(4)
    }


def test_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHSIG_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="EARTHSIG_LOG_FORMAT"):
        load_settings()
