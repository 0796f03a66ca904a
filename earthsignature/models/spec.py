"""What the pipeline needs to know about a model besides its ONNX graph.

Stored as ``<repo>/<name>/<version>/earthsig.json`` beside ``model.onnx`` (per version: a
new version may change bands, normalisation or classes). The ONNX graph takes ``input``
float32 ``[N, len(bands), H, W]`` (normalised reflectance) and returns ``classes`` uint8
``[N, H, W]``: indices into :attr:`ModelSpec.classes`, so class maps, not logits, cross the wire.
A model may also return ``confidence`` uint8 ``[N, H, W]``: the winning class's softmax
probability in percent (0..100), when :attr:`ModelSpec.outputs` declares it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from earthsignature import corine

METADATA_FILE = "earthsig.json"
#: What a model's class indices mean: CORINE land cover, or a cloud mask (see CLOUD_CLASSES).
ModelKind = Literal["landcover", "cloudmask"]
#: The classes of a ``cloudmask`` model, in index order: 0 clear, 1 cloud, 2 cloud shadow.
CLOUD_CLASSES = (0, 1, 2)
INPUT_NAME = "input"
OUTPUT_NAME = "classes"
CONFIDENCE_NAME = "confidence"
#: What the ``sea`` post-processing step writes (CORINE 523, sea and ocean).
SEA_CODE = 523
CANONICAL_BANDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B11",
    "B12",
)


class ModelSpec(BaseModel):
    """Bands, normalisation, chip geometry and classes of one model version."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True)

    name: str
    version: int = Field(ge=1)
    description: str = ""
    bands: list[str] = Field(description="Canonical ESA band ids, in input channel order.")
    mean: list[float] = Field(description="Per band, subtracted from reflectance (0..1).")
    std: list[float] = Field(description="Per band, divides (reflectance - mean).")
    chip_size: int = Field(ge=16, description="Side of the square chips the model is run on.")
    receptive_field: int = Field(ge=1, description="Pixels one output pixel depends on (side).")
    stride_multiple: int = Field(
        default=1, ge=1, description="Chip origins must be multiples of this (2**pooling levels)."
    )
    kind: ModelKind = Field(
        default="landcover",
        description="landcover: classes are CORINE codes; cloudmask: classes are CLOUD_CLASSES.",
    )
    classes: list[int] = Field(description="Output index -> CORINE level-3 code (landcover).")
    max_batch_size: int = Field(default=16, ge=1)
    source: dict[str, str] = Field(
        default_factory=dict,
        description="Where an imported model came from (package, version, sha256, licence).",
    )
    outputs: list[str] = Field(
        default_factory=lambda: [OUTPUT_NAME],
        description="Graph outputs: 'classes' always, optionally 'confidence' (uint8, "
        "winning-class softmax probability in percent).",
    )
    credit: str = Field(
        default="",
        description="Attribution the model's licence asks for; copied into outputs' metadata.",
    )
    postprocess: list[Literal["sea"]] = Field(
        default_factory=list,
        description="Steps applied to the code raster once its georeference is known: 'sea' "
        "turns inland water (511, 512) outside the land polygons into 523 (models/seamask.py).",
    )
    reliable_level: dict[int, int] = Field(
        default_factory=dict,
        description="Output CORINE code -> the CORINE level (1, 2 or 3) at which the model's "
        "reading of that class is reliable; codes not listed are trusted at level 3.",
    )

    @field_validator("bands")
    @classmethod
    def _bands(cls, value: list[str]) -> list[str]:
        unknown = [b for b in value if b not in CANONICAL_BANDS]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(f"bands must be distinct ESA ids {CANONICAL_BANDS}, got {value}")
        return value

    @model_validator(mode="after")
    def _classes(self) -> ModelSpec:
        if self.kind == "cloudmask":
            if tuple(self.classes) != CLOUD_CLASSES:
                raise ValueError(f"a cloudmask model's classes must be {list(CLOUD_CLASSES)}")
            return self
        bad = [c for c in self.classes if not corine.is_code(c)]
        if bad or not self.classes or len(self.classes) > 255:
            raise ValueError(f"classes must be 1..255 CORINE level-3 codes, bad: {bad}")
        return self

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: list[str]) -> list[str]:
        allowed = (OUTPUT_NAME, CONFIDENCE_NAME)
        if not value or value[0] != OUTPUT_NAME:
            raise ValueError(f"outputs must start with {OUTPUT_NAME!r}, got {value}")
        if any(v not in allowed for v in value) or len(set(value)) != len(value):
            raise ValueError(f"outputs must be distinct names out of {allowed}, got {value}")
        return value

    @field_validator("reliable_level")
    @classmethod
    def _reliable_level(cls, value: dict[int, int]) -> dict[int, int]:
        bad = {c: lv for c, lv in value.items() if not corine.is_code(c) or lv not in (1, 2, 3)}
        if bad:
            raise ValueError(f"reliable_level maps CORINE codes to levels 1..3, bad: {bad}")
        return value

    @model_validator(mode="after")
    def _geometry(self) -> ModelSpec:
        if len(self.mean) != len(self.bands) or len(self.std) != len(self.bands):
            raise ValueError("mean and std need one value per band")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        if self.chip_size % self.stride_multiple:
            raise ValueError("chip_size must be a multiple of stride_multiple")
        if self.step <= 0:
            raise ValueError(f"chip_size {self.chip_size} leaves no centre after margins")
        if set(self.reliable_level) - set(self.output_codes):
            raise ValueError("reliable_level lists codes the model does not output")
        return self

    @property
    def margin(self) -> int:
        """Pixels dropped on each side of a chip: half the receptive field, rounded up to
        :attr:`stride_multiple`, so kept centres never see the chip border."""
        half = self.receptive_field // 2
        return math.ceil(half / self.stride_multiple) * self.stride_multiple

    @property
    def output_codes(self) -> list[int]:
        """Every CORINE code the model's maps can hold: its classes, then what its
        post-processing adds (523 for ``sea``)."""
        extra = [SEA_CODE] if "sea" in self.postprocess and SEA_CODE not in self.classes else []
        return [*self.classes, *extra]

    @property
    def has_confidence(self) -> bool:
        """Whether the graph also returns the per-pixel ``confidence`` map."""
        return CONFIDENCE_NAME in self.outputs

    @property
    def step(self) -> int:
        """Distance between chip origins (chips overlap by ``2 * margin``)."""
        return self.chip_size - 2 * self.margin

    def normalise(self, reflectance: np.ndarray) -> np.ndarray:
        """``(reflectance - mean) / std`` per band; reflectance is ``[bands, H, W]``."""
        out = reflectance.astype(np.float32)
        for index in range(len(out)):
            self.normalise_band(index, out[index])
        return out

    def normalise_band(self, index: int, values: np.ndarray) -> np.ndarray:
        """In place: ``(values - mean) / std`` of band ``index`` (float32 ``values``)."""
        values -= np.float32(self.mean[index])
        values /= np.float32(self.std[index])
        return values

    def code_lut(self) -> np.ndarray:
        """uint16 lookup table: class index -> CORINE code (256 entries, unused ones 0)."""
        lut = np.zeros(256, dtype=np.uint16)
        lut[: len(self.classes)] = self.classes
        return lut

    def legend(self) -> list[corine.ClcClass]:
        """The CORINE classes this model can output, in index order."""
        return [corine.clc_class(code) for code in self.classes]
