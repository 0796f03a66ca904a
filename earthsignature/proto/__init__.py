"""Protocol Buffers sources of the SnapEarth API and their generated Python code.

Two revisions of the SnapEarth API are generated (see ``../shared/snapearth-api.md``): R2, the
final module (``snapearth/api/v1/database.proto``, ``snapearth/api/v2/database.proto``) and
R1, the June 2022 deployment (``snapearth/api/v1/database/database.proto`` ...). The generated
modules import each other package-relatively (see :mod:`.generate`); import them through
:mod:`earthsignature.proto.stubs`. Regenerate with ``python -m earthsignature.proto.generate``.
"""
