"""The compose file's Redis command, run by the real redis-server: what the service writes (its
camera registry) survives a restart that writes no snapshot, so only the append-only file keeps it."""

from __future__ import annotations

from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.deploy.compose import resolved
from tests.deploy.running_service import start_redis
from tests.deploy.tools import COMPOSE


def test_data_survives_a_restart_through_the_append_only_file(tmp_path: Path) -> None:
    command = resolved(COMPOSE)["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    server = start_redis(tmp_path, *command[1:])
    try:
        client = redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0))  # SHUTDOWN is not retried
        client.hset("ocrgan:streams", "gate", '{"url": "rtsp://cam/gate"}')
        client.shutdown(nosave=True)  # no RDB snapshot: only the AOF can bring the key back
    except redis.ConnectionError:
        pass  # SHUTDOWN closes the connection under the client
    finally:
        server.proc.wait(10)
    server = start_redis(tmp_path, *command[1:])
    try:
        assert redis.Redis(port=server.port).hget("ocrgan:streams", "gate") == b'{"url": "rtsp://cam/gate"}'
    finally:
        server.stop()
