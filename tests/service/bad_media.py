"""Files that are not usable clips, made by the tests: audio only, zero frames, still images, garbage."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import cv2
import numpy as np


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for _ in range(10):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate = 16000
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def zero_frames(path: Path) -> Path:
    """A Matroska file with an H.264 video stream and no frame (ffmpeg writes the header)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25",
                    "-frames:v", "0", "-c:v", "libx264", str(path)], check=True)
    return path


def still_image(path: Path) -> Path:
    cv2.imwrite(str(path), np.full((48, 64), 128, np.uint8))
    return path


def garbage_frames(path: Path, good: Path) -> Path:
    """A valid container and H.264 stream header (from `good`) whose every packet is random bytes."""
    rng = np.random.default_rng(0)
    with av.open(str(good)) as src, av.open(str(path), "w", format="matroska") as dst:
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        for p in src.demux(stream):
            if p.size == 0:
                continue
            q = av.Packet(rng.integers(0, 255, p.size, dtype=np.uint8).tobytes())
            q.pts, q.dts, q.time_base, q.stream = p.pts, p.dts, p.time_base, out
            dst.mux(q)
    return path


def _lavfi(path: Path, source: str, frames: int, *codec: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-frames:v", str(frames), *codec,
                    str(path)], check=True)
    return path


def black_h264(path: Path, size: str, frames: int, fps: int = 25) -> Path:
    """A static black H.264 clip: a few bytes per frame, whatever the frame size."""
    return _lavfi(path, f"color=black:s={size}:r={fps}", frames, "-c:v", "libx264", "-preset", "ultrafast",
                  "-pix_fmt", "yuv420p")


def busy_h264(path: Path, size: str, frames: int, fps: int = 25) -> Path:
    """A moving test pattern in H.264: every frame costs real decoding and scoring."""
    return _lavfi(path, f"testsrc=size={size}:rate={fps}", frames, "-c:v", "libx264", "-preset", "ultrafast",
                  "-pix_fmt", "yuv420p")


def huge_frames(path: Path, side: int = 8000) -> Path:
    """Two side x side MJPEG frames in an AVI (decoded, each would be side*side*1.5 bytes)."""
    return _lavfi(path, f"color=black:s={side}x{side}:r=25", 2, "-c:v", "mjpeg", "-pix_fmt", "yuvj420p")


def tiny(path: Path, size: str, frames: int = 10) -> Path:
    """An H.264 clip of a few pixels a side (4:4:4: 4:2:0 needs even sides), scaled down from a test pattern."""
    w, h = size.split("x")
    return _lavfi(path, "testsrc=size=64x48:rate=25", frames, "-vf", f"scale={w}:{h}", "-c:v", "libx264",
                  "-pix_fmt", "yuv444p")


def rotated(path: Path, good: Path, degrees: int) -> Path:
    """`good`'s packets, copied, with the display matrix that the `rotate` tag sets (FFmpeg 5's spelling; FFmpeg 7
    drops the tag for the input option `-display_rotation`)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(good), "-c", "copy", "-metadata:s:v", f"rotate={degrees}",
                    str(path)], check=True)
    return path


def junk_after(path: Path, good: Path, size: int, seed: int = 0) -> Path:
    """A good file followed by `size` random bytes (a damaged recording, or junk spliced on)."""
    path.write_bytes(good.read_bytes() + np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def truncated(path: Path, good: Path, keep: float) -> Path:
    """The first `keep` share of a good file's bytes."""
    data = good.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def random_bytes(path: Path, size: int, seed: int) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path
