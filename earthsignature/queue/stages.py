"""The stage registry: which handler runs each stage, on which queue, what comes next, retries.

One queue per stage, so operators scale each stage on its own (GPU hosts listen only to
``infer``). The chain is data, read top to bottom in :data:`STAGES`: ``discover -> fetch ->
cloud -> split -> infer (one job per shard) -> vectorize``, then, for every committed product,
the ``after_commit`` stages (``composite``, on the vectorize queue). A stage says how it hands on:
split fans out (one message per shard), infer runs per shard and fans in to vectorize through
:mod:`earthsignature.queue.fanin`; the orchestrator (:mod:`earthsignature.queue.jobs`) reads
these flags and never a stage's name. Publishing (COG, polygons, tiles, the catalog record) is
part of vectorize (:func:`earthsignature.functions.publish.publish_product`), not a stage.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rq import Retry

from earthsignature.queue.errors import HandlerNotFound, UnknownStage


@dataclass(frozen=True)
class Stage:
    """One pipeline stage as the orchestrator sees it."""

    name: str
    handler: str
    """``module:function`` of the handler (``discover`` takes a window, the rest a message)."""
    next: str | None
    queue: str
    retry_max: int
    retry_intervals: tuple[int, ...]
    """Seconds to wait before each retry (the last one repeats)."""
    timeout: int
    """Job timeout in seconds; a job running longer is killed and retried."""
    takes_window: bool = False
    """The handler takes a search window (discover), not a product message."""
    fans_out: bool = False
    """The handler returns one message per shard; the next stage runs once for each."""
    fans_in: bool = False
    """Runs once per shard; the next stage starts once, when every shard is done."""
    gpu: bool = False
    """Its queue is for GPU hosts."""
    after_commit: bool = False
    """Runs on each committed product once the chain has ended (composites): retried on
    errors, but its outcome is not the product's (no record, the status stays committed)."""

    def retry(self, scale: float = 1.0) -> Retry:
        """RQ's retry policy for this stage, intervals multiplied by ``scale``."""
        return Retry(
            max=self.retry_max, interval=[max(0, round(i * scale)) for i in self.retry_intervals]
        )


# fmt: off
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("discover", "earthsignature.functions.discover:discover", next="fetch",
              queue="discover", retry_max=3, retry_intervals=(30, 120, 600), timeout=600,
              takes_window=True),
        Stage("fetch", "earthsignature.functions.fetch:handle", next="cloud",
              queue="fetch", retry_max=4, retry_intervals=(10, 60, 300, 900), timeout=1800),
        Stage("cloud", "earthsignature.functions.cloud:handle", next="split",
              queue="cloud", retry_max=3, retry_intervals=(10, 60, 300), timeout=1800),
        Stage("split", "earthsignature.functions.split:handle", next="infer",
              queue="split", retry_max=3, retry_intervals=(10, 60, 300), timeout=1800,
              fans_out=True),
        Stage("infer", "earthsignature.functions.infer:handle", next="vectorize",
              queue="infer", retry_max=4, retry_intervals=(5, 30, 120, 600), timeout=1800,
              fans_in=True, gpu=True),
        Stage("vectorize", "earthsignature.functions.vectorize:handle", next=None,
              queue="vectorize", retry_max=3, retry_intervals=(10, 60, 300), timeout=3600),
        Stage("composite", "earthsignature.composites.stage:handle", next=None,
              queue="vectorize", retry_max=3, retry_intervals=(10, 60, 300), timeout=3600,
              after_commit=True),
    )
}
# fmt: on

#: Every queue, in pipeline order (a worker listening to all drains earlier stages last).
QUEUES: tuple[str, ...] = tuple(dict.fromkeys(s.queue for s in STAGES.values()))
#: Queues for GPU hosts (with TRITON_URL) and for CPU hosts.
GPU_QUEUES: tuple[str, ...] = tuple(s.queue for s in STAGES.values() if s.gpu)
CPU_QUEUES: tuple[str, ...] = tuple(q for q in QUEUES if q not in GPU_QUEUES)
#: Stages a product goes through after discover (progress and status count these).
PRODUCT_STAGES: tuple[str, ...] = tuple(
    s.name for s in STAGES.values() if not s.takes_window and not s.after_commit
)
#: Stages enqueued for every committed product (they share the queues above).
AFTER_COMMIT_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES.values() if s.after_commit)
#: Stages that run once per shard (their jobs and status count shards).
SHARD_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES.values() if s.fans_in)


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise UnknownStage(f"unknown stage {name!r}; stages are {', '.join(STAGES)}") from None


def parse_queues(value: str) -> list[str]:
    """``"fetch,cloud"``, ``"all"``, ``"cpu"`` or ``"gpu"`` as a list of queue names."""
    named = {"all": QUEUES, "cpu": CPU_QUEUES, "gpu": GPU_QUEUES}
    names: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        for name in named.get(part, (part,)):
            get_stage(name)
            if name not in names:
                names.append(name)
    if not names:
        raise UnknownStage(f"no queues named in {value!r}")
    return names


def resolve_handler(stage: str, overrides: Mapping[str, str] | None = None) -> Callable[..., Any]:
    """The handler callable of a stage, ``overrides[stage]`` (``module:function``) first."""
    path = (overrides or {}).get(stage) or get_stage(stage).handler
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise HandlerNotFound(f"handler path {path!r} is not 'module:function'")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise HandlerNotFound(f"cannot import handler {path!r} of stage {stage!r}: {exc}") from exc
    if not callable(func):
        raise HandlerNotFound(f"handler {path!r} of stage {stage!r} is not callable")
    return func  # type: ignore[no-any-return]
