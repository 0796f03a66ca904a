"""Real labelled Sentinel-2 L2A patches: the BigEarthNet v1 and v2 samples that PyPI
``configilm==0.7.1`` ships under ``configilm/extra/mock_data`` (readers: extra "eval").

configilm itself depends on torch, timm and transformers; only its data is used here, so it is
never installed as a dependency. :func:`mock_data` finds the samples in, in this order: the
folder or wheel named by ``EARTHSIG_BIGEARTHNET`` (``pip download --no-deps configilm==0.7.1
-d DIR`` gives the wheel; its BigEarthNet folders are unpacked once into a cache beside it), an
installed ``configilm`` (``pip install --no-deps configilm==0.7.1``).

BigEarthNet (Sumbul et al. 2019; Clasen et al. 2024, reBEN) is distributed under the Community
Data License Agreement - Permissive 1.0 (CDLA-Permissive-1.0); "BigEarthNet, TU Berlin" must be
credited in anything built from it. Each patch is 1.2 x 1.2 km (120 x 120 px at 10 m; 20 m bands
60 x 60, 60 m bands 20 x 20) with the CORINE Land Cover 2018 classes present on it:

* v1: the 43 level-3 class names (``labels``); the patches in configilm's train/val/test lists
  are the official splits, which exclude every patch with seasonal snow, cloud or shadow.
* v2: the 19-class nomenclature (groups of level-3 codes, :data:`BEN19`); configilm also ships
  the list of v2 patches with snow, cloud or shadow, reported apart.

Georeference (for the ``sea`` post-processing): a patch name ends ``_<col>_<row>``, its index on
the 120 px grid of its Sentinel-2 tile, so its upper-left corner is the tile's plus
``(1200 col, -1200 row)`` metres (checked on the georeferenced example patches bigearthnet-common
2.8.0 ships: within ESA's 60 m tile-origin tolerance, :mod:`earthsignature.mgrs`). v2
names carry the tile (``_T33UUP_``); v1 names do not, so :data:`V1_TILES` lists the tile of each
v1 patch in configilm's lists, taken from BigEarthNet's S1/S2 name table (the S1 name holds the
tile) as bigearthnet-common 2.8.0 ships it (``s1_s2_name_country_season.csv.bz2``)::

    pip download --no-deps bigearthnet-common==2.8.0 -d DIR
    unzip -p DIR/bigearthnet_common-2.8.0-py3-none-any.whl \
        bigearthnet_common/s1_s2_name_country_season.csv.bz2 | bzcat \
        | grep -F -f <(cut -d, -f1 configilm's BENv1/{train,val,test}.csv) \
        | awk -F, '{split($1, s, "_"); print $2 "," s[6]}' | sort

Patches of other v1 names get no georeference (the sea rule is then not applied to them).

Reflectance = DN x 1e-4 for both: v1 was processed with sen2cor 2.5.5 (no offset), and the v2
samples carry none either (their darkest pixels are DN 70-90; with the 04.00 offset of -1000
they would be negative), so :data:`V2_OFFSET` is 0.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import pickle
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.transform import Affine
from scipy import ndimage

from earthsignature import corine
from earthsignature.mgrs import tile_grid

CREDIT = "BigEarthNet (TU Berlin), CDLA-Permissive-1.0"
V2_OFFSET = 0.0
SIZE = 120
#: The 19-class nomenclature of BigEarthNet v2 -> the CORINE level-3 codes each class groups.
BEN19: dict[str, frozenset[int]] = {
    "Urban fabric": frozenset({111, 112}),
    "Industrial or commercial units": frozenset({121}),
    "Arable land": frozenset({211, 212, 213}),
    "Permanent crops": frozenset({221, 222, 223, 241}),
    "Pastures": frozenset({231}),
    "Complex cultivation patterns": frozenset({242}),
    "Land principally occupied by agriculture, with significant areas of natural vegetation": (
        frozenset({243})
    ),
    "Agro-forestry areas": frozenset({244}),
    "Broad-leaved forest": frozenset({311}),
    "Coniferous forest": frozenset({312}),
    "Mixed forest": frozenset({313}),
    "Natural grassland and sparsely vegetated areas": frozenset({321, 333}),
    "Moors, heathland and sclerophyllous vegetation": frozenset({322, 323}),
    "Transitional woodland, shrub": frozenset({324}),
    "Beaches, dunes, sands": frozenset({331}),
    "Inland wetlands": frozenset({411, 412}),
    "Coastal wetlands": frozenset({421, 422}),
    "Inland waters": frozenset({511, 512}),
    "Marine waters": frozenset({521, 522, 523}),
}


@dataclass(frozen=True)
class Patch:
    """One labelled patch: reflectance ``[bands, 120, 120]`` (0..1, offset removed) in the
    requested band order, and the CORINE level-3 codes its labels stand for."""

    name: str
    dataset: str
    reflectance: np.ndarray
    labels: frozenset[int]
    disturbed: bool  # seasonal snow, cloud or cloud shadow
    crs: str | None = None  # georeference of the 10 m grid, when the name tells it
    transform: Affine | None = None


class _Record:
    """Stands in for BigEarthNet's pydantic-v1 patch classes when unpickling v1 patches."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state.get("__dict__", state))


