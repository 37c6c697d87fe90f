"""Redis killed and started again (append-only file, as in the compose stack) under two replicas:
scoring never stops, publishing resumes (history and the other replica's WebSockets), the registry is
intact, and the replicas renew their leases without any camera scored by two replicas at once."""

from __future__ import annotations

import threading
import time

import pytest

from testkit.servers import redis_server, wait_for
from testkit.ws_recorder import WsRecorder

pytestmark = pytest.mark.slow
LEASE = 2.0
CAMS = ["c0", "c1", "c2", "c3"]


class OwnershipWatch:
    """Samples, every 20 ms, which replicas run a live worker for each camera; remembers the most at once."""

    def __init__(self, apps) -> None:
        self.apps = apps
        self.most = dict.fromkeys(CAMS, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for cam in CAMS:
                n = sum(1 for app in self.apps if (w := app.services.streams.workers.get(cam)) is not None and w.alive)
                self.most[cam] = max(self.most[cam], n)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def scored(apps) -> dict[str, int]:
    return {cam: w.counts["scored"] for app in apps for cam, w in list(app.services.streams.workers.items())}


def test_redis_killed_and_restarted_under_two_replicas(live, rtsp, tmp_path):
    store = redis_server(tmp_path, persist=True)
    watch = None
    try:  # the private Redis is killed whatever fails, including the fixtures started here
        store.start()
        server = rtsp(mounts=",".join(CAMS), size="64x48", fps=10)
        apps = [live(redis_url=store.url, lease_seconds=LEASE) for _ in range(2)]
        a, b = apps
        for cam in CAMS:
            r = a.client.post("/streams", json={"id": cam, "url": f"rtsp://127.0.0.1:{server.port}/{cam}"})
            assert r.status_code == 201
        wait_for(lambda: all(len(app.services.streams.workers) == 2 for app in apps)
                 and all(n > 4 for n in scored(apps).values()) and len(scored(apps)) == 4, 30,
                 what="two cameras scoring on each replica")
        owner = {cam: app for app in apps for cam in app.services.streams.workers}
        workers = {cam: owner[cam].services.streams.workers[cam] for cam in CAMS}
        registry = a.services.backend.load_specs()
        b_cam = next(cam for cam in CAMS if owner[cam] is b)
        watch = OwnershipWatch(apps)

        store.kill()
        before = scored(apps)
        time.sleep(2 * LEASE)  # every lease and heartbeat expires meanwhile
        during = scored(apps)
        assert all(during[cam] >= before[cam] + 10 for cam in CAMS), (before, during)  # 10 fps cameras
        assert all(app.client.get("/readyz").status_code == 503 for app in apps)
        assert a.client.get(f"/streams/{b_cam}").status_code == 200  # answered from what A last read

        store.start()
        back = time.time()
        wait_for(lambda: all(app.client.get("/readyz").status_code == 200 for app in apps), 20, what="ready")
        with WsRecorder(f"{a.ws_url}/ws/streams/{b_cam}") as ws:  # B's camera, through A: pub/sub is back
            wait_for(lambda: any(m["replica"] == b.services.replica_id and m["timestamp"] > back
                                 for m in ws.of("score")), 20, what="B's scores on A's WebSocket")
        for cam in CAMS:
            wait_for(lambda cam=cam: any(m["timestamp"] > back for m in a.client.get(
                f"/streams/{cam}/scores").json()["items"]), 20, what=f"{cam}'s history to resume")
        time.sleep(2 * LEASE)  # time for any replica to take or hand over cameras
        after = scored(apps)
        backend = a.services.backend
        assert backend.load_specs() == registry  # the registry survived the restart
        assert {cam: backend.holder(cam) for cam in CAMS} == {cam: owner[cam].services.replica_id for cam in CAMS}
    finally:
        if watch is not None:
            watch.stop()
        store.kill()
    assert watch.most == dict.fromkeys(CAMS, 1)  # never two replicas on one camera
    assert all(after[cam] > during[cam] for cam in CAMS)
    for cam in CAMS:  # the same replica, the same worker, all along: leases renewed, nothing restarted
        assert owner[cam].services.streams.workers.get(cam) is workers[cam], cam
