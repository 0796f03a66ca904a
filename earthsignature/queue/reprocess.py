"""Reprocessing: run committed products again with another model version.

The products are those committed (by any or a given model version) in a date range. Each
goes through the whole pipeline again under the new (model, version): its outputs land in
the new version's partitions, so both versions stay available side by side. The product
reference comes from the catalog record when it carries one (``earthsig:source_item``),
otherwise from discover searching the product's day again (fetch then reuses ``raw/``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from pydantic import ValidationError

from earthsignature.functions.messages import ProductMessage
from earthsignature.queue.stages import resolve_handler
from earthsignature.runtime import Runtime
from earthsignature.storage import catalog

log = logging.getLogger(__name__)


def for_model(rt: Runtime, model: str, version: int) -> Runtime:
    """The runtime with ``model``/``version`` as the settings' target (same store)."""
    if (rt.settings.model_name, rt.settings.model_version) == (model, version):
        return rt
    settings = rt.settings.model_copy(update={"model_name": model, "model_version": version})
    return Runtime(settings=settings, store=rt.store)


@dataclass
class ReprocessPlan:
    """Messages to run, and what was left out and why."""

    messages: list[ProductMessage] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


def _from_source_item(
    entry: catalog.CatalogEntry, pid: str, model: str, version: int, run: str
) -> ProductMessage | None:
    """The message for a record that carries its product reference, else None (search)."""
    source = entry.properties.get(catalog.PROP_SOURCE_ITEM)
    if not isinstance(source, dict) or not source:
        return None
    try:
        return ProductMessage.model_validate(
            {
                "product_id": pid,
                "date": entry.date.isoformat(),
                "tile": str(entry.properties.get(catalog.PROP_TILE)),
                "model": model,
                "version": version,
                "run": run,
                "item": source,
            }
        )
    except ValidationError as exc:  # not a whole reference: discover finds the product again
        log.warning("%s: source item unusable (%s), searching again", pid, exc.errors()[0]["msg"])
        return None


def plan_reprocess(
    rt: Runtime,
    *,
    model: str,
    version: int,
    start: dt.date,
    end: dt.date,
    run: str,
    source_model: str | None = None,
    source_version: int | None = None,
) -> ReprocessPlan:
    """The products committed in ``start..end`` (by the source model/version, if given),
    as messages for ``model``/``version``; those already committed for it are left out."""
    plan = ReprocessPlan()
    chosen: dict[str, catalog.CatalogEntry] = {}
    for entry in catalog.iter_entries(rt.store, source_model, source_version, start, end):
        if (entry.model, entry.version) == (model, version):
            continue
        if catalog.is_committed(rt.store, model, version, entry.date, entry.product_id):
            if entry.product_id not in plan.already_done:
                plan.already_done.append(entry.product_id)
            continue
        chosen.setdefault(entry.product_id, entry)
    by_day: dict[dt.date, set[str]] = defaultdict(set)
    for pid, entry in sorted(chosen.items()):
        msg = _from_source_item(entry, pid, model, version, run)
        if msg is not None:
            plan.messages.append(msg)
        else:
            by_day[entry.date].add(pid)
    if by_day:
        discover = resolve_handler("discover", rt.settings.stage_handlers)
        target = for_model(rt, model, version)  # discover skips what *this* version committed
        for day, wanted in sorted(by_day.items()):
            found = discover(target, start=day, end=day, aoi_wkt=None, max_cloud=None, run=run)
            for msg in found.products:
                if msg.product_id in wanted:
                    wanted.discard(msg.product_id)
                    plan.messages.append(
                        msg.model_copy(update={"model": model, "version": version, "run": run})
                    )
            for pid in sorted(wanted):
                log.warning("product %s of %s not found again by discover", pid, day)
                plan.not_found.append(pid)
    return plan
