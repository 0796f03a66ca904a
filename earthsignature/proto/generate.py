"""Regenerate the Python stubs: ``python -m earthsignature.proto.generate``.

Runs grpc_tools.protoc (the installed grpcio-tools, extra ``proto``) with this directory as
the import root, so the descriptors keep the contract's file names
(``snapearth/api/v1/database.proto``, ``geobufproto/geobuf.proto``...) and the generated
modules sit beside their sources. protoc writes imports by proto path
(``from geobufproto import geobuf_pb2``); :func:`make_relative` rewrites them to
package-relative imports (``from ....geobufproto import geobuf_pb2``), so the generated code
lives inside ``earthsignature.proto`` and nothing is put on ``sys.path``. Every directory
holding generated code gets an empty ``__init__.py``. The output depends only on the sources
and the grpcio-tools version.
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
MESSAGES_ONLY = ("geobufproto/geobuf.proto",)
SERVICES = (
    # R2, the final module (packages snapearth.api.v1 / snapearth.api.v2)
    "snapearth/api/v1/database.proto",
    "snapearth/api/v2/database.proto",
    # R1, June 2022 (packages snapearth.api.v1.database / snapearth.api.v2.database)
    "snapearth/api/v1/database/database.proto",
    "snapearth/api/v2/database/database.proto",
    "earthsig/stats/v1/stats.proto",
)

#: Top-level proto packages generated here (imports of anything else, e.g. google.protobuf,
#: stay absolute).
LOCAL_ROOTS = ("geobufproto", "snapearth", "earthsig")

_ROOTS = "|".join(LOCAL_ROOTS)
_IMPORT = re.compile(
    rf"^(?P<indent>\s*)from (?P<module>(?:{_ROOTS})(?:\.\w+)*) import (?P<rest>.+)$",
    re.MULTILINE,
)


def make_relative(text: str, module_dir: Path, root: Path = PROTO_ROOT) -> str:
    """Rewrite ``from <local proto package> import x`` lines to package-relative imports."""
    depth = len(module_dir.relative_to(root).parts)

    def replace(match: re.Match[str]) -> str:
        dots = "." * (depth + 1)
        return f"{match['indent']}from {dots}{match['module']} import {match['rest']}"

    return _IMPORT.sub(replace, text)


def generated_files(root: Path = PROTO_ROOT) -> list[Path]:
    """The generated modules under ``root`` (not the hand-written ones)."""
    return sorted(
        path
        for pattern in ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")
        for path in root.rglob(pattern)
    )


def generate(root: Path = PROTO_ROOT) -> None:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py next to each source under ``root``."""
    from grpc_tools import protoc

    for stale in generated_files(root):
        stale.unlink()
    well_known = str(resources.files("grpc_tools") / "_proto")
    common = [
        "grpc_tools.protoc",
        f"--proto_path={root}",
        f"--proto_path={well_known}",
        f"--python_out={root}",
        f"--pyi_out={root}",
    ]
    for args in (
        [*common, *MESSAGES_ONLY],
        [*common, f"--grpc_python_out={root}", *SERVICES],
    ):
        status = protoc.main(args)
        if status != 0:
            raise SystemExit(f"protoc failed with status {status}")
    for path in generated_files(root):
        path.write_text(make_relative(path.read_text(), path.parent, root))
        directory = path.parent
        while directory != root:
            init = directory / "__init__.py"
            if not init.exists():
                init.write_text("")
            directory = directory.parent


if __name__ == "__main__":
    generate()
    sys.exit(0)
