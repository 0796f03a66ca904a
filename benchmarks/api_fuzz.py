"""API fuzzing at scale: many more hypothesis cases against one server, its RSS before/after.

Runs the fuzz tests of ``tests/api/test_fuzz.py`` (one ``earthsig serve`` process over a real
S3 server; V1, V2, raw bytes and CreateProduct cases) with ``--examples`` examples per test
instead of the suite's 400, and reports the number of cases, their statuses, the wall time,
the server's RSS after warm-up and at the end, and the 1-minute load average (cores may be
shared). A server that leaks grows with the number of cases; caches level off.

    python -m benchmarks api_fuzz [--examples 2000]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZ_TESTS = "not caps and not clamped and not decimated and not long_messages and not parallel"


def run(examples: int) -> dict[str, object]:
    """One pytest run of the fuzz tests; the numbers it printed."""
    env = {**os.environ, "EARTHSIG_FUZZ_EXAMPLES": str(examples)}
    command = [sys.executable, "-m", "pytest", "tests/api/test_fuzz.py", "-q", "-s"]
    command += ["-p", "no:cacheprovider", "-k", FUZZ_TESTS]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    cases = re.search(r"fuzz cases (\d+): (\{.*\})", done.stdout)
    rss = re.search(r"server RSS ([\d.]+) -> ([\d.]+) MiB", done.stdout)
    if not cases or not rss:
        sys.stderr.write(done.stdout[-5000:] + done.stderr[-5000:])
        raise SystemExit(f"fuzz run failed (exit {done.returncode})")
    statuses: dict[str, int] = {}
    for label, count in ast.literal_eval(cases.group(2)).items():
        status = label.rpartition(": ")[2]
        statuses[status] = statuses.get(status, 0) + count
    return {
        "examples_per_test": examples,
        "tests_passed": done.returncode == 0,
        "cases": int(cases.group(1)),
        "statuses": statuses,
        "wall_s": round(wall, 1),
        "server_rss_after_warmup_mib": float(rss.group(1)),
        "server_rss_end_mib": float(rss.group(2)),
        "server_rss_growth_mib": round(float(rss.group(2)) - float(rss.group(1)), 1),
        "load_1min": os.getloadavg()[0],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples per fuzz test")
    args = parser.parse_args(argv)
    print("api_fuzz", json.dumps(run(args.examples)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
