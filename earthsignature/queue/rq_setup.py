"""RQ wired the project's way: JSON payloads on named queues."""

from __future__ import annotations

import redis
from rq import Queue
from rq.serializers import JSONSerializer


def make_queue(name: str, connection: redis.Redis, **kwargs: object) -> Queue:
    """An RQ queue whose job arguments and results are JSON, never pickles."""
    return Queue(name, connection=connection, serializer=JSONSerializer, **kwargs)  # type: ignore[arg-type]
