"""WebSockets over a real connection, and the hub's protection against slow clients."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.sync.client import connect

from service.api.schemas import HelloMessage, ScoreMessage
from service.metrics import Metrics
from service.publishing.hub import Hub
from testkit.servers import wait_for


def receive_until(ws, predicate, timeout=20.0):
    """Messages up to and including the first one that satisfies predicate."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
        got.append(msg)
        if predicate(msg):
            return got
    raise AssertionError(f"no matching message in {timeout}s; got {got[-3:]}")


@pytest.mark.slow
def test_live_scores_status_and_hello(live, rtsp):
    server = rtsp(mounts="a,b")
    app = live()
    url = f"rtsp://127.0.0.1:{server.port}"
    app.client.post("/streams", json={"id": "a", "url": f"{url}/a"})
    with connect(f"{app.ws_url}/ws/streams/a") as one, connect(f"{app.ws_url}/ws/streams") as every:
        hello = json.loads(one.recv(timeout=10))
        assert hello["type"] == "hello" and [s["id"] for s in hello["streams"]] == ["a"]
        assert hello["threshold"] == pytest.approx(3.0)
        assert json.loads(every.recv(timeout=10))["type"] == "hello"
        got = receive_until(one, lambda m: m["type"] == "score" and m["frame_index"] >= 5)
        scores = [m for m in got if m["type"] == "score"]
        assert set(scores[0]) >= {"type", "stream_id", "frame_index", "timestamp", "score", "normalised", "anomaly"}
        assert {m["stream_id"] for m in got} == {"a"}
        app.client.post("/streams", json={"id": "b", "url": f"{url}/b"})
        got = receive_until(every, lambda m: m["stream_id"] == "b" and m["type"] == "score")
        assert any(m["type"] == "status" and m["stream_id"] == "b" and m["state"] == "running" for m in got)
        app.client.delete("/streams/a")
        got = receive_until(one, lambda m: m["type"] == "status" and m["state"] == "stopped")
        assert got[-1]["reason"] == "deleted"


def test_unknown_stream_is_refused(live):
    app = live()
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as e:
        connect(f"{app.ws_url}/ws/streams/nope")
    assert e.value.response.status_code == 404


class FakeSocket:
    """A WebSocket whose client may stop reading: send_text blocks while `stalled` is clear."""

    def __init__(self, stalled=False):
        self.sent = []
        self.flowing = asyncio.Event()
        if not stalled:
            self.flowing.set()
        self.closed = asyncio.Event()

    async def send_text(self, text):
        await self.flowing.wait()
        self.sent.append(json.loads(text))

    async def receive(self):
        await self.closed.wait()
        return {"type": "websocket.disconnect"}


def test_a_slow_client_loses_its_oldest_messages_and_delays_nobody():
    async def run():
        metrics = Metrics([])
        hub = Hub(metrics, queue_size=10)
        hub.bind(asyncio.get_running_loop())
        fast, slow = FakeSocket(), FakeSocket(stalled=True)
        hello = HelloMessage(type="hello", replica="r1", threshold=3.0, streams=[])
        tasks = [asyncio.create_task(hub.serve(ws, None, hello)) for ws in (fast, slow)]
        await asyncio.sleep(0.01)
        for i in range(100):
            hub.publish_threadsafe([ScoreMessage(type="score", stream_id="a", replica="r1", frame_index=i,
                                                 timestamp=float(i), score=0.0, normalised=0.0, anomaly=False)])
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert [m["frame_index"] for m in fast.sent[1:]] == list(range(100))
        assert not any("dropped" in m for m in fast.sent)
        assert len(slow.sent) == 0
        slow.flowing.set()
        await asyncio.sleep(0.05)
        assert slow.sent[0]["type"] == "hello"  # taken before the client stalled
        got = [m["frame_index"] for m in slow.sent[1:]]
        assert got[-1] == 99 and len(got) <= 10  # the newest ones survived
        assert slow.sent[1]["dropped"] >= 89 and not any("dropped" in m for m in slow.sent[2:])
        assert metrics.ws_dropped._value.get() >= 89
        for ws in (fast, slow):
            ws.closed.set()
        await asyncio.gather(*tasks)
        assert hub.clients == set()

    asyncio.run(run())


def test_clients_beyond_the_limit_are_refused(live):
    from websockets.exceptions import InvalidStatus

    app = live(max_ws_clients=2)
    with connect(f"{app.ws_url}/ws/streams") as one, connect(f"{app.ws_url}/ws/streams") as two:
        assert json.loads(one.recv(timeout=10))["type"] == json.loads(two.recv(timeout=10))["type"] == "hello"
        with pytest.raises(InvalidStatus) as e:
            connect(f"{app.ws_url}/ws/streams")
        assert e.value.response.status_code == 503
    wait_for(lambda: not app.services.hub.clients, 10, what="the others to leave")
    with connect(f"{app.ws_url}/ws/streams") as again:
        assert json.loads(again.recv(timeout=10))["type"] == "hello"
