"""The Redis backend: shared registry, live messages on pub/sub, capped history, leases between replicas.

Keys (prefix `p`, default "ocrgan"):
  p:streams            hash  id -> camera spec (JSON)
  p:status             hash  id -> status shared by the replica scoring it (JSON)
  p:lease:<id>         string, the replica holding the camera, with a TTL (SET NX PX, renewed each tick)
  p:replicas           sorted set of live replicas, scored by heartbeat expiry (ms)
  p:history:<id>       stream of published messages (XADD MAXLEN ~ history_length), field "m" = JSON
  p:snapshot:<id>      latest JPEG, short TTL
  channel p:live:<id>  every published message (JSON), for other programs and replicas

Publishing runs in its own thread from a bounded buffer: when Redis is away, messages wait (the
oldest are dropped and counted beyond the buffer), errors are counted and retried with backoff, and
scoring never waits. Reads and lease calls raise BackendUnavailable instead.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis

from service.metrics import Metrics
from service.publishing.backends.base import Backend, BackendUnavailable, Deliver, Message, decode_message
from service.settings import Backoff

log = logging.getLogger("ocrgan.backend")

CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
BUFFER = 20_000  # messages held while Redis is away
BATCH = 500  # messages per pipeline
SNAPSHOT_TTL_MS = 10_000
RETRY_SECONDS = (0.5, 10.0)  # first and longest wait between attempts while Redis is away (service.settings.Backoff)


class RedisBackend(Backend):
    name = "redis"
    shared = True

    def __init__(self, url: str, prefix: str, history_length: int, lease_seconds: float, replica_id: str,
                 metrics: Metrics) -> None:
        self.r = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0,
                                      health_check_interval=10, retry_on_timeout=False)
        self.p = prefix
        self.history_length = history_length
        self.lease_ms = int(lease_seconds * 1000)
        self.replica_id = replica_id
        self.metrics = metrics
        self._claim = self.r.register_script(CLAIM)
        self._release = self.r.register_script(RELEASE)
        self._buffer: deque[Message] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._deliver: Deliver | None = None
        self.errors = 0

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        for target, name in ((self._publisher, "publisher"), (self._subscriber, "subscriber")):
            t = threading.Thread(target=target, name=f"ocrgan-redis-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=10)
        with suppress(redis.RedisError):
            self.r.zrem(f"{self.p}:replicas", self.replica_id)  # the others take our cameras at once
        self.r.close()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as e:
            raise BackendUnavailable(f"redis: {e}") from e

    def ping(self) -> bool:
        try:
            return bool(self.r.ping())
        except redis.RedisError:
            return False

    # --- registry --------------------------------------------------------------------------------
    def load_specs(self) -> dict[str, dict[str, Any]]:
        with self._guard():
            raw = self.r.hgetall(f"{self.p}:streams")
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def add_spec(self, spec: dict[str, Any]) -> bool:
        with self._guard():
            return bool(self.r.hsetnx(f"{self.p}:streams", spec["id"], json.dumps(spec)))

    def delete_spec(self, stream_id: str) -> None:
        with self._guard():
            self.r.hdel(f"{self.p}:streams", stream_id)

    # --- publishing ------------------------------------------------------------------------------
    def publish(self, messages: list[Message]) -> None:
        with self._lock:
            overflow = len(self._buffer) + len(messages) - BUFFER
            for _ in range(max(overflow, 0)):
                self._buffer.popleft()
            self._buffer.extend(messages)
        if overflow > 0:
            self.metrics.publish_dropped.labels(self.name).inc(overflow)
        self._wake.set()

    def _publisher(self) -> None:
        retry, delay = Backoff(*RETRY_SECONDS), 0.0
        while not self._stop.is_set():
            self._wake.wait(max(delay, 0.5))
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
                if not batch:
                    break
                try:
                    self._send(batch)
                except redis.RedisError as e:
                    with self._lock:
                        self._buffer.extendleft(reversed(batch))  # keep them, in order, for the retry
                    self._failed(e)
                    delay = retry.next()
                    break
                if self.errors:
                    log.warning("redis publishing recovered after %d failed attempts", self.errors)
                    self.errors = 0
                retry.reset()
                delay = 0.0
        self._flush()

    def _flush(self) -> None:
        """One last attempt at shutdown to send what is buffered."""
        with self._lock:
            rest, self._buffer = list(self._buffer), deque()
        try:
            if rest:
                self._send(rest)
        except redis.RedisError:
            self.metrics.publish_dropped.labels(self.name).inc(len(rest))

    def _send(self, batch: list[Message]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for m in batch:
            sid, data = m.stream_id, m.model_dump_json()
            pipe.publish(f"{self.p}:live:{sid}", data)
            pipe.xadd(f"{self.p}:history:{sid}", {"m": data}, maxlen=self.history_length, approximate=True)
        pipe.execute()

    def _failed(self, e: Exception) -> None:
        self.metrics.publish_errors.labels(self.name).inc()
        if self.errors == 0:
            log.warning("redis publishing failed, retrying with backoff (scoring continues): %s", e)
        self.errors += 1

    def _subscriber(self) -> None:
        """Forward what other replicas publish to this replica's WebSocket clients."""
        retry = Backoff(*RETRY_SECONDS)
        while not self._stop.is_set():
            pubsub = self.r.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(f"{self.p}:live:*")
                retry.reset()
                while not self._stop.is_set():
                    item = pubsub.get_message(timeout=0.5)
                    if item is None:
                        continue
                    m = decode_message(item["data"])
                    if m is not None and m.replica != self.replica_id and self._deliver is not None:
                        self._deliver([m])
            except (redis.RedisError, OSError, ValueError) as e:
                log.debug("redis subscriber: %s", e)
                self._stop.wait(retry.next())
            finally:
                with suppress(redis.RedisError, OSError):
                    pubsub.close()

    def history(self, stream_id: str, since: float | None, limit: int) -> list[Message]:
        low = "-" if since is None else str(int(since * 1000))
        with self._guard():
            rows = self.r.xrevrange(f"{self.p}:history:{stream_id}", max="+", min=low, count=limit)
        items = [m for _, fields in reversed(rows) if (m := decode_message(fields[b"m"])) is not None]
        return [m for m in items if since is None or m.timestamp > since]

    def forget(self, stream_id: str) -> None:
        with self._guard():
            pipe = self.r.pipeline(transaction=False)
            pipe.delete(f"{self.p}:history:{stream_id}", f"{self.p}:snapshot:{stream_id}")
            pipe.hdel(f"{self.p}:status", stream_id)
            pipe.execute()

    # --- sharing cameras -------------------------------------------------------------------------
    def heartbeat(self) -> int:
        key = f"{self.p}:replicas"
        with self._guard():
            seconds, micros = self.r.time()
            now = seconds * 1000 + micros // 1000
            pipe = self.r.pipeline(transaction=False)
            pipe.zadd(key, {self.replica_id: now + self.lease_ms})
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zcard(key)
            return int(pipe.execute()[-1])

    def claim(self, stream_id: str) -> bool:
        with self._guard():
            return bool(self._claim(keys=[f"{self.p}:lease:{stream_id}"], args=[self.replica_id, self.lease_ms]))

    def release(self, stream_id: str) -> None:
        with self._guard():
            self._release(keys=[f"{self.p}:lease:{stream_id}"], args=[self.replica_id])

    def holder(self, stream_id: str) -> str | None:
        """The replica holding a camera's lease (for tests and tools)."""
        with self._guard():
            v = self.r.get(f"{self.p}:lease:{stream_id}")
        return v.decode() if v else None

    def put_status(self, views: dict[str, dict[str, Any]]) -> None:
        with self._guard():
            self.r.hset(f"{self.p}:status", mapping={k: json.dumps(v) for k, v in views.items()})

    def get_status(self) -> dict[str, dict[str, Any]]:
        with self._guard():
            raw = self.r.hgetall(f"{self.p}:status")
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def put_snapshot(self, stream_id: str, jpeg: bytes) -> None:
        with self._guard():
            self.r.set(f"{self.p}:snapshot:{stream_id}", jpeg, px=SNAPSHOT_TTL_MS)

    def get_snapshot(self, stream_id: str) -> bytes | None:
        with self._guard():
            return self.r.get(f"{self.p}:snapshot:{stream_id}")

