"""Small synthetic surveillance videos for the tests and scripts: blobs walking slowly to the right are normal;
the anomalies are a block crossing too fast ("fast"), one moving vertically ("wrong-way"), a walker going left
at a walker's speed ("backwards") and a foreign object, a dark square, walking right at a walker's speed
("foreign")."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np


def moving_shapes(n: int, h: int = 64, w: int = 96, seed: int = 0, anomaly_from: int | None = None,
                  anomaly: str = "fast") -> tuple[np.ndarray, np.ndarray]:
    """(frames (n, h, w) uint8 grey, labels (n,) 0/1); speeds are in pixels per frame at 96 pixels wide."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    background = (60 + 40 * xx / w + 20 * np.sin(yy / 7.0)).astype(np.float32)
    k = w / 96  # sizes and speeds scale with the frame
    walkers = [(rng.uniform(8 * k, h - 8 * k), rng.uniform(0, w), k * rng.uniform(0.8, 1.5)) for _ in range(3)]
    frames = np.empty((n, h, w), np.uint8)
    labels = np.zeros(n, np.uint8)
    for t in range(n):
        img = background.copy()
        for y, x0, v in walkers:
            x = (x0 + v * t) % w
            cv2.ellipse(img, (int(x), int(y)), (round(3 * k), round(6 * k)), 0, 0, 360, 200.0, -1)
        if anomaly_from is not None and t >= anomaly_from:
            j = t - anomaly_from
            if anomaly == "fast":
                x, y = (5 * k + 9 * k * j) % w, h // 2
                cv2.rectangle(img, (int(x - 5 * k), int(y - 4 * k)), (int(x + 5 * k), int(y + 4 * k)), 240.0, -1)
            elif anomaly == "wrong-way":  # moves vertically against the flow
                x, y = w // 3, (h - 5 * k - 4 * k * j) % h
                cv2.rectangle(img, (int(x - 5 * k), int(y - 4 * k)), (int(x + 5 * k), int(y + 4 * k)), 240.0, -1)
            elif anomaly == "backwards":  # a walker, at a walker's speed, to the left
                x, y = (w - 10 * k - 1.2 * k * j) % w, h // 2
                cv2.ellipse(img, (int(x), int(y)), (round(3 * k), round(6 * k)), 0, 0, 360, 200.0, -1)
            elif anomaly == "foreign":  # nothing like a walker, at a walker's speed, the normal way
                x, y = (10 * k + 1.2 * k * j) % w, h // 2
                cv2.rectangle(img, (int(x - 7 * k), int(y - 7 * k)), (int(x + 7 * k), int(y + 7 * k)), 20.0, -1)
            else:
                raise ValueError(f"unknown anomaly {anomaly!r}")
            labels[t] = 1
        img += rng.normal(0, 2.0, img.shape).astype(np.float32)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames, labels


def write_frames(folder: Path, frames: np.ndarray, suffix: str = ".png", digits: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:0{digits}d}{suffix}"), f)


def write_video(path: Path, frames: np.ndarray, fps: int = 25, codec: str = "libx264", pix_fmt: str = "yuv420p",
                container: str | None = None) -> Path:
    """Encode grey (n, h, w) or RGB (n, h, w, 3) frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = pix_fmt
        if codec == "libx264":
            s.options = {"crf": "12", "preset": "ultrafast"}
        for f in frames:
            rgb = np.repeat(f[..., None], 3, axis=2) if f.ndim == 2 else f
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def make_frame_folder_dataset(root: Path, n_train: int = 3, n_test: int = 2, length: int = 40, h: int = 64,
                              w: int = 96) -> Path:
    """<root>/{training,testing}/frames/<clip>/<nnn>.png + labels.json."""
    for i in range(n_train):
        frames, _ = moving_shapes(length, h, w, seed=i)
        write_frames(root / "training" / "frames" / f"{i + 1:02d}", frames)
    labels = {}
    for i in range(n_test):
        frames, lab = moving_shapes(length, h, w, seed=100 + i, anomaly_from=length // 2)
        write_frames(root / "testing" / "frames" / f"{i + 1:02d}", frames)
        labels[f"{i + 1:02d}"] = lab.tolist()
    (root / "labels.json").write_text(json.dumps({"labels": labels}))
    return root


def make_ucsd_dataset(root: Path, n_train: int = 2, n_test: int = 2, length: int = 30) -> Path:
    """UCSDped2/{Train,Test}/<Clip>/<nnn>.tif and UCSDped2/Test/UCSDped2.m (1-based ranges)."""
    ds = root / "UCSDped2"
    for i in range(n_train):
        frames, _ = moving_shapes(length, seed=i)
        write_frames(ds / "Train" / f"Train{i + 1:03d}", frames, ".tif")
    lines = ["TestVideoFile = {};"]
    for i in range(n_test):
        start = length // 2 + i
        frames, _ = moving_shapes(length, seed=50 + i, anomaly_from=start)
        write_frames(ds / "Test" / f"Test{i + 1:03d}", frames, ".tif")
        (ds / "Test" / f"Test{i + 1:03d}_gt").mkdir()
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{start + 1}:{length}];")
    (ds / "Test" / "UCSDped2.m").write_text("\n".join(lines) + "\n")
    return root


def make_video_dataset(root: Path, n_train: int = 2, n_test: int = 1, length: int = 40) -> Path:
    """<root>/training/*.mp4 and <root>/testing/*.avi with labels.json keyed by file name."""
    for i in range(n_train):
        frames, _ = moving_shapes(length, seed=i)
        write_video(root / "training" / f"cam{i}.mp4", frames)
    labels = {}
    for i in range(n_test):
        frames, lab = moving_shapes(length, seed=70 + i, anomaly_from=length // 2)
        write_video(root / "testing" / f"test{i}.avi", frames, codec="mjpeg", pix_fmt="yuvj420p")
        labels[f"test{i}.avi"] = lab.tolist()
    (root / "testing" / "labels.json").write_text(json.dumps(labels))
    return root
