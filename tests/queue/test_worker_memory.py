"""Workers bound GDAL's block cache (GDAL's default is 5 % of physical memory per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from earthsignature.memory import WORKER_GDAL_CACHE_MB, bound_gdal_cache


def test_worker_bounds_gdal_cache_for_itself_and_its_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    bound_gdal_cache()
    assert os.environ["GDAL_CACHEMAX"] == str(WORKER_GDAL_CACHE_MB)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['GDAL_CACHEMAX'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == str(WORKER_GDAL_CACHE_MB)


def test_an_operators_gdal_cachemax_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDAL_CACHEMAX", "1024")
    bound_gdal_cache()
    assert os.environ["GDAL_CACHEMAX"] == "1024"
