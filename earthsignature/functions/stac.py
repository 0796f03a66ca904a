"""Typed product references from the STAC items of the supported Sentinel-2 L2A catalogues.

Catalogues name the same things differently: Earth Search v1 uses common-name asset keys
(``blue``, ``nir08``, ``scl``...) with ``raster:bands`` scale/offset and ``mgrs:*`` properties;
Earth Search v0 uses ``B02``... keys and ``sentinel:*`` properties; Planetary Computer uses
``B02``... keys with ``s2:mgrs_tile`` and ``s2:processing_baseline``. :func:`from_stac_item`
maps all of them to one :class:`ProductRef` with canonical ESA band ids and, for each band,
the scale and offset that turn its DN into reflectance (reflectance = DN x scale + offset).

Offsets: the catalogue's ``raster:bands`` scale/offset when given (Earth Search v1 states them,
whatever ``earthsearch:boa_offset_applied`` says); otherwise from the processing baseline:
from 04.00 on (25 January 2022) L2A DN carry ``BOA_ADD_OFFSET`` = -1000 (see
``MTD_MSIL2A.xml``), i.e. offset -0.1 with scale 1e-4; before, offset 0. Without a baseline,
the acquisition date decides.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

import pystac

from earthsignature.functions.errors import BadInput
from earthsignature.mgrs import parse_tile, utm_epsg
from earthsignature.storage import layout
from earthsignature.storage.errors import InvalidKey

#: Canonical ESA band ids (DESIGN.md) in ESA order.
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
SCL = "SCL"
#: Aerosol optical thickness (L2A auxiliary band: DN / 1000), read by the cloud stage for haze.
AOT = "AOT"
#: AOT's quantification value.
AOT_QUANTIFICATION_VALUE = 1000
#: Earth Search v1 common-name asset keys -> ESA band ids.
COMMON_NAMES = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "swir16": "B11",
    "swir22": "B12",
    "scl": SCL,
    "aot": AOT,
}
#: Native resolution (m) of each band.
RESOLUTION = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
    SCL: 20,
    AOT: 20,
}
QUANTIFICATION_VALUE = 10_000
DEFAULT_BOA_ADD_OFFSET = -1000
#: First day of processing baseline 04.00, for items that do not state their baseline.
BASELINE_0400_START = dt.datetime(2022, 1, 25, tzinfo=dt.UTC)

#: Longest item id quoted in an error message (ids of any length are refused, not echoed).
QUOTE_CHARS = 80

_BASELINE_IN_TEXT = re.compile(r"_N(\d{2})(\d{2})_")


@dataclass(frozen=True)
class AssetRef:
    """Where a band is and how its DN become reflectance (DN x scale + offset)."""

    href: str
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class ProductRef:
    """One Sentinel-2 L2A product, catalogue-independent (``item`` of a ProductMessage)."""

    id: str
    datetime: str
    tile: str
    footprint: dict[str, Any]
    cloud_cover: float | None
    processing_baseline: str | None
    platform: str | None
    product_type: str | None
    published: str | None
    assets: dict[str, AssetRef] = field(default_factory=dict)

    @property
    def date(self) -> str:
        """Acquisition date (UTC), the store's partition date."""
        return self.datetime[:10]

    def scale_offset(self, band: str) -> tuple[float, float]:
        """How ``band``'s DN become reflectance: its asset's scale and offset, else the
        defaults of the product's baseline (or date) as :func:`from_stac_item` fills them."""
        asset = self.assets.get(band)
        if asset is not None:
            return asset.scale, asset.offset
        return default_scale_offset(band, self.processing_baseline, _parse_datetime(self.datetime))

    def to_dict(self) -> dict[str, Any]:
        """The ``item`` dict of DESIGN.md (JSON-serialisable)."""
        out = asdict(self)
        out["assets"] = {band: asdict(ref) for band, ref in self.assets.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProductRef:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        fields["assets"] = {band: AssetRef(**ref) for band, ref in data.get("assets", {}).items()}
        return cls(**fields)


def band_id(asset_key: str) -> str | None:
    """Canonical band id of an asset key (``"nir08"`` or ``"B8A"`` -> ``"B8A"``), else None."""
    if asset_key in COMMON_NAMES:
        return COMMON_NAMES[asset_key]
    upper = asset_key.upper()
    return upper if upper in RESOLUTION else None


def baseline_has_offset(baseline: str) -> bool:
    """Whether L2A DN of this processing baseline carry BOA_ADD_OFFSET (from 04.00 on)."""
    return float(baseline) >= 4.0


def default_scale_offset(band: str, baseline: str | None, when: dt.datetime) -> tuple[float, float]:
    """Scale and offset when the catalogue states none: from the baseline, else the date."""
    if band == SCL:
        return 1.0, 0.0
    if band == AOT:
        return 1.0 / AOT_QUANTIFICATION_VALUE, 0.0
    has_offset = baseline_has_offset(baseline) if baseline else when >= BASELINE_0400_START
    offset = DEFAULT_BOA_ADD_OFFSET / QUANTIFICATION_VALUE if has_offset else 0.0
    return 1.0 / QUANTIFICATION_VALUE, offset


def boa_add_offsets(mtd_msil2a_xml: str | bytes) -> dict[int, int]:
    """``BOA_ADD_OFFSET`` per band id from an ``MTD_MSIL2A.xml`` ({} before baseline 04.00)."""
    root = ET.fromstring(mtd_msil2a_xml)
    return {
        int(el.attrib["band_id"]): int(float(el.text or 0))
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] == "BOA_ADD_OFFSET"
    }


