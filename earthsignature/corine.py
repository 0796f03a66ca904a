"""The CORINE Land Cover level-3 nomenclature: codes, labels and the official CLC colours.

Every stage that names a class (model metadata, polygons' labels, the API, the viewer) reads
it from here, so there is one table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClcClass:
    """One CORINE level-3 class."""

    code: int
    label: str
    rgb: tuple[int, int, int]

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)


NODATA = 0

_TABLE: tuple[tuple[int, str, tuple[int, int, int]], ...] = (
    (111, "Continuous urban fabric", (230, 0, 77)),
    (112, "Discontinuous urban fabric", (255, 0, 0)),
    (121, "Industrial or commercial units", (204, 77, 242)),
    (122, "Road and rail networks and associated land", (204, 0, 0)),
    (123, "Port areas", (230, 204, 204)),
    (124, "Airports", (230, 204, 230)),
    (131, "Mineral extraction sites", (166, 0, 204)),
    (132, "Dump sites", (166, 77, 0)),
    (133, "Construction sites", (255, 77, 255)),
    (141, "Green urban areas", (255, 166, 255)),
    (142, "Sport and leisure facilities", (255, 230, 255)),
    (211, "Non-irrigated arable land", (255, 255, 168)),
    (212, "Permanently irrigated land", (255, 255, 0)),
    (213, "Rice fields", (230, 230, 0)),
    (221, "Vineyards", (230, 128, 0)),
    (222, "Fruit trees and berry plantations", (242, 166, 77)),
    (223, "Olive groves", (230, 166, 0)),
    (231, "Pastures", (230, 230, 77)),
    (241, "Annual crops associated with permanent crops", (255, 230, 166)),
    (242, "Complex cultivation patterns", (255, 230, 77)),
    (
        243,
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
        (230, 204, 77),
    ),
    (244, "Agro-forestry areas", (242, 204, 166)),
    (311, "Broad-leaved forest", (128, 255, 0)),
    (312, "Coniferous forest", (0, 166, 0)),
    (313, "Mixed forest", (77, 255, 0)),
    (321, "Natural grasslands", (204, 242, 77)),
    (322, "Moors and heathland", (166, 255, 128)),
    (323, "Sclerophyllous vegetation", (166, 230, 77)),
    (324, "Transitional woodland-shrub", (166, 242, 0)),
    (331, "Beaches, dunes, sands", (230, 230, 230)),
    (332, "Bare rocks", (204, 204, 204)),
    (333, "Sparsely vegetated areas", (204, 255, 204)),
    (334, "Burnt areas", (0, 0, 0)),
    (335, "Glaciers and perpetual snow", (166, 230, 204)),
    (411, "Inland marshes", (166, 166, 255)),
    (412, "Peat bogs", (77, 77, 255)),
    (421, "Salt marshes", (204, 204, 255)),
    (422, "Salines", (230, 230, 255)),
    (423, "Intertidal flats", (166, 166, 230)),
    (511, "Water courses", (0, 204, 242)),
    (512, "Water bodies", (128, 242, 230)),
    (521, "Coastal lagoons", (0, 255, 166)),
    (522, "Estuaries", (166, 255, 230)),
    (523, "Sea and ocean", (230, 242, 255)),
)

CLASSES: dict[int, ClcClass] = {code: ClcClass(code, label, rgb) for code, label, rgb in _TABLE}
CODES: tuple[int, ...] = tuple(CLASSES)


def clc_class(code: int | str) -> ClcClass:
    """The class of a level-3 code (``311`` or ``"311"``); KeyError names unknown codes."""
    try:
        return CLASSES[int(code)]
    except (KeyError, ValueError):
        raise KeyError(f"{code!r} is not a CORINE level-3 code (111 ... 523)") from None


def is_code(code: object) -> bool:
    """Whether code is one of the 44 level-3 codes."""
    try:
        return int(code) in CLASSES  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def colormap() -> dict[int, tuple[int, int, int, int]]:
    """A rasterio colormap (code -> RGBA) with 0 = no data transparent."""
    cmap = {code: (*cls.rgb, 255) for code, cls in CLASSES.items()}
    cmap[NODATA] = (0, 0, 0, 0)
    return cmap


def class_tags() -> dict[str, str]:
    """Band metadata naming every class (``CLC_111=Continuous urban fabric``...), stored in
    the COGs, where GDAL keeps no category names of its own (those live in .aux.xml files)."""
    return {f"CLC_{code}": cls.label for code, cls in CLASSES.items()}
