"""Protocol Buffers sources of the SnapEarth API and their generated Python code.

The generated modules import each other by the contract's proto paths (``geobufproto``,
``snapearth.api.v1``), so this directory is put on ``sys.path`` once, here; import them as
``from earthsignature.proto.stubs import v1_pb2`` etc. Regenerate with
``python -m earthsignature.proto.generate``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
