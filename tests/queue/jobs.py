"""Importable job functions for queue tests (RQ workers import jobs by dotted path)."""

from __future__ import annotations

import os


def add_and_report_pid(a: int, b: int) -> dict[str, int]:
    """Return the sum and the pid of the process that ran the job."""
    return {"sum": a + b, "pid": os.getpid()}
