"""POST /score over real HTTP: the evaluator's scores, calibrated scores (the clip's opening seconds, a camera's
calibration), every bad input with its status, no leftovers."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from model import load_checkpoint, preprocess, score_clip
from tests.service import bad_media
from tests.service.servers import NOWHERE, wait_for
from tests.synthetic import write_video
from training.decode import iter_video


@pytest.fixture
def app(live):
    return live(upload_max_bytes=1_000_000, upload_max_frames=200)


def leftovers(app):
    return sorted(p.name for p in app.services.settings.upload_dir.glob("ocrgan-upload-*"))


def test_scores_agree_with_the_evaluator(app, mp4_clip, checkpoint):
    r = app.client.post("/score", files={"file": ("clip.mp4", mp4_clip.read_bytes(), "video/mp4")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["num_frames"] == 30 and (body["width"], body["height"]) == (96, 64)
    assert body["fps"] == pytest.approx(25.0)
    assert body["model"]["checkpoint"] == checkpoint.name and body["model"]["stride"] == 4
    assert body["elapsed_ms"] > 0
    # what `ocrgan eval` does with a video: decode luma with PyAV, preprocess, score_clip
    model, _ = load_checkpoint(checkpoint)
    frames = preprocess(np.stack(list(iter_video(mp4_clip, grey=True))), model.cfg)
    ref = score_clip(model, frames, model.cfg.stride, batch=8)
    got = body["frames"]
    assert [f["index"] for f in got] == list(range(30))
    assert torch.allclose(torch.tensor([f["score"] for f in got]), ref.score, atol=1e-4)
    assert torch.allclose(torch.tensor([f["normalised"] for f in got]), ref.normalised, atol=1e-3)
    assert [f["anomaly"] for f in got] == ref.anomaly.tolist()
    assert got[1]["timestamp"] == pytest.approx(0.04, abs=1e-3)
    assert leftovers(app) == []


def upload(app, clip, **params):
    r = app.client.post("/score", params=params, content=clip.read_bytes())
    assert r.status_code == 200, r.text
    return r.json()


def test_scores_are_on_the_checkpoints_scale_unless_calibrated(app, mp4_clip):
    body = upload(app, mp4_clip)
    assert body["calibration"] == "checkpoint"
    assert not any(f["calibrating"] for f in body["frames"])


def test_a_calibrated_upload_is_normalised_by_its_opening_seconds(app, mp4_clip, tmp_path):
    """Normal walkers for 18 frames, then a blob crossing too fast: the first 0.4 s (10 frames at 25 fps) are
    taken as the scene's normal footage: each cue is measured in units of its extreme there, and the scores'
    mean/std there normalise every frame; the anomaly stands out against them."""
    body = upload(app, mp4_clip, calibrate_seconds=0.4)
    frames = body["frames"]
    score = np.array([f["score"] for f in frames])
    opening = score[:10]
    mean, std = opening.mean(), max(opening.std(ddof=1), 0.05 * opening.mean())
    cal = body["calibration"]
    assert cal == {"source": "clip", "seconds": 0.4, "frames": 10, "mean": pytest.approx(mean),
                   "std": pytest.approx(std), "scales": cal["scales"]}
    assert set(cal["scales"]) == {"app", "motion", "speed", "feat"} and all(v > 0 for v in cal["scales"].values())
    assert opening.max() < 1.5  # in the scene's units a normal frame's cues are at most about 1
    assert [f["normalised"] for f in frames] == pytest.approx(((score - mean) / std).tolist(), rel=1e-6, abs=1e-9)
    assert [f["calibrating"] for f in frames] == [i < 10 for i in range(30)]
    threshold = body["model"]["threshold"]
    assert [f["anomaly"] for f in frames] == [i >= 10 and f["normalised"] > threshold for i, f in enumerate(frames)]
    flagged = [f["index"] for f in frames if f["anomaly"]]
    assert flagged and min(flagged) >= 18 and len(flagged) >= 10, flagged  # the fast blob, and nothing before it
    # the seconds run from the first frame's own timestamp: an MPEG-TS copy starts at 1.4 s
    ts = tmp_path / "clip.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4_clip), "-c", "copy", "-f", "mpegts", str(ts)], check=True)
    shifted = upload(app, ts, calibrate_seconds=0.4)
    assert shifted["frames"][0]["timestamp"] > 1.0
    assert [f["calibrating"] for f in shifted["frames"]] == [i < 10 for i in range(30)]
    assert shifted["calibration"] == body["calibration"]
    assert leftovers(app) == []


def test_calibration_requests_that_cannot_be_met_are_refused(app, mp4_clip):
    data = mp4_clip.read_bytes()
    for params, status, words in [
        ({"calibrate_seconds": 1.2}, 422, "cover all 30 frames"),  # the clip lasts 1.2 s
        ({"calibrate_seconds": 0.2}, 422, "hold 5 frame(s); calibrating needs at least 10"),
        ({"calibrate_seconds": 0.4, "camera": "door"}, 422, "not both"),
        ({"camera": "nope"}, 404, "no camera 'nope'"),
    ]:
        r = app.client.post("/score", params=params, content=data)
        assert r.status_code == status and words in r.json()["detail"], (params, r.text)
    for params in ({"calibrate_seconds": 0}, {"calibrate_seconds": "nan"}, {"camera": "a b"}):
        assert app.client.post("/score", params=params, content=data).status_code == 422, params
    assert app.client.post("/streams", json={"id": "door", "url": NOWHERE}).status_code == 201
    assert app.client.post("/streams", json={"id": "flat", "url": NOWHERE, "calibrate": False}).status_code == 201
    r = app.client.post("/score", params={"camera": "door"}, content=data)
    assert r.status_code == 409 and "door' is still calibrating (0/250 frames)" in r.json()["detail"], r.text
    r = app.client.post("/score", params={"camera": "flat"}, content=data)
    assert r.status_code == 409 and '"calibrate": false' in r.json()["detail"], r.text
    assert leftovers(app) == []


@pytest.mark.slow
def test_a_cameras_calibration_normalises_a_clip_of_its_scene(live, rtsp, mp4_clip):
    server = rtsp(fps=10)
    app = live(calibration_frames=10)
    r = app.client.post("/streams", json={"id": "gate", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
    assert r.status_code == 201 and r.json()["calibrate"] is True  # cameras calibrate by default
    view = wait_for(lambda: (v := app.client.get("/streams/gate").json())["normalisation"]["calibration"] == "done"
                    and v, 30, what="the camera to calibrate")
    norm = view["normalisation"]
    body = upload(app, mp4_clip, camera="gate")
    assert body["calibration"] == {"source": "camera", "camera": "gate", "frames": 10,
                                   "mean": norm["mean"], "std": norm["std"], "scales": norm["scales"]}
    frames = body["frames"]
    score = np.array([f["score"] for f in frames])
    assert [f["normalised"] for f in frames] == pytest.approx(((score - norm["mean"]) / norm["std"]).tolist())
    assert not any(f["calibrating"] for f in frames)
    threshold = body["model"]["threshold"]
    assert [f["anomaly"] for f in frames] == [f["normalised"] > threshold for f in frames]


def test_raw_body_and_heatmaps(app, mp4_clip):
    r = app.client.post("/score?heatmaps=true&stride=8", content=mp4_clip.read_bytes(),
                        headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    body = r.json()
    rows, cols = body["heatmap_grid"]
    assert (rows, cols) == (12, 16)
    assert len(body["frames"][0]["heatmap"]) == rows and len(body["frames"][0]["heatmap"][0]) == cols
    assert all(v >= 0 for v in body["frames"][-1]["heatmap"][3])


def test_concurrent_uploads(app, mp4_clip):
    import concurrent.futures as cf

    data = mp4_clip.read_bytes()
    with cf.ThreadPoolExecutor(3) as pool:
        codes = list(pool.map(lambda _: app.client.post("/score", content=data).status_code, range(3)))
    assert codes == [200, 200, 200]


def bad_inputs(tmp, mp4_clip, clip_frames):
    long_clip = write_video(tmp / "long.mp4", np.concatenate([clip_frames] * 8))  # 240 frames > 200
    return [
        ("text", b"just some words, not a video", 415, "not a video file"),
        ("audio", bad_media.audio_only(tmp / "a.m4a").read_bytes(), 415, "only audio"),
        ("image", bad_media.still_image(tmp / "p.png").read_bytes(), 415, "still image"),
        ("zero-frames", bad_media.zero_frames(tmp / "z.mkv").read_bytes(), 422, "no frames"),
        ("garbage", bad_media.garbage_frames(tmp / "b.mkv", mp4_clip).read_bytes(), 422, "cannot be decoded"),
        ("too-wide", write_video(tmp / "w.avi", np.zeros((2, 16, 4112), np.uint8), codec="mjpeg",
                                 pix_fmt="yuvj420p").read_bytes(), 422, "at most 4096"),
        ("too-many-frames", long_clip.read_bytes(), 413, "more than 200 frames"),
        ("too-big", bytes(1_100_000), 413, "larger than the limit"),
        ("empty", b"", 422, "empty"),
    ]


def test_every_bad_input_is_refused_with_a_reason(app, tmp_path, mp4_clip, clip_frames):
    for name, data, status, words in bad_inputs(tmp_path, mp4_clip, clip_frames):
        for multipart in (False, True):
            if multipart:
                r = app.client.post("/score", files={"file": (name, data, "application/octet-stream")})
            else:
                r = app.client.post("/score", content=data)
            assert r.status_code == status, (name, multipart, r.text)
            assert words in r.json()["detail"], (name, r.json())
            assert leftovers(app) == []
    # still serving
    assert app.client.post("/score", content=mp4_clip.read_bytes()).status_code == 200
    metrics = app.client.get("/metrics").text
    assert 'ocrgan_score_requests_total{status="415"} 6.0' in metrics
    assert 'ocrgan_score_requests_total{status="200"} 1.0' in metrics


def test_multipart_without_file_field(app, mp4_clip):
    r = app.client.post("/score", files={"video": ("clip.mp4", mp4_clip.read_bytes(), "video/mp4")})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]


def test_declared_length_over_limit_is_refused_early(app):
    """A client announcing 1 GB gets 413 before it sends it."""
    import socket

    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as s:
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: 1000000000\r\n\r\n" + b"x" * 1000)
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413")
    assert leftovers(app) == []


def test_bad_stride(app, mp4_clip):
    assert app.client.post("/score?stride=9", content=mp4_clip.read_bytes()).status_code == 422
    assert app.client.post("/score?stride=0", content=mp4_clip.read_bytes()).status_code == 422


def held_upload(port: int, size: int = 100_000):
    """A raw-body upload that announces `size` bytes, sends a few and then nothing (a slow client)."""
    import socket

    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: " + str(size).encode() + b"\r\n\r\n" + b"x" * 1000)
    return s


def test_uploads_beyond_the_limit_are_turned_away(live, mp4_clip):
    app = live(max_concurrent_uploads=2, upload_idle_timeout_seconds=30)
    held = [held_upload(app.port) for _ in range(2)]
    try:
        wait_for(lambda: leftovers(app) and len(leftovers(app)) == 2, 10, what="two uploads in progress")
        r = app.client.post("/score", content=mp4_clip.read_bytes())
        assert r.status_code == 429 and "2 uploads are already in progress" in r.json()["detail"]
        assert r.headers["retry-after"] == "5"
    finally:
        for s in held:
            s.close()
    wait_for(lambda: app.client.post("/score", content=mp4_clip.read_bytes()).status_code == 200, 10,
             what="a slot to be free again")
    assert leftovers(app) == []


def test_a_stalled_upload_is_ended(live):
    app = live(upload_idle_timeout_seconds=1)
    s = held_upload(app.port)
    try:
        s.settimeout(10)
        head = s.recv(4096).decode()
    finally:
        s.close()
    assert head.startswith("HTTP/1.1 408") and "sent nothing for 1 s" in head
    assert leftovers(app) == []
