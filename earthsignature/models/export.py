"""Export a trained network to ONNX (dynamic batch, height and width; uint8 class output)."""

from __future__ import annotations

from pathlib import Path

from earthsignature.models.spec import INPUT_NAME, OUTPUT_NAME


def export_onnx(net, n_bands: int, path: Path, *, chip_size: int = 64) -> None:  # type: ignore[no-untyped-def]
    """Write ``net`` (logits) wrapped in argmax -> uint8 to ``path`` (opset 18)."""
    import torch

    from earthsignature.models.unet import ClassMap

    model = ClassMap(net).eval()
    example = torch.zeros(1, n_bands, chip_size, chip_size)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "N", 2: "H", 3: "W"}, OUTPUT_NAME: {0: "N", 1: "H", 2: "W"}},
        opset_version=18,
        dynamo=False,
    )
