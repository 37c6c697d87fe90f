"""The Redis backend against a real redis-server: registry, pub/sub + capped history that other
programs can read, leases, and publishing that survives Redis going away."""

from __future__ import annotations

import json
import time

import pytest
import redis as redis_lib

from service.api.schemas import ScoreMessage
from service.metrics import Metrics
from service.publishing.backends.base import BackendUnavailable
from service.publishing.backends.redis import RedisBackend
from testkit.servers import wait_for


@pytest.fixture
def backends(redis):
    made = []

    def make(replica="r1", lease=2.0, history=100):
        b = RedisBackend(redis.url, "t", history, lease, replica, Metrics([]))
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def msg(sid, t, replica="r1"):
    return ScoreMessage(type="score", stream_id=sid, replica=replica, frame_index=t, timestamp=1000.0 + t, score=0.5,
                        normalised=0.1, anomaly=False)


def test_registry(backends):
    a, b = backends("r1"), backends("r2")
    assert a.add_spec({"id": "cam", "url": "rtsp://10.0.0.1/x"})
    assert not b.add_spec({"id": "cam", "url": "rtsp://10.0.0.9/x"})
    assert b.load_specs() == {"cam": {"id": "cam", "url": "rtsp://10.0.0.1/x"}}
    b.delete_spec("cam")
    assert a.load_specs() == {}
    assert a.ping()


def test_other_programs_see_live_messages_and_history(backends, redis):
    a = backends("r1", history=50)
    got = []
    b = backends("r2")
    b.start(got.extend)
    a.start(lambda m: None)
    outside = redis_lib.Redis.from_url(redis.url)
    sub = outside.pubsub(ignore_subscribe_messages=True)
    sub.subscribe("t:live:cam")
    time.sleep(0.2)  # subscriptions registered before publishing
    a.publish([msg("cam", i) for i in range(200)])
    wait_for(lambda: len(got) == 200, 10, what="replica r2 to receive r1's messages")
    assert [m.frame_index for m in got] == list(range(200))
    first = wait_for(lambda: sub.get_message(timeout=0.5), 5)
    assert json.loads(first["data"])["frame_index"] == 0
    wait_for(lambda: outside.xlen("t:history:cam") >= 50, 5)
    assert outside.xlen("t:history:cam") < 200  # capped (MAXLEN ~)
    hist = a.history("cam", None, 10)
    assert hist == [msg("cam", i) for i in range(190, 200)]
    assert [m.frame_index for m in a.history("cam", 1197.0, 10)] == [198, 199]
    a.forget("cam")
    assert a.history("cam", None, 10) == []
    sub.close()
    outside.close()


def test_own_messages_are_not_echoed(backends):
    a = backends("r1")
    got = []
    a.start(got.extend)
    time.sleep(0.2)
    a.publish([msg("cam", 0, replica="r1")])
    time.sleep(0.5)
    assert got == []


def test_what_is_not_a_live_message_is_skipped_on_the_channel_and_in_the_history(backends, redis, caplog):
    """Another program may write to the same keys: its entries are left out (with a warning naming the wrong
    field), and the subscriber keeps forwarding the messages after them."""
    a, b = backends("r1"), backends("r2")
    got = []
    b.start(got.extend)
    time.sleep(0.2)
    outside = redis_lib.Redis.from_url(redis.url)
    outside.publish("t:live:cam", json.dumps({"type": "score", "stream_id": "cam", "frame_index": "x"}))
    outside.publish("t:live:cam", "not json")
    outside.xadd("t:history:cam", {"m": json.dumps({"type": "alarm", "stream_id": "cam"})})
    a.start(lambda m: None)
    a.publish([msg("cam", 1)])
    wait_for(lambda: len(got) == 1, 10, what="the valid message")
    assert got == [msg("cam", 1)]
    assert b.history("cam", None, 10) == [msg("cam", 1)]
    assert "frame_index: Input should be a valid integer" in caplog.text
    outside.close()


def test_leases(backends):
    a, b = backends("r1", lease=0.5), backends("r2", lease=0.5)
    assert a.claim("cam") and a.claim("cam")  # take, renew
    assert not b.claim("cam")
    assert a.holder("cam") == "r1"
    b.release("cam")  # not b's to release
    assert a.holder("cam") == "r1"
    a.release("cam")
    assert b.claim("cam") and b.holder("cam") == "r2"
    wait_for(lambda: a.claim("cam"), 3, what="the lease to expire")  # r2 stopped renewing
    assert a.holder("cam") == "r1"


def test_heartbeat_counts_live_replicas(backends):
    a, b = backends("r1", lease=0.5), backends("r2", lease=0.5)
    assert a.heartbeat() == 1
    assert b.heartbeat() == 2
    wait_for(lambda: a.heartbeat() == 1, 3, what="r2's heartbeat to expire")


@pytest.mark.slow
def test_publishing_survives_redis_going_away(tmp_path):
    from testkit.servers import redis_server

    server = redis_server(tmp_path, persist=True)
    server.start()
    metrics = Metrics([])
    b = RedisBackend(server.url, "t", 1000, 2.0, "r1", metrics)
    try:
        b.start(lambda m: None)
        b.publish([msg("cam", 0)])
        wait_for(lambda: len(b.history("cam", None, 10)) == 1, 5)
        server.kill()
        t0 = time.monotonic()
        for i in range(1, 50):
            b.publish([msg("cam", i)])  # never blocks, never raises
        assert time.monotonic() - t0 < 0.1
        assert not b.ping()
        with pytest.raises(BackendUnavailable):
            b.load_specs()
        wait_for(lambda: metrics.publish_errors.labels("redis")._value.get() >= 1, 10, what="a counted error")
        server.start()
        wait_for(lambda: len(b.history("cam", None, 100)) == 50, 20, what="the buffered messages")
        assert [m.frame_index for m in b.history("cam", None, 100)] == list(range(50))
        assert b.ping()
    finally:
        b.close()
        server.kill()
