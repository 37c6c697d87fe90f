"""Uploaded clips: open and check a video file, decode it frame by frame, shape the per-frame results.

Frames are decoded as training decodes videos (luma for nc == 1, else RGB, at full size) and go through
model.preprocess(); scores come from model.iter_clip_scores + the same post-processing as evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F
from av.video.reformatter import VideoReformatter

from model import OCRGANConfig, WindowScores, iter_clip_scores, preprocess
from model.windows import postprocess
from service.errors import ServiceError
from service.model_host import ModelHost

ClipRunner = Callable[[Iterable[torch.Tensor], int, bool], list[WindowScores]]  # (frames, stride, heatmaps)
STILL_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "gif", "tiff_pipe")


@dataclass
class ClipLimits:
    max_frames: int
    max_pixels: int
    max_side: int


@dataclass
class ClipMeta:
    format: str
    codec: str
    width: int
    height: int
    fps: float | None
    timestamps: list[float] = field(default_factory=list)  # seconds, one per decoded frame


def _reason(e: Exception) -> str:
    """FFmpeg's reason without the file name (a server-side temp path)."""
    return getattr(e, "strerror", None) or type(e).__name__


def _check_size(width: int, height: int, limits: ClipLimits, what: str) -> None:
    if width > limits.max_side or height > limits.max_side:
        raise ServiceError(422, f"{what} is {width}x{height}; a side may be at most {limits.max_side} pixels")
    if width * height > limits.max_pixels:
        raise ServiceError(422, f"{what} is {width}x{height} = {width * height} pixels; "
                                f"the limit is {limits.max_pixels}")


class Clip:
    """An opened video file, checked up front; frames() decodes lazily. Use as a context manager.
    Raises ServiceError: 415 not a video / no video stream, 413 too many frames, 422 undecodable or absurd."""

    def __init__(self, path: Path, grey: bool, limits: ClipLimits) -> None:
        self.grey = grey
        self.limits = limits
        try:
            self.container = av.open(str(path), metadata_errors="replace")
        except av.error.EOFError as e:
            raise ServiceError(422, "the file ends before its first frame (no frames, or cut short)") from e
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
            raise ServiceError(415, f"not a video file FFmpeg can read ({_reason(e)})") from e
        try:
            self.meta = self._check()
        except BaseException:
            self.container.close()
            raise

    def _check(self) -> ClipMeta:
        c = self.container
        fmt = c.format.name
        if not c.streams.video:
            audio = " (it has only audio)" if c.streams.audio else ""
            raise ServiceError(415, f"no video stream in the {fmt} file{audio}")
        if any(fmt.startswith(f) for f in STILL_IMAGE_FORMATS):
            raise ServiceError(415, f"a still image ({fmt}), not a video")
        self.stream = c.streams.video[0]
        ctx = self.stream.codec_context
        if ctx.width <= 0 or ctx.height <= 0:
            raise ServiceError(422, f"the {ctx.name} video stream has no valid frame size")
        _check_size(ctx.width, ctx.height, self.limits, "the video")
        rate = self.stream.average_rate or self.stream.guessed_rate
        return ClipMeta(fmt, ctx.name, ctx.width, ctx.height, float(rate) if rate else None)

    def __enter__(self) -> Clip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def frames(self) -> Iterator[np.ndarray]:
        """uint8 frames (H, W) luma or (H, W, 3) RGB, in decode order; timestamps recorded in meta."""
        meta, limits = self.meta, self.limits
        fmt = "gray" if self.grey else "rgb24"
        convert = VideoReformatter()  # one for the clip: frame.to_ndarray(format=...) would build one per frame
        self.stream.thread_type = "AUTO"
        n = 0
        try:
            for frame in self.container.decode(self.stream):
                if n == limits.max_frames:
                    raise ServiceError(413, f"the clip has more than {limits.max_frames} frames (the limit)")
                if (frame.width, frame.height) != (meta.width, meta.height):
                    if n:
                        raise ServiceError(422, f"frame {n} is {frame.width}x{frame.height}, "
                                                f"the clip started at {meta.width}x{meta.height}")
                    _check_size(frame.width, frame.height, limits, "the first frame")
                    meta.width, meta.height = frame.width, frame.height
                t = frame.time
                meta.timestamps.append(round(float(t), 6) if t is not None else n / (meta.fps or 25.0))
                n += 1
                yield convert.reformat(frame, format=fmt).to_ndarray()
        except av.FFmpegError as e:
            raise ServiceError(422, f"the {meta.codec} video cannot be decoded after {n} frames ({_reason(e)})") from e
        if n == 0:
            raise ServiceError(422, f"no frame of the {meta.codec} video stream could be decoded")


