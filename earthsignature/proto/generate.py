"""Regenerate the Python stubs: ``python -m earthsignature.proto.generate``.

Runs grpc_tools.protoc (the installed grpcio-tools, extra ``proto``) with this directory as
the import root, so the descriptors keep the contract's file names
(``snapearth/api/v1/database.proto``...) and the generated modules sit beside their sources.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
MESSAGES_ONLY = ("geobufproto/geobuf.proto",)
SERVICES = (
    "snapearth/api/v1/database.proto",
    "snapearth/api/v2/database.proto",
    "earthsig/stats/v1/stats.proto",
)


def generate() -> None:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py next to each source."""
    from grpc_tools import protoc

    well_known = str(resources.files("grpc_tools") / "_proto")
    common = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={PROTO_ROOT}",
        f"--pyi_out={PROTO_ROOT}",
    ]
    for args in (
        [*common, *MESSAGES_ONLY],
        [*common, f"--grpc_python_out={PROTO_ROOT}", *SERVICES],
    ):
        status = protoc.main(args)
        if status != 0:
            raise SystemExit(f"protoc failed with status {status}")


if __name__ == "__main__":
    generate()
    sys.exit(0)
