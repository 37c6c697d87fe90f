"""POST /score over real HTTP: the evaluator's scores, calibrated scores (the clip's opening seconds, a camera's
calibration), every bad input with its status, no leftovers."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from model import load_checkpoint, preprocess, score_clip
from model.scoring import CUES
from testkit.servers import NOWHERE, wait_for
from testkit.synthetic import write_video
from tests.service import bad_media
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
    assert set(cal["scales"]) == set(CUES) and all(v > 0 for v in cal["scales"].values())
    assert opening.max() < 1.5  # in the scene's units a normal frame's cues are at most about 1
    assert [f["normalised"] for f in frames] == pytest.approx(((score - mean) / std).tolist(), rel=1e-6, abs=1e-9)
    assert [f["calibrating"] for f in frames] == [i < 10 for i in range(30)]
    threshold = body["model"]["threshold"]
    assert [f["anomaly"] for f in frames] == [i >= 10 and f["normalised"] > threshold for i, f in enumerate(frames)]
    flagged = [f["index"] for f in frames if f["anomaly"]]
    assert flagged and min(flagged) >= 18 and len(flagged) >= 10, flagged  # the fast blob, and nothing before it
    # timestamps and seconds run from the first frame: an MPEG-TS copy starts 1.4 s into its stream
    ts = tmp_path / "clip.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4_clip), "-c", "copy", "-f", "mpegts", str(ts)], check=True)
    shifted = upload(app, ts, calibrate_seconds=0.4)
    assert [f["timestamp"] for f in shifted["frames"]] == [f["timestamp"] for f in frames]
    assert shifted["start_time"] == pytest.approx(1.4, abs=0.1) and body["start_time"] == 0.0
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
    assert r.status_code == 409 and "door' is still calibrating (0/600 frames)" in r.json()["detail"], r.text
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
    assert (body["width"], body["height"], body["rotation"]) == (96, 64, 0)
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
        ("too-many-frames-ts", bad_media.black_h264(tmp / "many.ts", "16x16", 201).read_bytes(), 413,
         "more than 200 frames"),  # no frame count in an MPEG-TS header
        ("bomb-ts", bad_media.black_h264(tmp / "bomb.ts", "4096x2304", 100).read_bytes(), 413, "decompression bomb"),
        ("one-pixel", bad_media.tiny(tmp / "tiny.mp4", "1x1").read_bytes(), 422, "at least 16 pixels"),
        ("junk-after-ts", bad_media.junk_after(tmp / "junk.ts", bad_media.busy_h264(tmp / "good.ts", "96x64", 50),
                                               200_000).read_bytes(), 422, "mpegts file is damaged"),
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
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as s:
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: 1000000000\r\n\r\n" + b"x" * 1000)
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413")
    assert leftovers(app) == []


def test_bad_stride(app, mp4_clip):
    assert app.client.post("/score?stride=9", content=mp4_clip.read_bytes()).status_code == 422
    assert app.client.post("/score?stride=0", content=mp4_clip.read_bytes()).status_code == 422


def held_upload(port: int, size: int = 100_000, body: bytes = b"x" * 1000) -> socket.socket:
    """A raw-body upload that announces `size` bytes, sends `body` and then nothing (a slow client)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: " + str(size).encode() + b"\r\n\r\n" + body)
    return s


def read_answer(s: socket.socket, timeout: float) -> tuple[int, str]:
    """The status and body of the HTTP response arriving on `s`."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, f"the server closed the connection without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and (chunk := s.recv(4096)):
        body += chunk
    return int(head.split()[1]), body.decode()


class Trickle:
    """An upload that sends its header, then a byte every `every` seconds: never idle, hardly moving."""

    def __init__(self, port: int, every: float) -> None:
        self.sock = held_upload(port, body=b"x")
        self.every = every
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._drip, name="trickle", daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        while not self.done.wait(self.every):
            try:
                self.sock.sendall(b"x")
            except OSError:  # answered and closed by the server
                return

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)
        self.sock.close()


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


def test_trickling_uploads_cannot_hold_the_upload_slots(live, mp4_clip):
    """The defaults against 8 clients sending a byte every 2 s (never idle for 30 s): they hold all 8 upload slots
    until the minimum rate applies, 10 s in; each then gets 408 and its slot is free for a normal upload."""
    app = live()
    s = app.services.settings
    assert (s.max_concurrent_uploads, s.upload_rate_grace_seconds, s.upload_idle_timeout_seconds) == (8, 10, 30)
    tricklers = [Trickle(app.port, every=2.0) for _ in range(8)]
    try:
        wait_for(lambda: len(leftovers(app)) == 8, 10, what="eight uploads in progress")
        assert app.client.post("/score", content=mp4_clip.read_bytes()).status_code == 429
        answers = [read_answer(t.sock, timeout=30) for t in tricklers]
    finally:
        for t in tricklers:
            t.close()
    for status, detail in answers:
        assert status == 408 and "the upload is too slow" in detail and "bytes/s" in detail, detail
    assert app.client.post("/score", content=mp4_clip.read_bytes()).status_code == 200
    assert leftovers(app) == []


@pytest.mark.parametrize(("limits", "words"), [
    ({"upload_min_bytes_per_second": 1000, "upload_rate_grace_seconds": 1}, "the upload is too slow"),
    ({"upload_min_bytes_per_second": 0, "upload_timeout_seconds": 1.5}, "the upload took longer than 1.5 s"),
], ids=["minimum-rate", "total-time"])
def test_a_trickling_upload_is_ended(live, mp4_clip, limits, words):
    app = live(max_concurrent_uploads=1, **limits)
    trickle = Trickle(app.port, every=0.2)
    try:
        status, detail = read_answer(trickle.sock, timeout=15)
    finally:
        trickle.close()
    assert status == 408 and words in detail, detail
    assert app.client.post("/score", content=mp4_clip.read_bytes()).status_code == 200  # its slot is free again
    assert leftovers(app) == []


@pytest.fixture(scope="module")
def busy_clip(tmp_path_factory) -> Path:
    """1500 frames of a moving pattern at 320x240: seconds of decoding and scoring, even for the tiny model."""
    return bad_media.busy_h264(tmp_path_factory.mktemp("busy") / "busy.mp4", "320x240", 1500)


def test_a_clip_over_its_time_budget_is_refused(live, busy_clip):
    app = live(upload_processing_timeout_seconds=0.2)
    r = app.client.post("/score", content=busy_clip.read_bytes())
    assert r.status_code == 413 and "took longer than 0.2 s" in r.json()["detail"], r.text
    assert leftovers(app) == []


def test_a_client_that_leaves_stops_the_scoring(live, busy_clip, mp4_clip):
    """A client that disconnects once its upload is in: the scoring stops (counted as 499) and frees its slot."""
    app = live(max_concurrent_uploads=1)
    data = busy_clip.read_bytes()
    s = held_upload(app.port, len(data), data)
    try:
        wait_for(lambda: [p.stat().st_size for p in app.services.settings.upload_dir.glob("ocrgan-upload-*")]
                 == [len(data)], 10, what="the upload to be in")
    finally:
        s.close()
    metrics = wait_for(lambda: (m := app.client.get("/metrics").text) and 'status="499"} 1.0' in m and m, 10,
                       what="the scoring to stop")
    assert 'status="200"' not in metrics
    assert app.client.post("/score", content=mp4_clip.read_bytes()).status_code == 200
    assert leftovers(app) == []
