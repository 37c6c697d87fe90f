"""Camera routes over real HTTP on the embedded backend (no Redis): add, inspect, history, snapshot,
delete, persistence across a restart, and bad cameras that never hold up the good ones."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from service.api.schemas import StreamSpec
from testkit.servers import NOWHERE, free_port, wait_for
from tests.service.junk_servers import GarbageHTTP, SilentTCP


def state(app, sid):
    return app.client.get(f"/streams/{sid}").json()["state"]


def scored(app, sid):
    return app.client.get(f"/streams/{sid}").json().get("frames_scored", 0)


@pytest.mark.slow
def test_add_inspect_history_snapshot_delete(live, rtsp):
    server = rtsp(mounts="a,b")
    app = live()
    for sid, stride in (("a", 2), ("b", 1)):
        r = app.client.post("/streams", json={"id": sid, "url": f"rtsp://u:secret@127.0.0.1:{server.port}/{sid}",
                                              "fps": 10, "stride": stride, "calibrate": True})
        assert r.status_code == 201, r.text
        assert r.json()["url"] == f"rtsp://***@127.0.0.1:{server.port}/{sid}"
    wait_for(lambda: scored(app, "a") >= 10 and scored(app, "b") >= 10, 20, what="scores")
    v = app.client.get("/streams/a").json()
    assert v["state"] == "running" and v["stride"] == 2 and v["replica"] == app.services.replica_id
    assert v["scoring"] == "windows" and app.client.get("/streams/b").json()["scoring"] == "frames"
    assert v["normalisation"]["calibration"] == "warming" and v["last_score"]["frame_index"] >= 9
    for key in ("fps_measured", "frames_decoded", "frames_dropped", "frames_scored", "reconnects"):
        assert key in v
    listed = app.client.get("/streams").json()["streams"]
    assert [s["id"] for s in listed] == ["a", "b"]
    assert "secret" not in json.dumps(listed)

    items = app.client.get("/streams/a/scores").json()["items"]
    assert len(items) >= 10 and {m["type"] for m in items} == {"score"}
    assert [m["frame_index"] for m in items] == sorted(m["frame_index"] for m in items)
    since = items[-3]["timestamp"]
    later = app.client.get("/streams/a/scores", params={"since": since}).json()["items"]
    assert later and all(m["timestamp"] > since for m in later)
    with_events = app.client.get("/streams/a/scores", params={"events": "true"}).json()["items"]
    assert any(m["type"] == "status" and m["state"] == "running" for m in with_events)

    r = app.client.get("/streams/a/snapshot.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (64, 96, 3)

    metrics = app.client.get("/metrics").text
    assert 'ocrgan_frames_scored_total{stream="a"}' in metrics
    assert app.client.delete("/streams/a").status_code == 204
    assert app.client.get("/streams/a").status_code == 404
    assert app.client.delete("/streams/a").status_code == 404
    metrics = app.client.get("/metrics").text
    assert 'stream="a"' not in metrics and 'stream="b"' in metrics
    assert [s["id"] for s in app.client.get("/streams").json()["streams"]] == ["b"]


def test_cameras_calibrate_by_default_and_show_the_warm_up(live):
    app = live(calibration_frames=40)
    assert app.client.post("/streams", json={"id": "door", "url": NOWHERE}).status_code == 201
    assert app.client.post("/streams", json={"id": "flat", "url": NOWHERE, "calibrate": False}).status_code == 201
    views = {v["id"]: v for v in app.client.get("/streams").json()["streams"]}
    door, flat = views["door"], app.client.get("/streams/flat").json()
    assert door["calibrate"] is True and flat["calibrate"] is False
    assert {k: door["normalisation"][k] for k in ("calibration", "calibration_frames", "calibration_target")} == {
        "calibration": "warming", "calibration_frames": 0, "calibration_target": 40}
    assert flat["normalisation"]["calibration"] == "off" and flat["normalisation"]["calibration_target"] is None
    stored = json.loads(app.services.settings.registry_path.read_text())["streams"]
    assert stored["door"]["calibrate"] is True and stored["flat"]["calibrate"] is False


def test_refused_requests(live, tmp_path):
    app = live()
    cases = [
        ({"id": "bad id!", "url": NOWHERE}, 422),
        ({"id": "x" * 65, "url": NOWHERE}, 422),
        ({"id": "ok", "url": NOWHERE, "colour": "red"}, 422),  # unknown field
        ({"id": "ok", "url": "file:///etc/passwd"}, 422),
        ({"id": "ok", "url": "/etc/passwd"}, 422),
        ({"id": "ok", "url": "ftp://127.0.0.1:9/x"}, 422),
        ({"id": "ok", "url": "http://169.254.169.254/latest/meta-data/"}, 422),
        ({"id": "ok", "url": "http://metadata.google.internal/"}, 422),
        ({"id": "ok", "url": "rtsp://[2002:a9fe:a9fe::]/"}, 422),  # 6to4 carrying the metadata address
        ({"id": "ok", "url": "rtsp://camera.invalid/x"}, 422),  # a name that does not resolve
        ({"id": "ok", "url": NOWHERE, "stride": 9}, 422),  # the model has 8-frame windows
        ({"id": "ok", "url": NOWHERE, "fps": 0}, 422),
        ({"url": NOWHERE}, 422),
    ]
    for body, status in cases:
        r = app.client.post("/streams", json=body)
        assert r.status_code == status, (body, r.text)
    assert app.client.get("/streams").json()["streams"] == []
    for body in ({"url": "rtsp://admin:hunter2@127.0.0.1:9/x"}, {"id": "a b", "url": "rtsp://admin:hunter2@127.0.0.1:9/x"},
                 {"id": "ok", "url": "rtsp://admin:hunter2@127.0.0.1:9/" + "x" * 3000}):
        r = app.client.post("/streams", json=body)
        assert r.status_code == 422 and "hunter2" not in r.text and r.json()["detail"][0]["loc"][0] == "body"
    assert app.client.get("/streams/nope").status_code == 404
    assert app.client.get("/streams/bad%20id").status_code == 422
    assert app.client.get("/streams/nope/scores").status_code == 404
    assert app.client.get("/streams/nope/snapshot.jpg").status_code == 404
    assert app.client.post("/streams", json={"id": "cam", "url": NOWHERE}).status_code == 201
    assert app.client.post("/streams", json={"id": "cam", "url": NOWHERE}).status_code == 409


def test_a_registered_camera_whose_name_no_longer_resolves_runs_and_says_so(live, make_settings):
    """Registered while its name resolved; DNS gives nothing at start-up: the camera is not dropped, it retries
    and tells why."""
    settings = make_settings()
    spec = StreamSpec(id="cam", url="rtsp://camera.invalid/x").model_dump()
    settings.registry_path.write_text(json.dumps({"version": 1, "streams": {"cam": spec}}))
    app = live(settings)
    wait_for(lambda: app.client.get("/streams/cam").json().get("last_error"), 10, what="the camera's error")
    v = app.client.get("/streams/cam").json()
    assert v["state"] == "reconnecting" and v["last_error"] == "refused: host camera.invalid does not resolve"


@pytest.mark.slow
def test_registered_cameras_survive_a_restart(live, rtsp, make_settings):
    server = rtsp()
    settings = make_settings()
    app = live(settings)
    app.client.post("/streams", json={"id": "gate", "url": f"rtsp://127.0.0.1:{server.port}/cam", "fps": 5})
    wait_for(lambda: state(app, "gate") == "running", 20, what="running")
    app.stop()
    assert json.loads(settings.registry_path.read_text())["streams"]["gate"]["fps"] == 5
    again = live(settings)
    assert [s["id"] for s in again.client.get("/streams").json()["streams"]] == ["gate"]
    wait_for(lambda: scored(again, "gate") > 0, 20, what="scores after the restart")


@pytest.mark.slow
def test_bad_cameras_never_hold_up_good_ones(live, rtsp):
    server = rtsp()
    app = live(open_timeout_seconds=2, watchdog_seconds=2)
    with GarbageHTTP() as junk, SilentTCP() as silent:
        bad = {"junk": junk.url, "silent": f"rtsp://127.0.0.1:{silent.port}/cam",
               "refused": f"rtsp://127.0.0.1:{free_port()}/cam"}
        for sid, url in bad.items():
            assert app.client.post("/streams", json={"id": sid, "url": url}).status_code == 201
        app.client.post("/streams", json={"id": "good", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
        t0 = time.monotonic()
        wait_for(lambda: scored(app, "good") >= 8, 20, what="the good camera's scores")
        assert time.monotonic() - t0 < 10
        wait_for(lambda: all(state(app, sid) == "reconnecting" for sid in bad), 15, what="bad cameras reconnecting")
        errors = {sid: app.client.get(f"/streams/{sid}").json()["last_error"] for sid in bad}
        assert "Invalid data" in errors["junk"]
        assert errors["refused"] == "cannot open: could not connect to the camera"
        assert state(app, "good") == "running"


@pytest.mark.slow
def test_a_killed_camera_reconnects_when_it_returns(live, rtsp):
    server = rtsp()
    app = live()
    app.client.post("/streams", json={"id": "cam", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
    wait_for(lambda: scored(app, "cam") > 4, 20, what="scores")
    server.kill()
    wait_for(lambda: state(app, "cam") == "reconnecting", 10, what="reconnecting")
    assert 'ocrgan_stream_up{stream="cam"} 0.0' in app.client.get("/metrics").text
    before = scored(app, "cam")
    server.start()
    wait_for(lambda: state(app, "cam") == "running" and scored(app, "cam") > before, 20, what="running again")
    v = app.client.get("/streams/cam").json()
    assert v["reconnects"] >= 1
    text = app.client.get("/metrics").text
    assert 'ocrgan_stream_up{stream="cam"} 1.0' in text
    assert 'ocrgan_stream_reconnects_total{stream="cam"} 0.0' not in text
    statuses = [m["state"] for m in app.client.get("/streams/cam/scores", params={"events": "true"}).json()["items"]
                if m["type"] == "status"]
    assert "reconnecting" in statuses and statuses[-1] == "running"
