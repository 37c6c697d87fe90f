"""Make service/assets/demo.mp4, the looping camera of `ocrgan demo`: people-like blobs walking slowly
across a textured scene (normal), and twice per loop a fast object crossing the scene (the anomaly).

    python service/assets/make_demo_clip.py [--out service/assets/demo.mp4]

Deterministic (fixed seed). The first 18.5 seconds are normal, so a camera's calibration warm-up (100 frames
at 10 fps in the compose stack and `ocrgan demo`) sees no anomaly even when it starts several seconds late.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np

FPS = 25
SECONDS = 30
HEIGHT, WIDTH = 160, 240  # the 2:3 aspect of the shipped model's input
ANOMALIES = ((18.5, 20.5, "fast"), (25.0, 26.5, "wrong-way"))  # (start s, end s, kind)


def scene(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    ground = 70 + 50 * yy / HEIGHT + 12 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    ground[HEIGHT // 3: HEIGHT // 3 + 3] += 35  # a kerb
    ground[2 * HEIGHT // 3: 2 * HEIGHT // 3 + 3] += 35
    return (ground + rng.normal(0, 3, ground.shape)).astype(np.float32)


def frames() -> np.ndarray:
    rng = np.random.default_rng(2024)
    background = scene(rng)
    n = FPS * SECONDS
    # speeds that bring every walker back to its start after n frames, so the loop has no seam
    walkers = [(rng.uniform(HEIGHT / 3 + 8, 2 * HEIGHT / 3 - 8), rng.uniform(0, WIDTH),
                int(rng.integers(2, 5)) * WIDTH / n, rng.choice([-1, 1])) for _ in range(6)]
    out = np.empty((n, HEIGHT, WIDTH), np.uint8)
    for t in range(n):
        img = background.copy()
        for y, x0, v, d in walkers:
            x = (x0 + d * v * t) % WIDTH
            bob = 1.5 * np.sin(2 * np.pi * 90 * t / n + x0)
            cv2.ellipse(img, (int(x), int(y + bob)), (4, 9), 0, 0, 360, 205.0, -1)
            cv2.circle(img, (int(x), int(y + bob) - 12), 3, 215.0, -1)
        s = t / FPS
        for start, end, kind in ANOMALIES:
            if start <= s < end:
                k = (s - start) / (end - start)
                if kind == "fast":  # a vehicle crossing the walkway at speed
                    x, y = -20 + k * (WIDTH + 40), HEIGHT / 2
                    cv2.rectangle(img, (int(x) - 14, int(y) - 8), (int(x) + 14, int(y) + 8), 245.0, -1)
                else:  # someone running across the flow, top to bottom
                    x, y = WIDTH * 0.6, -15 + k * (HEIGHT + 30)
                    cv2.ellipse(img, (int(x), int(y)), (5, 10), 0, 0, 360, 240.0, -1)
        img += rng.normal(0, 2.0, img.shape).astype(np.float32)
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def write(path: Path, video: np.ndarray) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        s.options = {"crf": "26", "preset": "veryslow", "g": str(FPS * 2)}
        for f in video:
            rgb = np.repeat(f[..., None], 3, axis=2)
            for pkt in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("demo.mp4"))
    args = p.parse_args()
    write(args.out, frames())
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB, {SECONDS}s at {FPS} fps, {WIDTH}x{HEIGHT}")


if __name__ == "__main__":
    main()
