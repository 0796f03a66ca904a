"""SearchSegmentation's CQL2-text queries, parsed and evaluated by the ``cql2`` package.

Queryable properties: ``datetime`` (acquisition), ``product_id``, ``category`` (a CORINE
code), ``cloud_cover``, ``model``, ``version`` and ``geometry`` (footprint, for
``S_INTERSECTS``). A product has many categories: it matches when the query holds for one of
them (``category = 311 AND cloud_cover < 10``; use ``category IN (311, 312)`` for either).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cql2
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from earthsignature.grpc_api.errors import BadRequest, LimitExceeded
from earthsignature.grpc_api.query import MAX_WKT_CHARS, parse_area

if TYPE_CHECKING:
    from earthsignature.grpc_api.index import IndexedProduct

QUERYABLES = frozenset(
    {"datetime", "product_id", "category", "cloud_cover", "model", "version", "geometry"}
)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@dataclass(frozen=True)
class Search:
    """A parsed query: matches products; knows the area to clip to and the model it names."""

    text: str
    expr: cql2.Expr
    aoi: BaseGeometry | None
    names_model: bool

    def matches(self, product: IndexedProduct) -> bool:
        """Whether the query holds for the product (for one of its categories)."""
        row = product.row
        geometry = mapping(row.footprint)
        base = {
            "datetime": product.datetime.isoformat().replace("+00:00", "Z"),
            "product_id": row.product_id,
            "cloud_cover": row.cloud_cover,
            "model": row.model,
            "version": row.version,
        }
        try:
            return any(
                self.expr.matches(
                    {
                        "type": "Feature",
                        "id": row.product_id,
                        "geometry": geometry,
                        "properties": {**base, "category": code},
                    }
                )
                for code in (row.categories or (None,))
            )
        except Exception as exc:  # cql2 raises a bare Exception when a query cannot evaluate
            raise BadRequest(f"query {self.text!r} cannot be evaluated: {exc}") from None


def parse(text: str) -> Search:
    """Parse CQL2-text; unknown properties and syntax errors are BadRequest."""
    if not text.strip():
        raise BadRequest("query is empty: give a CQL2-text expression, e.g. category = 311")
    if len(text) > MAX_WKT_CHARS:
        raise LimitExceeded(f"query is {len(text)} characters long; the limit is {MAX_WKT_CHARS}")
    try:
        expr = cql2.parse_text(text)
        tree = expr.to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        raise BadRequest(f"query is not valid CQL2-text: {exc}") from None
    if not isinstance(tree, dict | bool):  # a bare ``0`` or ``'x'`` is not a condition
        raise BadRequest(f"query {text!r} is not a condition: give e.g. category = 311")
    nodes = list(_walk(tree))
    names = {node["property"] for node in nodes if "property" in node}
    unknown = sorted(str(n) for n in names - QUERYABLES)
    if unknown:
        raise BadRequest(f"query names unknown properties {unknown}; known: {sorted(QUERYABLES)}")
    return Search(
        text=text,
        expr=expr,
        aoi=_clip_area(tree),
        names_model=bool(names & {"model", "version"}),
    )


def _clip_area(tree: dict[str, Any]) -> BaseGeometry | None:
    """The polygon to clip to: of a top-level S_INTERSECTS (alone or in a top-level AND)."""
    if not isinstance(tree, dict):  # TRUE / FALSE
        return None
    candidates = [tree, *(tree.get("args", []) if tree.get("op") == "and" else [])]
    for node in candidates:
        if isinstance(node, dict) and node.get("op") == "s_intersects":
            for arg in node.get("args", []):
                if isinstance(arg, dict) and "type" in arg and "coordinates" in arg:
                    try:
                        return parse_area(shape(arg), "S_INTERSECTS geometry")
                    except LimitExceeded:
                        raise
                    except BadRequest:
                        return None  # a point or line filters but does not clip
                    except (ValueError, TypeError, AttributeError) as exc:
                        raise BadRequest(f"S_INTERSECTS geometry is malformed: {exc}") from None
    return None
