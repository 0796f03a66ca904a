"""The JSON message that travels between stages.

One product moves through the stages as one message; each stage fills the fields it
produces and hands the message on. Messages are small (keys and metadata, never pixels).

On the queue a message is its JSON (:meth:`ProductMessage.to_json`); ``item`` travels as
:meth:`~earthsignature.functions.stac.ProductRef.to_dict` and is validated back into a
ProductRef. Messages queued before ``item`` was typed carried that same dict, or ``{}`` for
"no product reference": both still load (``{}`` as None). A message whose item is not a whole
product reference (a hand-made partial dict) is refused with a ValidationError naming the
missing fields; the job records the product as failed with that reason
(:func:`earthsignature.queue.jobs.run_stage`), so nothing is lost silently.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from earthsignature.functions.errors import BadInput
from earthsignature.functions.haze import HazeFigure
from earthsignature.functions.stac import ProductRef
from earthsignature.storage import layout


class ProductGrid(BaseModel):
    """The product's pixel grid: split sets it, stitch writes on it, publish checks against it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crs: str = Field(description="CRS as GDAL reads it, e.g. EPSG:32629.")
    transform: list[float] = Field(description="Affine coefficients a, b, c, d, e, f.")
    width: int
    height: int


class ProductMessage(BaseModel):
    """Identity of a product in one pipeline run, plus what earlier stages produced."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    product_id: str
    date: str = Field(description="Acquisition date, YYYY-MM-DD (the partition date).")
    tile: str = Field(description="MGRS tile, e.g. 29RKH.")
    model: str
    version: int
    run: str = Field(description="Run id: names the work/ folder of this attempt.")
    item: ProductRef | None = Field(
        default=None,
        description="The product as its catalogue describes it (from discover, or the catalog "
        "record's source item on reprocessing); None for a product from no catalogue (an API "
        "upload's publish, a composite).",
    )
    bands: dict[str, str] = Field(
        default_factory=dict, description="Band name -> raw/ key, set by fetch."
    )
    cloud_mask: str | None = Field(default=None, description="masks/ key, set by cloud.")
    cloud_fraction: float | None = Field(
        default=None, description="Cloud percent of valid pixels in the AOI, set by cloud."
    )
    haze: HazeFigure | None = Field(
        default=None, description="Haze figure of the product (AOT, cirrus, blue), set by cloud."
    )
    n_shards: int | None = Field(default=None, description="Number of shards, set by split.")
    shard: int | None = Field(default=None, description="Shard index of an infer job.")
    grid: ProductGrid | None = Field(default=None, description="Product pixel grid, set by split.")
    created: str | None = Field(
        default=None,
        description="Segmentation time (ISO 8601) publish writes; fixed once per run so that "
        "re-publishing is byte-equal (else publish keeps the existing record's).",
    )
    bands_needed: list[str] | None = Field(
        default=None, description="Bands fetch copies (default: fetch.DEFAULT_BANDS)."
    )
    aoi_wkt: str | None = Field(
        default=None,
        description="The run's area of interest (WKT, EPSG:4326); None means the settings' area.",
    )

    @field_validator("item", mode="before")
    @classmethod
    def _item(cls, value: Any) -> Any:
        return None if isinstance(value, dict) and not value else value  # old "no item": {}

    @field_validator("product_id")
    @classmethod
    def _product_id(cls, value: str) -> str:
        return layout.product_id(value)

    @field_validator("date")
    @classmethod
    def _date(cls, value: str) -> str:
        return layout.acquisition_date(value).isoformat()

    @field_validator("tile")
    @classmethod
    def _tile(cls, value: str) -> str:
        return layout.tile_id(value)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return layout.model_name(value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        return layout.model_version(value)

    @field_validator("run")
    @classmethod
    def _run(cls, value: str) -> str:
        return layout.run_id(value)

    def product_ref(self) -> ProductRef:
        """The product reference stages read bands and their scales through; BadInput if the
        message has none (it did not come from discover)."""
        if self.item is None:
            raise BadInput(
                f"message of product {self.product_id} carries no product reference (item)"
            )
        return self.item

    @property
    def work_prefix(self) -> str:
        """This model version's scratch objects of the product in this run."""
        return layout.work_prefix(self.product_id, self.run, self.model, self.version)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
