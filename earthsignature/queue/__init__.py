"""RQ wiring: Redis connection (embedded or REDIS_URL), queues, chaining, workers."""

from earthsignature.queue.redis_conn import EmbeddedRedis, RedisUnavailable, redis_connection
from earthsignature.queue.rq_setup import make_queue

__all__ = ["EmbeddedRedis", "RedisUnavailable", "make_queue", "redis_connection"]