class _PatchUnpickler(pickle.Unpickler):
    """v1 patches are pickles of ``bigearthnet_patch_interface`` objects (pydantic v1, which
    clashes with this project's pydantic 2): rebuild them as :class:`_Record` and allow nothing
    else but numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("bigearthnet_patch_interface."):
            return _Record
        if (module, name) in {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }:
            return super().find_class(module.replace("numpy.core", "numpy._core"), name)
        raise pickle.UnpicklingError(f"unexpected object in a BigEarthNet patch: {module}.{name}")


def _load_v1(data: bytes) -> Any:
    return _PatchUnpickler(io.BytesIO(data)).load()


def _key(label: str) -> str:
    return re.sub(r"[^a-z]", "", label.lower())


_CODE_OF_NAME = {_key(c.label): c.code for c in corine.CLASSES.values()}


def code_of_name(label: str) -> int:
    """A CORINE level-3 class name (as BigEarthNet v1 spells it) -> its code."""
    try:
        return _CODE_OF_NAME[_key(label)]
    except KeyError:
        raise ValueError(f"not a CORINE level-3 class name: {label!r}") from None


ENV = "EARTHSIG_BIGEARTHNET"
_MEMBER = "configilm/extra/mock_data/"


def _unpack(wheel: Path) -> Path:
    """The BigEarthNet folders of a configilm wheel, unpacked once beside it."""
    target = wheel.with_name(wheel.stem + "-bigearthnet")
    done = target / ".complete"
    if not done.is_file():
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.startswith((_MEMBER + "BENv1/", _MEMBER + "BENv2/")):
                    archive.extract(member, target)
        done.touch()
    return target / _MEMBER


def mock_data() -> Path:
    """configilm's sample folder (see the module docstring); FileNotFoundError saying how to
    get it when there is none."""
    configured = os.environ.get(ENV)
    if configured:
        path = Path(configured)
        if path.is_file() and path.suffix == ".whl":
            return _unpack(path)
        wheels = sorted(path.glob("configilm-*.whl")) if path.is_dir() else []
        if wheels:
            return _unpack(wheels[-1])
        if (path / "BENv1").is_dir() or (path / "BENv2").is_dir():
            return path
        if (path / _MEMBER).is_dir():
            return path / _MEMBER
        raise FileNotFoundError(f"{ENV}={configured} holds no configilm wheel or BigEarthNet data")
    try:
        return Path(str(resources.files("configilm"))) / "extra" / "mock_data"
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"no BigEarthNet samples: pip download --no-deps configilm==0.7.1 -d DIR and set "
            f"{ENV}=DIR (or pip install --no-deps configilm==0.7.1)"
        ) from None


#: v1 patch name -> its Sentinel-2 tile (see the module docstring).
V1_TILES = Path(__file__).with_name("bigearthnet_v1_tiles.csv")
_V2_NAME = re.compile(r"_T(?P<tile>\d{2}[A-Z]{3})_(?P<col>\d+)_(?P<row>\d+)$")
_INDEX = re.compile(r"_(?P<col>\d+)_(?P<row>\d+)$")


@functools.cache
def _v1_tiles() -> dict[str, str]:
    with open(V1_TILES, newline="") as handle:
        return {row["s2_name"]: row["tile"] for row in csv.DictReader(handle)}


def georeference(name: str) -> tuple[str, Affine] | None:
    """CRS and transform of a patch's 10 m grid from its name (v2, or v1 listed in
    :data:`V1_TILES`); None when the name does not tell."""
    match = _V2_NAME.search(name)
    tile = match["tile"] if match else _v1_tiles().get(name)
    index = match or _INDEX.search(name)
    if tile is None or index is None:
        return None
    grid = tile_grid(tile)
    side = SIZE * 10
    x0 = grid.ulx + side * int(index["col"])
    y0 = grid.uly - side * int(index["row"])
    return f"EPSG:{grid.epsg}", Affine(10.0, 0.0, x0, 0.0, -10.0, y0)


def _patch(
    name: str, dataset: str, reflectance: np.ndarray, labels: frozenset[int], disturbed: bool
) -> Patch:
    geo = georeference(name)
    crs, transform = geo if geo is not None else (None, None)
    return Patch(name, dataset, reflectance, labels, disturbed, crs, transform)


def _to_grid(band: np.ndarray) -> np.ndarray:
    """A band at 10, 20 or 60 m -> the 120 x 120 10 m grid (bilinear, edges held)."""
    band = np.asarray(band, dtype=np.float32)
    if band.shape == (SIZE, SIZE):
        return band
    zoom = SIZE / band.shape[0]
    return ndimage.zoom(band, zoom, order=1, mode="nearest", grid_mode=True)


def _stack(arrays: dict[str, Any], bands: list[str], offset: float) -> np.ndarray:
    return np.stack([_to_grid(arrays[b]) * np.float32(1e-4) + np.float32(offset) for b in bands])


def v1_patches(bands: list[str], root: Path | None = None) -> Iterator[Patch]:
    """The BigEarthNet v1 patches of configilm's train/val/test lists (all clear)."""
    import lmdb

    folder = (root or mock_data()) / "BENv1"
    names: list[str] = []
    for split in ("train", "val", "test"):
        with open(folder / f"{split}.csv", newline="") as handle:
            names += [row[0] for row in csv.reader(handle) if row]
    env = lmdb.open(str(folder / "BigEarthNetEncoded.lmdb"), readonly=True, lock=False)
    try:
        with env.begin(write=False) as txn:
            for name in sorted(set(names)):
                data = txn.get(name.encode())
                if data is None:
                    continue
                patch = _load_v1(bytes(data))
                s2 = patch.s2_patch
                arrays = {b: getattr(s2, f"band{b[1:]}").data for b in bands}
                yield _patch(
                    name,
                    "BigEarthNet v1",
                    _stack(arrays, bands, 0.0),
                    frozenset(code_of_name(label) for label in patch.labels),
                    False,
                )
    finally:
        env.close()


