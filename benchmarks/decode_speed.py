"""Decode speed on this machine: the ways to turn an encoded clip into the uint8 frames the model's
preprocess() takes, in frames/s, against baselines measured in the same run.

    python benchmarks/decode_speed.py [--seconds 10] [--sizes 240x160,1280x720,1920x1080] [--repeat 3]

Clips: the bundled demo clip (240x160, H.264) and H.264 clips of ffmpeg's testsrc2 at the other sizes
(made in a temp folder, libx264 veryfast, crf 23, 25 fps). Paths, each over the whole clip:
  decode only          PyAV decode, no conversion (what every path pays)
  to_ndarray           frame.to_ndarray(format=...) per frame (builds a new scaler context every frame)
  reformatter          one VideoReformatter reused for the clip (the service's clips and cameras)
  Y plane + LUT        grey only: the luma plane as it comes out of the decoder, expanded to full range
                       with a 256-entry table read off swscale itself, so it equals "gray" exactly
  OpenCV               cv2.VideoCapture (BGR), cvtColor to grey / RGB
  + preprocess         the path plus model.preprocess() to the shipped model's 128x192 input; "prescaled"
                       is the cameras' path: the scaler shrinks big frames to 2x the model size first
PyAV decoding uses FFmpeg's threads (thread_type AUTO) unless marked "1 thread". Best of --repeat runs.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from av.video.reformatter import Interpolation, VideoReformatter

from model import OCRGANConfig, preprocess
from service.demo import DEMO_CLIP

MODEL = OCRGANConfig(isize=(128, 192), nc=1, ngf=16, ndf=16, stride=8)  # the shipped model's input
Path_ = Callable[[Path], Iterator[np.ndarray | None]]


def frames(path: Path, threads: bool = True) -> Iterator[av.VideoFrame]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO" if threads else "NONE"
        yield from c.decode(s)


def decode_only(path: Path) -> Iterator[None]:
    for _ in frames(path):
        yield None


def to_ndarray(fmt: str) -> Path_:
    def run(path: Path) -> Iterator[np.ndarray]:
        for f in frames(path):
            yield f.to_ndarray(format=fmt)
    return run


def reformatter(fmt: str, threads: bool = True) -> Path_:
    def run(path: Path) -> Iterator[np.ndarray]:
        convert = VideoReformatter()
        for f in frames(path, threads):
            yield convert.reformat(f, format=fmt).to_ndarray()
    return run


def prescaled(path: Path) -> Iterator[np.ndarray]:
    """The cameras' path: frames over twice the model size are shrunk (AREA) by the scaler while converting."""
    convert = VideoReformatter()
    h, w = MODEL.hw
    for f in frames(path):
        if f.width > 2 * w and f.height > 2 * h:
            yield convert.reformat(f, width=2 * w, height=2 * h, format="gray",
                                   interpolation=Interpolation.AREA).to_ndarray()
        else:
            yield convert.reformat(f, format="gray").to_ndarray()


def luma_table(frame: av.VideoFrame) -> np.ndarray | None:
    """Y value -> swscale's "gray" value for frames like this one (format and colour range), or None."""
    if frame.format.name not in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"):
        return None
    probe = av.VideoFrame(256, 2, frame.format.name)  # a ramp of every Y value, neutral chroma
    probe.color_range = frame.color_range
    for i, plane in enumerate(probe.planes):
        rows = np.full((plane.height, plane.line_size), 128, np.uint8)
        if i == 0:
            rows[:, :256] = np.arange(256, dtype=np.uint8)
        plane.update(rows.tobytes())
    return probe.reformat(format="gray").to_ndarray()[0, :256].copy()


def y_plane_lut(path: Path) -> Iterator[np.ndarray]:
    table = None
    for f in frames(path):
        if table is None:
            table = luma_table(f)
        plane = f.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : f.width]
        yield table[y]


def opencv(code: int | None) -> Path_:
    def run(path: Path) -> Iterator[np.ndarray]:
        cap = cv2.VideoCapture(str(path))
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield bgr if code is None else cv2.cvtColor(bgr, code)
        finally:
            cap.release()
    return run


def with_preprocess(source: Path_) -> Path_:
    def run(path: Path) -> Iterator[torch.Tensor]:
        for image in source(path):
            yield preprocess(image[None], MODEL)
    return run


def speed(run: Path_, path: Path, repeat: int) -> tuple[float, int]:
    """(best frames/s over `repeat` runs, frames)."""
    best, n = 0.0, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = sum(1 for _ in run(path))
        best = max(best, n / (time.perf_counter() - t0))
    return best, n


def make_clip(tmp: Path, size: str, seconds: float) -> Path:
    out = tmp / f"testsrc2-{size}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", "-t",
                    str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
                    str(out)], check=True)
    return out


def check_lut(path: Path) -> int:
    """Largest difference between the Y-plane path and swscale's gray (0 = identical)."""
    return max(int(np.abs(a.astype(int) - b.astype(int)).max())
               for a, b in zip(y_plane_lut(path), reformatter("gray")(path), strict=True))


PATHS: list[tuple[str, str, Path_]] = [
    ("decode only", "-", decode_only),
    ("to_ndarray per frame", "grey", to_ndarray("gray")),
    ("reformatter", "grey", reformatter("gray")),
    ("reformatter, 1 thread", "grey", reformatter("gray", threads=False)),
    ("Y plane + LUT", "grey", y_plane_lut),
    ("OpenCV VideoCapture + cvtColor", "grey", opencv(cv2.COLOR_BGR2GRAY)),
    ("to_ndarray per frame", "RGB", to_ndarray("rgb24")),
    ("reformatter", "RGB", reformatter("rgb24")),
    ("OpenCV VideoCapture + cvtColor", "RGB", opencv(cv2.COLOR_BGR2RGB)),
    ("reformatter + preprocess", "grey", with_preprocess(reformatter("gray"))),
    ("Y plane + LUT + preprocess", "grey", with_preprocess(y_plane_lut)),
    ("prescaled + preprocess (cameras)", "grey", with_preprocess(prescaled)),
    ("OpenCV + preprocess", "grey", with_preprocess(opencv(cv2.COLOR_BGR2GRAY))),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="length of the generated clips")
    p.add_argument("--sizes", default="1280x720,1920x1080", help="generated clip sizes (the demo clip is added)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (preprocess)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="ocrgan-decode-"))
    clips = {"240x160": DEMO_CLIP} | {s: make_clip(tmp, s, args.seconds) for s in args.sizes.split(",") if s}
    for size, clip in clips.items():
        print(f"{size}: Y plane + LUT vs swscale gray, largest difference {check_lut(clip)}")
    print(f"\nframes/s, best of {args.repeat}; x = relative to to_ndarray per frame (PyAV's obvious path), same run")
    print("| path | out | " + " | ".join(clips) + " |")
    print("|---|---|" + "---|" * len(clips))
    results = {}
    for name, out, run in PATHS:
        results[name, out] = {size: speed(run, clip, args.repeat)[0] for size, clip in clips.items()}
    for (name, out), by_size in results.items():
        base = results.get(("to_ndarray per frame", out if out != "-" else "grey"))
        cells = [f"{fps:.0f}" + (f" ({fps / base[size]:.2f}x)" if base and "preprocess" not in name else "")
                 for size, fps in by_size.items()]
        print(f"| {name} | {out} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
