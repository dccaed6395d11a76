"""The Redis client of web and worker processes, and a per-process cached read of a
Redis hash that a beat task publishes (the request path then does a dict lookup)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis
from django.conf import settings

T = TypeVar("T")


@functools.cache
def redis_client() -> redis.Redis:
    """One client per process, failing fast: callers treat Redis as optional."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2)


class CachedHash(Generic[T]):
    """The fields of one Redis hash, re-read at most every `refresh_seconds`.
    If Redis cannot be read (or a value cannot be decoded) the hash reads as empty:
    what it guards (backpressure, quotas) then lets requests through."""

    def __init__(
        self,
        key: str,
        decode: Callable[[bytes], T],
        refresh_seconds: float,
        client: Callable[[], redis.Redis] = redis_client,
    ) -> None:
        self.key = key
        self.decode = decode
        self.refresh_seconds = refresh_seconds
        self.client = client
        self._values: dict[str, T] = {}
        self._read_at = 0.0
        self._lock = threading.Lock()

    def get(self, field: str) -> T | None:
        now = time.monotonic()
        if now - self._read_at > self.refresh_seconds:
            with self._lock:
                if now - self._read_at > self.refresh_seconds:
                    try:
                        raw = self.client().hgetall(self.key)
                        self._values = {k.decode(): self.decode(v) for k, v in raw.items()}
                    except (redis.RedisError, ValueError, TypeError):
                        self._values = {}
                    self._read_at = now
        return self._values.get(field)

    def forget(self) -> None:
        """Read again on the next `get` (this process sees a new publication at once)."""
        self._read_at = 0.0
