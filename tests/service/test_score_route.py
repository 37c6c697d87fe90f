"""POST /score over real HTTP: the evaluator's scores, every bad input with its status, no leftovers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import load_checkpoint, preprocess, score_clip
from tests.service import bad_media
from tests.service.servers import wait_for
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
