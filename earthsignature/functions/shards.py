"""Shard and prediction files under ``work/``: ``.npz`` archives (float chips stored, the rest
deflated).

A shard holds consecutive chips (row-major) of one product: ``chips`` float16 normalised input
``[N, bands, C, C]``, ``valid`` bool ``[N, C, C]`` and ``origins`` int32 ``[N, 2]`` (row, col of
each chip's top-left pixel). A prediction holds only what stitch keeps: ``classes`` uint8
``[N, step, step]``
(chip centres), ``valid`` bool of the same shape, ``origins`` of the centres and, for models
with a confidence output, ``confidence`` uint8 (0..100 %) of the same shape as ``classes``.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from earthsignature.functions.messages import ProductMessage


def shard_key(msg: ProductMessage, index: int) -> str:
    """``work/<product_id>/<run>/shards/00003.npz``"""
    return f"{msg.work_prefix}shards/{index:05d}.npz"


def prediction_key(msg: ProductMessage, index: int) -> str:
    """``work/<product_id>/<run>/pred/00003.npz``"""
    return f"{msg.work_prefix}pred/{index:05d}.npz"


def encode(arrays: dict[str, np.ndarray], level: int = 1) -> bytes:
    """An .npz archive: integer and boolean arrays DEFLATE at a fast level (shards are written
    once and read once), floating-point arrays stored as they are (see :func:`write`)."""
    buffer = io.BytesIO()
    write(buffer, arrays, level)
    return buffer.getvalue()


def write(target: Path | BinaryIO, arrays: dict[str, np.ndarray], level: int = 1) -> None:
    """:func:`encode` into a file (no copy of the archive in memory).

    Floating-point members (the chips) are stored uncompressed: normalised float16
    reflectance deflates by only ~1.33x, at ~30 MB/s of CPU, which was ~40 % of split's CPU on
    a full tile (BENCHMARKS.md, issue 19 item 4); masks and class maps deflate well."""
    floating = {n: a for n, a in arrays.items() if np.issubdtype(a.dtype, np.floating)}
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        _add(archive, {n: a for n, a in arrays.items() if n not in floating})
    if floating:  # appended to the same archive, stored
        if not isinstance(target, Path):
            target.seek(0)
        with zipfile.ZipFile(target, "a", zipfile.ZIP_STORED) as archive:
            _add(archive, floating)


def _add(archive: zipfile.ZipFile, arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def decode(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an archive written by :func:`encode`."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