def v2_patches(bands: list[str], root: Path | None = None) -> Iterator[Patch]:
    """The BigEarthNet v2 patches, with the snow/cloud/shadow ones flagged ``disturbed``."""
    import lmdb
    import pyarrow.parquet as pq
    from safetensors.numpy import load

    folder = (root or mock_data()) / "BENv2"
    clear = pq.read_table(folder / "metadata.parquet").to_pylist()
    disturbed = pq.read_table(
        folder / "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
    ).to_pylist()
    rows = [(r, False) for r in clear] + [(r, True) for r in disturbed]
    env = lmdb.open(str(folder / "BigEarthNet-V2-LMDB"), readonly=True, lock=False)
    try:
        with env.begin(write=False) as txn:
            for row, is_disturbed in sorted(rows, key=lambda item: str(item[0]["patch_id"])):
                data = txn.get(str(row["patch_id"]).encode())
                if data is None:
                    continue
                arrays = load(bytes(data))
                labels = frozenset().union(*(BEN19[str(label)] for label in row["labels"]))
                yield _patch(
                    str(row["patch_id"]),
                    "BigEarthNet v2",
                    _stack(arrays, bands, V2_OFFSET),
                    labels,
                    is_disturbed,
                )
    finally:
        env.close()


def patches(bands: list[str], root: Path | None = None) -> list[Patch]:
    """Every BigEarthNet patch configilm ships (v1 then v2), in ``bands`` order."""
    return [*v1_patches(bands, root), *v2_patches(bands, root)]