def _parse_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _tile(item_id: str, props: dict[str, Any]) -> str | None:
    if "mgrs:utm_zone" in props and "mgrs:latitude_band" in props:
        zone = int(props["mgrs:utm_zone"])
        return f"{zone:02d}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"]).removeprefix("T")
    if str(props.get("grid:code", "")).startswith("MGRS-"):
        return str(props["grid:code"])[5:]
    for text in (props.get("sentinel:product_id"), props.get("s2:product_uri"), item_id):
        tile = layout.tile_in_text(str(text or ""))
        if tile:
            return tile
    return None


def _baseline(props: dict[str, Any]) -> str | None:
    for key in ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline"):
        if props.get(key):
            return f"{float(props[key]):05.2f}"
    for key in ("s2:product_uri", "sentinel:product_id", "s2:datatake_id"):
        match = _BASELINE_IN_TEXT.search(str(props.get(key) or "") + "_")
        if match:
            return f"{match[1]}.{match[2]}"
    return None


def quote_id(value: object) -> str:
    """An untrusted id for a message: ``repr`` (shows ``\\n``, ``\\x00``), cut when long."""
    text = repr(value)
    if len(text) <= QUOTE_CHARS:
        return text
    length = f" ({len(value)} chars)" if isinstance(value, str) else ""
    return f"{text[:QUOTE_CHARS]}...{length}"


def _epsg(value: Any) -> int | None:
    """An EPSG code from ``proj:epsg`` (int) or ``proj:code`` (``"EPSG:32629"``)."""
    if value is None:
        return None
    text = str(value).upper().removeprefix("EPSG:")
    return int(text) if text.isdigit() else None


def check_projection(data: dict[str, Any], item_id: str, tile: str) -> None:
    """Refuse items whose stated CRS (``proj:epsg``/``proj:code``, item or asset) is not
    the UTM zone of their MGRS tile: their rasters cannot be on the tile's grid."""
    zone, lat_band, _c, _r = parse_tile(tile)
    expected = utm_epsg(zone, lat_band)
    props = data.get("properties") or {}
    stated = [("item", props.get("proj:epsg", props.get("proj:code")))]
    for key, asset in (data.get("assets") or {}).items():
        if isinstance(asset, dict) and band_id(key) is not None:
            stated.append((f"asset {key}", asset.get("proj:epsg", asset.get("proj:code"))))
    for where, value in stated:
        epsg = _epsg(value)
        if value is not None and epsg != expected:
            raise BadInput(
                f"STAC item {item_id}: CRS mismatch, {where} says proj:epsg {value} but tile "
                f"{tile} is in EPSG:{expected}",
                item_id=item_id,
                stated=str(value),
                expected=expected,
            )


def _assets(raw: dict[str, Any], baseline: str | None, when: dt.datetime) -> dict[str, AssetRef]:
    assets: dict[str, AssetRef] = {}
    for key, asset in raw.items():
        band = band_id(key)
        href = asset.get("href")
        if band is None or not href:
            continue
        scale, offset = default_scale_offset(band, baseline, when)
        bands = asset.get("raster:bands") or []
        if bands and ("scale" in bands[0] or "offset" in bands[0]):
            scale = float(bands[0].get("scale", 1.0))
            offset = float(bands[0].get("offset", 0.0))
        assets[band] = AssetRef(href=str(href), scale=scale, offset=offset)
    return assets


def from_stac_item(item: dict[str, Any] | pystac.Item) -> ProductRef:
    """Map a STAC item of any supported catalogue to a ProductRef. Raises BadInput."""
    data = (
        item.to_dict(include_self_link=False, transform_hrefs=False)
        if isinstance(item, pystac.Item)
        else item
    )
    props: dict[str, Any] = data.get("properties") or {}
    item_id = data.get("id")
    if not item_id or not data.get("geometry") or not props.get("datetime"):
        raise BadInput("STAC item lacks an id, a geometry or a datetime", item_id=item_id)
    if not layout.is_product_id(item_id):
        raise BadInput(
            f"hostile/invalid product id {quote_id(item_id)}: ids are 1-200 of "
            "[A-Za-z0-9_.-], no '..', no slashes or control characters",
            item_id=item_id,
        )
    try:
        when = _parse_datetime(props["datetime"])
    except ValueError as exc:
        raise BadInput(f"STAC item {item_id} has an unreadable datetime", item_id=item_id) from exc
    tile = _tile(str(item_id), props)
    if tile is None:
        raise BadInput(f"STAC item {item_id} does not say its MGRS tile", item_id=item_id)
    try:
        tile = layout.tile_id(tile)
        parse_tile(tile)
    except (InvalidKey, ValueError) as exc:
        raise BadInput(
            f"STAC item {item_id} has an invalid MGRS tile {quote_id(tile)}", item_id=item_id
        ) from exc
    check_projection(data, item_id, tile)
    baseline = _baseline(props)
    cloud = props.get("eo:cloud_cover")
    published = props.get("published") or props.get("created")
    return ProductRef(
        id=str(item_id),
        datetime=when.isoformat().replace("+00:00", "Z"),
        tile=tile,
        footprint=data["geometry"],
        cloud_cover=None if cloud is None else float(cloud),
        processing_baseline=baseline,
        platform=props.get("platform"),
        product_type=props.get("s2:product_type") or "S2MSI2A",
        published=None if published is None else str(published),
        assets=_assets(data.get("assets") or {}, baseline, when),
    )
