"""Train a small U-Net on (Sentinel-2 bands, CORINE label raster) pairs and register it.

Scenes are read onto the label grid (bilinear for reflectance), normalised with per-band mean
and std computed from the training data, and sampled as random chips. The result is exported
to ONNX and registered as the next version of a model in one call (:func:`train_and_register`).
torch is imported lazily (extra "train").
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from earthsignature.models.repository import ModelRepository
from earthsignature.models.spec import ModelSpec

log = logging.getLogger(__name__)
IGNORE = 255
DEFAULT_BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


@dataclass
class Scene:
    """One training pair on the label grid: reflectance ``[bands, H, W]``, codes ``[H, W]``."""

    reflectance: np.ndarray
    codes: np.ndarray


def load_scene(
    bands: dict[str, Path],
    label: Path,
    band_ids: list[str],
    *,
    scale: float = 1e-4,
    offset: float = 0.0,
) -> Scene:
    """Per-band GeoTIFFs (any native resolution) and a uint16 CORINE label GeoTIFF."""
    with rasterio.open(label) as ds:
        codes = ds.read(1).astype(np.uint16)
    shape = codes.shape
    layers = []
    for band in band_ids:
        with rasterio.open(bands[band]) as ds:
            dn = ds.read(1, out_shape=shape, resampling=Resampling.bilinear)
        layers.append(dn.astype(np.float32) * scale + offset)
    return Scene(np.stack(layers), codes)


def train_unet(
    scenes: list[Scene],
    band_ids: list[str],
    *,
    steps: int = 200,
    chip: int = 64,
    batch: int = 8,
    width: int = 16,
    depth: int = 2,
    lr: float = 3e-3,
    seed: int = 0,
):  # type: ignore[no-untyped-def]
    """Returns (net, metadata dict without name/version)."""
    import torch

    from earthsignature.models.unet import UNet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    classes = sorted({int(c) for s in scenes for c in np.unique(s.codes) if c != 0})
    lut = np.full(65536, IGNORE, dtype=np.int64)
    lut[classes] = np.arange(len(classes))
    stacked = np.concatenate([s.reflectance.reshape(len(band_ids), -1) for s in scenes], axis=1)
    mean, std = stacked.mean(axis=1), stacked.std(axis=1) + 1e-6
    net = UNet(len(band_ids), len(classes), width=width, depth=depth)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)
    net.train()
    for step in range(steps):
        xs, ys = [], []
        for _ in range(batch):
            scene = scenes[rng.integers(len(scenes))]
            h, w = scene.codes.shape
            y0, x0 = rng.integers(0, h - chip + 1), rng.integers(0, w - chip + 1)
            x = scene.reflectance[:, y0 : y0 + chip, x0 : x0 + chip]
            xs.append((x - mean[:, None, None]) / std[:, None, None])
            ys.append(lut[scene.codes[y0 : y0 + chip, x0 : x0 + chip]])
        logits = net(torch.from_numpy(np.stack(xs).astype(np.float32)))
        loss = loss_fn(logits, torch.from_numpy(np.stack(ys)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 20 == 0 or step == steps - 1:
            log.info("step %d loss %.4f", step, float(loss.detach()))
    net.eval()
    metadata = {
        "description": f"U-Net width {width} depth {depth}, {steps} steps",
        "bands": band_ids,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "chip_size": 256,
        "receptive_field": net.receptive_field(),
        "stride_multiple": 2**depth,
        "classes": classes,
        "max_batch_size": 16,
    }
    return net, metadata


def train_and_register(
    repository: ModelRepository,
    name: str,
    scenes: list[Scene],
    band_ids: list[str],
    **kwargs: object,
) -> ModelSpec:
    """Train, export to ONNX and register as the next version of ``name``."""
    from earthsignature.models.export import export_onnx

    net, metadata = train_unet(scenes, band_ids, **kwargs)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(net, len(band_ids), path)
        return repository.register(path, {**metadata, "name": name})
