"""A small U-Net (PyTorch; import this module only where torch is installed: extra "train").

Fully convolutional, ``depth`` 2x2 poolings (so chip origins must be multiples of
``2**depth``), ``width`` channels at the top level. The exported ONNX graph ends in argmax and
a cast to uint8, so servers return class maps.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )  # fmt: skip


class UNet(nn.Module):
    """Encoder-decoder with skip connections; logits ``[N, classes, H, W]``."""

    def __init__(
        self, in_channels: int, n_classes: int, *, width: int = 16, depth: int = 2
    ) -> None:
        super().__init__()
        self.depth = depth
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, chans[0])])
        self.down.extend(_block(chans[i], chans[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(_block(2 * chans[i], chans[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)  # type: ignore[no-any-return]

    def receptive_field(self) -> int:
        """Side of the receptive field: two 3x3 convs per level, doubled per pooling."""
        rf, jump = 1, 1
        for _level in range(self.depth + 1):
            rf += 4 * jump
            jump *= 2
        jump //= 2
        for _level in range(self.depth):
            jump //= 2
            rf += 4 * jump + jump
        return rf


class ClassMap(nn.Module):
    """Wraps a network so its output is uint8 class indices (what crosses the wire)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).argmax(dim=1).to(torch.uint8)
