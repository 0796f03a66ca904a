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

Classes no patch carries (sand 331, bare rock 332, sparse vegetation 333, snow 335 and river
511, which takes the water pool) keep the hand-written spectrum. The library only feeds the
generator; no model is tuned on it. BigEarthNet (Sumbul et al. 2019; Clasen et al. 2024),
TU Berlin, is distributed under the Community Data License Agreement - Permissive 1.0.
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
CREDIT = "BigEarthNet (TU Berlin), CDLA-Permissive-1.0"
WATER = 512
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


def _label(code: int) -> int:
    return WATER if code // 10 == 52 or code == 511 else code


def _prototype(code: int) -> NDArray[np.float32]:
    sources = (code,) if code in CLASSES else _SEED_PROTOTYPES.get(code, (333,))
    return REFLECTANCE[[CLASSES.index(c) for c in sources]].mean(axis=0)


def assign(pixels: NDArray[np.float32], labels: tuple[int, ...]) -> NDArray[np.int64]:
    """Rules 2-4 for one patch's ``[n, 12]`` pixels: the index into ``labels`` of each pixel's
    class, or -1 where the pixel is left out."""
    table = np.stack([_prototype(c) for c in labels])
    pick = np.argmin(((pixels[:, None, :] - table[None]) ** 2).sum(axis=2), axis=1)
    nearest = np.argmin(((pixels[:, None, :] - REFLECTANCE[None]) ** 2).sum(axis=2), axis=1)
    level1 = np.array([c // 100 for c in labels])[pick]
    same = level1 == (np.array(CLASSES) // 100)[nearest]
    return np.where(same, pick, -1)


def build(
    root: Path | None, out: Path, per_class: int = PER_CLASS, seed: int = 0
) -> dict[str, Any]:
    """Sample the library from configilm's BigEarthNet patches into ``out``; returns its
    provenance record (also stored in the file)."""
    from earthsignature.models import bigearthnet

    band_ids = [b.id for b in BANDS]
    patches = [p for p in bigearthnet.patches(band_ids, root) if not p.disturbed]
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
    provenance = {
        "source": "BigEarthNet v1/v2 samples of configilm==0.7.1 (clear patches)",
        "credit": CREDIT,
        "licence": "CDLA-Permissive-1.0",
        "bands": band_ids,
        "scale": 1e-4,
        "per_class": per_class,
        "seed": seed,
        "rule": "a pixel takes the nearest (hand-written prototype) of its patch's labels, kept if "
        "the nearest prototype overall has the same CORINE level 1; see "
        "earthsignature.generator.library",
        "patches_per_class": sources,
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
    spectra, real = [], []
    for k, code in enumerate(CLASSES):
        key = f"c{WATER if code == RIVER else code}"
        if key in stored:
            spectra.append(stored[key].astype(np.float32) * np.float32(1e-4))
            real.append(True)
        else:
            spectra.append(REFLECTANCE[k][None, :].copy())
            real.append(False)
    return Library(spectra=tuple(spectra), real=tuple(real))


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
