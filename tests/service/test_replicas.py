"""Several replicas on one Redis: cameras split by leases, a dead replica's cameras taken over, a lost
lease stops the worker, and Redis going away degrades publishing but never scoring."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from testkit.servers import NOWHERE, AppProcess, redis_server, wait_for

pytestmark = pytest.mark.slow
LEASE = 2.0


def redis_settings(redis_url, **kw):
    return dict(redis_url=redis_url, lease_seconds=LEASE, **kw)


def owners(app):
    return {s["id"]: (s.get("replica"), s["state"]) for s in app.client.get("/streams").json()["streams"]}


def test_replicas_split_cameras_and_take_over_a_dead_ones(live, rtsp, redis, checkpoint, tmp_path):
    cams = [f"c{i}" for i in range(4)]
    server = rtsp(mounts=",".join(cams), size="64x48", fps=5)
    a = live(**redis_settings(redis.url))
    b = AppProcess({"OCRGAN_REDIS_URL": redis.url, "OCRGAN_CHECKPOINT": str(checkpoint),
                    "OCRGAN_LEASE_SECONDS": str(LEASE), "OCRGAN_ALLOW_LOOPBACK": "true", "OCRGAN_DEVICE": "cpu",
                    "OCRGAN_TORCH_THREADS": "1", "OCRGAN_LOG_LEVEL": "info"}, tmp_path / "replica-b.log")
    try:
        b_id = b.client.get("/model").json()["replica"]
        for cam in cams:
            r = a.client.post("/streams", json={"id": cam, "url": f"rtsp://127.0.0.1:{server.port}/{cam}", "fps": 5})
            assert r.status_code == 201

        def split():
            o = owners(a)
            held = [rep for rep, st in o.values() if st == "running"]
            return len(held) == 4 and held.count(a.services.replica_id) == 2 and held.count(b_id) == 2 and o

        o = wait_for(split, 30, what="two cameras on each replica")
        assert owners(b) == o  # both replicas tell the same story
        backend = a.services.backend
        assert {cam: backend.holder(cam) for cam in cams} == {cam: rep for cam, (rep, _) in o.items()}
        assert sorted(a.services.streams.workers) == sorted(c for c, (rep, _) in o.items()
                                                            if rep == a.services.replica_id)
        # a client of replica A sees the scores of B's cameras too
        b_cam = next(c for c, (rep, _) in o.items() if rep == b_id)
        with connect(f"{a.ws_url}/ws/streams/{b_cam}") as ws:
            json.loads(ws.recv(timeout=10))  # hello
            m = wait_for(lambda: (x := json.loads(ws.recv(timeout=10)))["type"] == "score" and x, 20)
            assert m["replica"] == b_id
        # shared through Redis: B publishes its cameras' snapshots every 2 s, so one is there within that
        wait_for(lambda: a.client.get(f"/streams/{b_cam}/snapshot.jpg").status_code == 200, 5,
                 what="B's snapshot through Redis")

        b.kill()  # no goodbye: its leases expire
        wait_for(lambda: len(a.services.streams.workers) == 4 and all(
            st == "running" and rep == a.services.replica_id for rep, st in owners(a).values()),
            LEASE * 3 + 20, what="replica A to take over all four cameras")
    finally:
        b.stop()


def test_a_replica_that_loses_its_lease_stops_its_worker(live, rtsp, redis):
    server = rtsp()
    app = live(**redis_settings(redis.url))
    app.client.post("/streams", json={"id": "cam", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
    wait_for(lambda: "cam" in app.services.streams.workers, 10)
    app.services.backend.r.set("ocrgan:lease:cam", "someone-else", px=int(LEASE * 1000))
    wait_for(lambda: "cam" not in app.services.streams.workers, 5, what="the worker to stop")
    # the other replica never renews: the lease expires and this replica takes the camera back
    wait_for(lambda: "cam" in app.services.streams.workers, LEASE * 3 + 5, what="the camera to come back")
    assert app.services.backend.holder("cam") == app.services.replica_id


def test_redis_outage_degrades_publishing_not_scoring(live, rtsp, tmp_path):
    store = redis_server(tmp_path, persist=True)
    store.start()
    try:
        server = rtsp()
        app = live(**redis_settings(store.url))
        app.client.post("/streams", json={"id": "cam", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
        worker = wait_for(lambda: app.services.streams.workers.get("cam"), 10)
        wait_for(lambda: worker.counts["scored"] > 4, 20)
        store.kill()
        scored = worker.counts["scored"]
        wait_for(lambda: worker.counts["scored"] > scored + 10, 20, what="scoring to go on without Redis")
        assert app.client.get("/readyz").status_code == 503
        assert app.client.get("/streams/cam").json()["state"] == "running"
        assert app.client.post("/streams", json={"id": "x", "url": NOWHERE}).status_code == 503
        text = app.client.get("/metrics").text
        assert 'ocrgan_publish_errors_total{backend="redis"}' in text
        store.start()
        wait_for(lambda: app.client.get("/readyz").status_code == 200, 20, what="ready again")
        latest = worker.scoring.last.timestamp
        wait_for(lambda: any(m["timestamp"] >= latest for m in
                             app.client.get("/streams/cam/scores").json()["items"]), 20, what="history to resume")
        assert "cam" in app.services.streams.workers
    finally:
        store.kill()


def test_cameras_registered_in_redis_survive_a_restart(live, redis, make_settings):
    settings = make_settings(**redis_settings(redis.url))
    first = live(settings)
    r = first.client.post("/streams", json={"id": "gate", "url": NOWHERE, "fps": 4})
    assert r.status_code == 201
    first.stop()
    again = live(settings)
    assert [s["id"] for s in again.client.get("/streams").json()["streams"]] == ["gate"]
    wait_for(lambda: "gate" in again.services.streams.workers, 10, what="the camera to be taken again")
    assert again.services.streams.workers["gate"].fps == 4
