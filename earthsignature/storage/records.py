"""Outcome records: why a product was skipped or failed, kept beside the catalog.

A product that stops early (too cloudy, bad input, repeated failure) is never silently
dropped: a JSON record under ``records/`` says which stage stopped it and why. A later
successful commit removes a stale failure record.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from earthsignature.storage import layout
from earthsignature.storage.base import ObjectStore
from earthsignature.storage.errors import ObjectNotFound

Status = Literal["skipped", "failed"]


@dataclass(frozen=True)
class OutcomeRecord:
    """What happened to one product for one model version, when it did not commit."""

    product_id: str
    date: str
    model: str
    version: int
    status: Status
    stage: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    recorded_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    @property
    def key(self) -> str:
        return layout.record_key(self.model, self.version, self.date, self.product_id)


def write_record(store: ObjectStore, record: OutcomeRecord) -> str:
    """Store the record (overwriting an earlier one for the same product) and return its key."""
    store.put_bytes(record.key, json.dumps(asdict(record), sort_keys=True).encode())
    return record.key


def read_record(
    store: ObjectStore, model: str, version: int, date: dt.date | str, product_id: str
) -> OutcomeRecord | None:
    """The record of a product, or None."""
    try:
        raw = store.get_bytes(layout.record_key(model, version, date, product_id))
    except ObjectNotFound:
        return None
    return OutcomeRecord(**json.loads(raw))


def record_model_versions(store: ObjectStore) -> list[tuple[str, int]]:
    """Every (model, version) with at least one record."""
    out = []
    for model_dir in store.list_dirs(f"{layout.RECORDS}/"):
        model = model_dir.rstrip("/").rsplit("model=", 1)[-1]
        for version_dir in store.list_dirs(model_dir):
            out.append((model, int(version_dir.rstrip("/").rsplit("version=", 1)[-1])))
    return sorted(out)


def iter_records(
    store: ObjectStore, model: str, version: int, date: dt.date | str | None = None
) -> Iterator[OutcomeRecord]:
    """Records of one model version, optionally of one acquisition date."""
    prefix = f"{layout.RECORDS}/model={layout.model_name(model)}/version={int(version)}/"
    if date is not None:
        prefix += f"date={layout.acquisition_date(date).isoformat()}/"
    for info in store.list_keys(prefix):
        if info.key.endswith(".json"):
            yield OutcomeRecord(**json.loads(store.get_bytes(info.key)))


def clear_record(
    store: ObjectStore, model: str, version: int, date: dt.date | str, product_id: str
) -> None:
    """Remove the record of a product that has now committed."""
    store.delete(layout.record_key(model, version, date, product_id))
