"""Run any one benchmark by name and print its results as a table.

    python -m benchmarks --list
    python -m benchmarks NAME [args...]      # e.g. python -m benchmarks api --products 100000

Each benchmark is a script ``benchmarks/NAME.py``; it runs as its own process exactly as
``python benchmarks/NAME.py args...`` would (so peak RSS is the benchmark's alone), its output
is shown as it comes, and afterwards every result it printed as a JSON object (or as
``label {dict}``) is gathered into one table, with the wall time and peak RSS of the run.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    """Benchmark scripts in this folder."""
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))


def _summary(path: Path) -> str:
    """First line of a script's docstring."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    except SyntaxError:
        return ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _parse_dict(text: str) -> dict[str, Any] | None:
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, dict):
            return value
    return None


def results(output: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, values) of every dict printed on one line, or of the whole output as JSON."""
    whole = _parse_dict(output.strip()) if output.strip().startswith("{") else None
    if whole is not None:
        return [("", whole)]
    found = []
    for line in output.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        parsed = _parse_dict(line[start:].strip())
        if parsed is not None:
            found.append((line[:start].strip(), parsed))
    return found


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def table(rows: list[tuple[str, str, Any]]) -> str:
    """A markdown table of (result, metric, value) rows."""
    lines = ["| result | metric | value |", "|---|---|---|"]
    lines += [f"| {label} | {metric} | {value} |" for label, metric, value in rows]
    return "\n".join(lines)


def run(name: str, args: list[str]) -> int:
    """Run one benchmark, echo its output, then print the table; returns its exit status."""
    script = HERE / f"{name}.py"
    start = time.perf_counter()
    # the repository root on the path, so a benchmark may import its siblings (``benchmarks.api``)
    path = os.pathsep.join(p for p in (str(HERE.parent), os.environ.get("PYTHONPATH")) if p)
    process = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert process.stdout is not None
    captured = []
    for line in process.stdout:
        sys.stdout.write(line)
        captured.append(line)
    status = process.wait()
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows: list[tuple[str, str, Any]] = [
        (name, "exit status", status),
        (name, "wall time (s)", round(wall, 2)),
        (name, "peak RSS of the largest process (MiB)", round(peak, 1)),
    ]
    for label, values in results("".join(captured)):
        rows += [(label or name, metric, value) for metric, value in _flat(values).items()]
    print()
    print(table(rows))
    return status


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "--list"):
        print(__doc__.strip().splitlines()[0] if argv[:1] != ["--list"] else "benchmarks:")
        for name in names():
            print(f"  {name:18s} {_summary(HERE / f'{name}.py')}")
        return 0
    name, args = argv[0], argv[1:]
    if name not in names():
        print(f"unknown benchmark {name!r}; one of: {', '.join(names())}", file=sys.stderr)
        return 2
    return run(name, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
