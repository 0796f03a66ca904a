"""Fan-in: vectorize runs exactly once, when every shard of a product is done.

Each finished infer job adds its shard index to a Redis set kept per (model, version,
product, run). ``SADD`` is idempotent, so a shard job that is retried (after a crash, a
timeout or a lost worker) counts once. The job that sees the set complete enqueues
vectorize under its deterministic job id with RQ's atomic unique enqueue: if two shard jobs
both see the set complete (a retried shard finishing beside the last one), only the first
enqueue creates the job, and a crash between marking a shard and enqueueing is repaired by
the shard's retry, which finds the set complete and enqueues again. So vectorize is
enqueued once, never zero times, never twice.
"""

from __future__ import annotations

import redis

from earthsignature.functions.messages import ProductMessage
from earthsignature.queue.status import PREFIX

#: Seconds the set of done shards is kept (as long as finished jobs are).
DONE_TTL = 7 * 24 * 3600

_MARK = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('SCARD', KEYS[1])
"""


def done_key(msg: ProductMessage) -> str:
    return f"{PREFIX}:shards:{msg.model}:{msg.version}:{msg.product_id}:{msg.run}"


def mark_shard_done(conn: redis.Redis, msg: ProductMessage) -> int:
    """Record ``msg.shard`` as done; returns how many distinct shards are done."""
    if msg.shard is None or msg.n_shards is None:
        raise ValueError(f"infer message for {msg.product_id} lacks shard/n_shards")
    if not 0 <= msg.shard < msg.n_shards:
        raise ValueError(f"shard {msg.shard} outside 0..{msg.n_shards - 1}")
    return int(conn.eval(_MARK, 1, done_key(msg), str(msg.shard), str(DONE_TTL)))  # type: ignore[arg-type]


def all_done(conn: redis.Redis, msg: ProductMessage, done: int) -> bool:
    return msg.n_shards is not None and done >= msg.n_shards


def fan_in_message(msg: ProductMessage) -> ProductMessage:
    """The product-level message vectorize gets (no shard index)."""
    return msg.model_copy(update={"shard": None})
