"""Credentials in camera URLs and the API key never leave the service: not in responses, WebSocket
messages, metric labels or its log (at debug level, FFmpeg's output included); only the registry
file, which needs them to connect, holds them, readable by its owner only."""

from __future__ import annotations

import json
import stat

import pytest

from testkit.servers import AppProcess, free_port, wait_for
from testkit.ws_recorder import WsRecorder

pytestmark = pytest.mark.slow
KEY = "k3y-0f-the-service"
PASSWORD = "hunter2"


def test_credentials_appear_nowhere(rtsp, checkpoint, tmp_path):
    server = rtsp()
    registry = tmp_path / "state" / "streams.json"
    app = AppProcess({"OCRGAN_CHECKPOINT": str(checkpoint), "OCRGAN_API_KEY": KEY, "OCRGAN_LOG_LEVEL": "debug",
                      "OCRGAN_ALLOW_LOOPBACK": "true", "OCRGAN_REGISTRY_PATH": str(registry),
                      "OCRGAN_DEVICE": "cpu", "OCRGAN_TORCH_THREADS": "1", "OCRGAN_RECONNECT_CAP_SECONDS": "1"},
                     tmp_path / "service.log")
    auth = {"X-API-Key": KEY}
    cams = {"live": f"rtsp://admin:{PASSWORD}@127.0.0.1:{server.port}/cam",
            "refused": f"rtsp://admin:{PASSWORD}@127.0.0.1:{free_port()}/cam",
            "query": f"http://127.0.0.1:{free_port()}/video.mjpg?user=admin&password={PASSWORD}"}
    seen: list[str] = []
    try:
        with WsRecorder(f"ws://127.0.0.1:{app.port}/ws/streams?api_key={KEY}") as ws:
            for sid, url in cams.items():
                r = app.client.post("/streams", json={"id": sid, "url": url}, headers=auth)
                assert r.status_code == 201, r.text
                seen.append(r.text)
            refused = [app.client.post("/streams", json={"id": "live", "url": cams["live"]}, headers=auth),
                       app.client.post("/streams", json={"id": "ftp", "url": f"ftp://admin:{PASSWORD}@10.0.0.1/x"},
                                       headers=auth),
                       app.client.post("/streams", json={"id": "x y", "url": cams["live"]}, headers=auth)]
            assert [r.status_code for r in refused] == [409, 422, 422]
            seen += [r.text for r in refused]

            def settled():
                views = {v["id"]: v for v in app.client.get("/streams").json()["streams"]}
                return (views["live"].get("frames_scored", 0) > 8 and views["refused"]["reconnects"] >= 2
                        and views["query"]["reconnects"] >= 2)

            wait_for(settled, 30, what="one camera scoring, two failing again and again")
            for path in ["/streams", *[f"/streams/{sid}" for sid in cams],
                         *[f"/streams/{sid}/scores?events=true&limit=10000" for sid in cams], "/metrics", "/model"]:
                seen.append(app.client.get(path).text)
        seen += [json.dumps(m) for m in ws.messages]
    finally:
        app.stop()
    log = app.log.read_text()
    for text in [*seen, log]:
        assert PASSWORD not in text and KEY not in text
    # the places where they would have been are there, redacted
    assert "rtsp://***@127.0.0.1" in log and "password=***" in log and "api_key=***" in log
    assert any("rtsp://***@127.0.0.1" in t for t in seen) and any("password=***" in t for t in seen)
    assert any(m["type"] == "status" and m["state"] == "reconnecting" for m in ws.messages)
    assert PASSWORD in registry.read_text()  # needed to connect after a restart
    assert stat.S_IMODE(registry.stat().st_mode) == 0o600
