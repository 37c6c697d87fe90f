"""The RTSP server killed mid-stream and started again: every camera is back to running within 5 s of
the server's return, with the default backoff, and the states it went through are visible in the API,
on the WebSocket and in the metrics."""

from __future__ import annotations

import time

import pytest

from service.settings import Settings
from testkit.scrape import value
from testkit.servers import wait_for
from testkit.ws_recorder import WsRecorder

pytestmark = pytest.mark.slow
CAMS = ["a", "b", "c"]
RECOVERY_BOUND_S = 5.0


def default(name: str):
    return Settings.model_fields[name].default


def views(app) -> dict[str, dict]:
    return {v["id"]: v for v in app.client.get("/streams").json()["streams"]}


def test_cameras_are_back_within_5s_of_the_servers_return(live, rtsp):
    server = rtsp(mounts=",".join(CAMS), fps=10)
    app = live(**{k: default(k) for k in ("reconnect_base_seconds", "reconnect_cap_seconds", "watchdog_seconds",
                                          "open_timeout_seconds")})
    with WsRecorder(f"{app.ws_url}/ws/streams") as ws:
        for cam in CAMS:
            url = f"rtsp://127.0.0.1:{server.port}/{cam}"
            assert app.client.post("/streams", json={"id": cam, "url": url}).status_code == 201
        wait_for(lambda: all(v["state"] == "running" and v["frames_scored"] > 4 for v in views(app).values()),
                 30, what="every camera scoring")

        server.kill()
        wait_for(lambda: all(v["state"] == "reconnecting" for v in views(app).values()), 10, what="reconnecting")
        down = app.client.get("/metrics").text
        for cam in CAMS:
            assert value(down, "ocrgan_stream_up", stream=cam) == 0.0
            assert value(down, "ocrgan_stream_state", stream=cam, state="reconnecting") == 1.0
            assert app.client.get(f"/streams/{cam}").json()["last_error"]  # why it is reconnecting
        time.sleep(default("reconnect_cap_seconds") + 2)  # long enough for the backoff to reach its cap
        scored = {cam: v["frames_scored"] for cam, v in views(app).items()}

        server.start()
        back = time.monotonic()
        recovered: dict[str, float] = {}

        def all_running() -> bool:
            for cam, v in views(app).items():
                if v["state"] == "running":
                    recovered.setdefault(cam, time.monotonic() - back)
            return len(recovered) == len(CAMS)

        wait_for(all_running, 20, interval=0.05, what="every camera running again")
        print("\nback to running after the server's return: "
              + ", ".join(f"{cam} {t:.2f}s" for cam, t in sorted(recovered.items())))
        assert max(recovered.values()) <= RECOVERY_BOUND_S, recovered
        wait_for(lambda: all(v["frames_scored"] > scored[cam] + 4 for cam, v in views(app).items()), 20,
                 what="scores after the return")

    up = app.client.get("/metrics").text
    for cam in CAMS:
        assert ws.states(cam)[-2:] == ["reconnecting", "running"], ws.states(cam)
        assert "running" in ws.states(cam)[:-2]  # it was running before the outage, on the same socket
        assert value(up, "ocrgan_stream_up", stream=cam) == 1.0
        assert value(up, "ocrgan_stream_state", stream=cam, state="running") == 1.0
        assert value(up, "ocrgan_stream_reconnects_total", stream=cam) >= 1
        history = app.client.get(f"/streams/{cam}/scores", params={"events": "true", "limit": 10_000}).json()
        states = [m["state"] for m in history["items"] if m["type"] == "status"]
        assert states[-2:] == ["reconnecting", "running"] and "running" in states[:-2], states
        v = app.client.get(f"/streams/{cam}").json()
        assert v["reconnects"] >= 1 and v["state"] == "running"
