"""The stage registry: which handler runs each stage, on which queue, what comes next, retries.

One queue per stage, so operators scale each stage on its own (GPU hosts listen only to
``infer``). The chain is ``discover -> fetch -> cloud -> split -> infer (one job per shard)
-> vectorize``; the fan-in from infer to vectorize is :mod:`earthsignature.queue.fanin`.
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

    def retry(self, scale: float = 1.0) -> Retry:
        """RQ's retry policy for this stage, intervals multiplied by ``scale``."""
        return Retry(
            max=self.retry_max, interval=[max(0, round(i * scale)) for i in self.retry_intervals]
        )


def _stage(name: str, next_: str | None, retries: int, intervals: tuple[int, ...], timeout: int):
    handler = (
        "earthsignature.functions.discover:discover"
        if name == "discover"
        else f"earthsignature.functions.{name}:handle"
    )
    return Stage(name, handler, next_, name, retries, intervals, timeout)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        _stage("discover", "fetch", 3, (30, 120, 600), 600),
        _stage("fetch", "cloud", 4, (10, 60, 300, 900), 1800),
        _stage("cloud", "split", 3, (10, 60, 300), 1800),  # learned mask: ~12 min on 2 cores
        _stage("split", "infer", 3, (10, 60, 300), 1800),
        _stage("infer", "vectorize", 4, (5, 30, 120, 600), 1800),
        _stage("vectorize", None, 3, (10, 60, 300), 3600),
    )
}

#: Every queue, in pipeline order (a worker listening to all drains earlier stages last).
QUEUES: tuple[str, ...] = tuple(s.queue for s in STAGES.values())
#: Queues for GPU hosts (with TRITON_URL) and for CPU hosts.
GPU_QUEUES: tuple[str, ...] = ("infer",)
CPU_QUEUES: tuple[str, ...] = tuple(q for q in QUEUES if q not in GPU_QUEUES)
#: Stages a product goes through after discover (progress and status count these).
PRODUCT_STAGES: tuple[str, ...] = ("fetch", "cloud", "split", "infer", "vectorize")


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