def model_inputs(frames: Iterator[np.ndarray], cfg: OCRGANConfig) -> Iterator[torch.Tensor]:
    """Decoded frames -> preprocessed frames (C, h, w), one at a time (bounded memory)."""
    for f in frames:
        yield preprocess(f[None], cfg)[0]


def heatmap_grid(maps: torch.Tensor, grid: tuple[int, int]) -> list[list[list[float]]]:
    """(N, H, W) -> N coarse (rows, cols) grids of mean local error, rounded."""
    rows, cols = min(grid[0], maps.shape[-2]), min(grid[1], maps.shape[-1])
    coarse = F.adaptive_avg_pool2d(maps[:, None].float(), (rows, cols))[:, 0]
    return [[[float(f"{v:.5g}") for v in row] for row in m] for m in coarse.tolist()]


def clip_result(meta: ClipMeta, parts: list[WindowScores], host: ModelHost, grid: tuple[int, int] | None,
                elapsed_s: float) -> dict[str, Any]:
    """The JSON document of POST /score and `ocrgan score`."""
    raw = torch.cat([p.raw for p in parts]) if parts else torch.zeros(0)
    post = postprocess(host.model, raw)
    frames = [
        {"index": i, "timestamp": meta.timestamps[i], "score": float(post.score[i]),
         "normalised": float(post.normalised[i]), "anomaly": bool(post.anomaly[i])}
        for i in range(len(raw))
    ]
    out: dict[str, Any] = {
        "frames": frames,
        "num_frames": len(frames),
        "fps": meta.fps,
        "width": meta.width,
        "height": meta.height,
        "format": meta.format,
        "codec": meta.codec,
        "model": host.describe(),
        "elapsed_ms": round(elapsed_s * 1000, 1),
    }
    if grid is not None and parts and parts[0].heatmaps is not None:
        maps = heatmap_grid(torch.cat([p.heatmaps for p in parts]), grid)
        for f, m in zip(frames, maps, strict=True):
            f["heatmap"] = m
        out["heatmap_grid"] = [len(maps[0]), len(maps[0][0])] if maps else list(grid)
    return out


def score_file(path: Path, host: ModelHost, limits: ClipLimits, stride: int, heatmaps: bool,
               grid: tuple[int, int], run: ClipRunner, started: float | None = None) -> dict[str, Any]:
    """Decode, score and describe a clip; `run` executes iter_clip_scores (in the scorer thread, or inline)."""
    t0 = started if started is not None else time.perf_counter()
    with Clip(path, host.grey, limits) as clip:
        parts = run(model_inputs(clip.frames(), host.model.cfg), stride, heatmaps)
        return clip_result(clip.meta, parts, host, grid if heatmaps else None, time.perf_counter() - t0)


def inline_runner(host: ModelHost, batch: int) -> ClipRunner:
    """Run iter_clip_scores in the calling thread (the CLI, which has no scorer thread)."""
    return lambda frames, stride, heatmaps: list(
        iter_clip_scores(host.model, frames, stride, batch, heatmaps=heatmaps, amp=host.amp))
