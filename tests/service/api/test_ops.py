"""Health, readiness, the model description and the metric names Prometheus scrapes."""

from __future__ import annotations

import pytest

from testkit.servers import NOWHERE, wait_for

STREAM_METRICS = [
    "ocrgan_frames_decoded_total", "ocrgan_frames_dropped_total", "ocrgan_frames_scored_total",
    "ocrgan_stream_up", "ocrgan_stream_reconnects_total", "ocrgan_anomaly_score", "ocrgan_anomaly_active",
    "ocrgan_stream_state",
]
GLOBAL_METRICS = [
    "ocrgan_inference_seconds", "ocrgan_batch_size", "ocrgan_end_to_end_latency_seconds",
    "ocrgan_anomaly_threshold", "ocrgan_score_requests_total", "ocrgan_publish_errors_total",
]


def test_health_readiness_and_model(live, checkpoint):
    app = live()
    assert app.client.get("/healthz").json() == {"status": "ok"}
    ready = app.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["backend"] == "embedded"
    m = app.client.get("/model").json()
    assert m["checkpoint"] == checkpoint.name and m["num_frames"] == 8 and m["channels"] == 1
    assert (m["height"], m["width"]) == (32, 48) and m["threshold"] == pytest.approx(3.0)
    host = app.services.host
    assert m["stride"] == host.stride == 4 and m["camera_stride"] == host.camera_stride == 4  # a CPU: the checkpoint's
    assert m["camera_scoring"] == "windows"
    assert app.client.get("/openapi.json").status_code == 200


def test_model_reports_how_a_camera_is_scored_by_default(live, monkeypatch):
    """Cameras at stride 1 as on a GPU: /model tells their stride and frame-by-frame scoring apart from the clips'
    stride, and the view of a camera registered without a stride agrees."""
    monkeypatch.setattr("service.inference.host.camera_stride", lambda *_: (1, "as on a GPU"))
    app = live()
    m = app.client.get("/model").json()
    assert (m["stride"], m["camera_stride"], m["camera_scoring"]) == (4, 1, "frames")
    assert m["camera_stride"] == app.services.host.camera_stride
    assert app.client.post("/streams", json={"id": "door", "url": NOWHERE}).status_code == 201
    view = app.client.get("/streams/door").json()
    assert (view["stride"], view["scoring"]) == (m["camera_stride"], m["camera_scoring"])


@pytest.mark.slow
def test_metric_names(live, rtsp):
    server = rtsp()
    app = live()
    app.client.post("/streams", json={"id": "cam", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
    wait_for(lambda: app.client.get("/streams/cam").json().get("frames_scored", 0) > 4, 20)
    text = app.client.get("/metrics").text
    for name in STREAM_METRICS:
        assert f'{name}{{stream="cam"' in text or f'{name}{{state="running",stream="cam"}} 1.0' in text, name
    for name in GLOBAL_METRICS:
        assert f"# TYPE {name} " in text, name
    assert "ocrgan_anomaly_threshold 3.0" in text
    assert 'ocrgan_stream_up{stream="cam"} 1.0' in text
    assert "ocrgan_inference_seconds_count" in text and "ocrgan_end_to_end_latency_seconds_bucket" in text


def test_two_apps_in_one_process_have_separate_metrics(live):
    a, b = live(), live()
    assert a.client.get("/metrics").status_code == b.client.get("/metrics").status_code == 200
    assert a.services.metrics.registry is not b.services.metrics.registry
