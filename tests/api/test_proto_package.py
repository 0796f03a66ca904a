"""The generated code: reproducible from the sources, importable without touching sys.path."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from earthsignature.proto import generate

PROTO_ROOT = generate.PROTO_ROOT


def test_committed_code_is_what_the_generator_writes(tmp_path: Path) -> None:
    for source in PROTO_ROOT.rglob("*.proto"):
        target = tmp_path / source.relative_to(PROTO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    generate.generate(tmp_path)
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in generate.generated_files(tmp_path)}
    committed = {p.relative_to(PROTO_ROOT): p.read_bytes() for p in generate.generated_files()}
    assert sorted(fresh) == sorted(committed)
    stale = [str(name) for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"regenerate with python -m earthsignature.proto.generate: {stale}"


def test_stubs_import_inside_the_package_only() -> None:
    script = (
        "import sys; before = list(sys.path)\n"
        "from earthsignature.proto import stubs\n"
        "assert sys.path == before, 'sys.path changed'\n"
        "top = {name.split('.')[0] for name in sys.modules}\n"
        "assert not top & {'snapearth', 'geobufproto', 'earthsig'}, top\n"
        "print(stubs.v1_pb2.DESCRIPTOR.name, stubs.r2_v1_pb2.DESCRIPTOR.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "snapearth/api/v1/database/database.proto",
        "snapearth/api/v1/database.proto",
    ]
