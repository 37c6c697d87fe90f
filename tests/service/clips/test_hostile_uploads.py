"""A corpus of bad videos sent to a running service (its own process) while it scores a camera:
each gets its 4xx with a clear message, the service's resident memory stays bounded, it keeps
scoring the camera and answering, leaves no temp files and logs no error."""

from __future__ import annotations

import statistics
import time

import pytest

from testkit.proc_stats import MB, ProcessSampler
from testkit.servers import AppProcess, wait_for
from tests.service import hostile_corpus

pytestmark = pytest.mark.slow
RSS_BOUND_MB = 400  # growth over the warmed-up service while the corpus is sent


def camera(app) -> dict:
    return app.client.get("/streams/cam").json()


def test_the_bad_video_corpus(rtsp, checkpoint, mp4_clip, tmp_path):
    cases = hostile_corpus.build(tmp_path, mp4_clip)
    server = rtsp(fps=10)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    app = AppProcess({"OCRGAN_CHECKPOINT": str(checkpoint), "OCRGAN_ALLOW_LOOPBACK": "true", "OCRGAN_DEVICE": "cpu",
                      "OCRGAN_TORCH_THREADS": "1", "OCRGAN_REGISTRY_PATH": str(tmp_path / "streams.json"),
                      "OCRGAN_UPLOAD_DIR": str(uploads), "OCRGAN_UPLOAD_MAX_FRAMES": str(hostile_corpus.MAX_FRAMES),
                      "OCRGAN_UPLOAD_MAX_BYTES": str(hostile_corpus.MAX_BYTES)}, tmp_path / "service.log")
    sampler = ProcessSampler(app.pid)
    try:
        app.client.post("/streams", json={"id": "cam", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
        wait_for(lambda: camera(app).get("frames_scored", 0) > 8, 30, what="the camera scoring")
        assert app.client.post("/score", files={"file": ("ok.mp4", mp4_clip.read_bytes())}).status_code == 200
        time.sleep(1.0)
        start = sampler.elapsed()
        baseline = statistics.median(s.rss for s in sampler.since(start - 1.0))
        before = camera(app)
        answers = []
        for case in cases:
            t0 = time.monotonic()
            r = app.client.post("/score", files={"file": (case.filename, case.data, "application/octet-stream")})
            answers.append((case.name, r.status_code, r.json().get("detail", ""), time.monotonic() - t0))
            assert camera(app)["state"] == "running", case.name
        elapsed = sampler.elapsed() - start
        after = camera(app)
        peak = max(s.rss for s in sampler.since(start))
        healthy = app.client.get("/healthz").status_code
    finally:
        sampler.stop()
        app.stop()

    print(f"\n{'input':48} status  seconds  detail")
    for name, status, detail, seconds in answers:
        print(f"{name:48} {status:6} {seconds:8.2f}  {str(detail)[:90]}")
    scored = after["frames_scored"] - before["frames_scored"]
    print(f"RSS: warmed-up {baseline / MB:.0f} MB, peak {peak / MB:.0f} MB during the corpus ({elapsed:.0f} s); "
          f"camera: {scored} frames scored, {after['frames_dropped'] - before['frames_dropped']} dropped")
    for case, (name, status, detail, _) in zip(cases, answers, strict=True):
        assert status in case.status, (name, status, detail)
        if status >= 400:
            assert any(w in detail for w in case.words), (name, detail)
            assert str(tmp_path) not in detail  # no server-side paths
    assert healthy == 200 and app.proc.returncode is not None  # answered to the end, then stopped cleanly
    assert (peak - baseline) / MB < RSS_BOUND_MB
    assert scored >= 10 * elapsed * 0.5  # the 10 fps camera kept being scored throughout
    assert list(uploads.iterdir()) == []
    log = app.log.read_text()
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
