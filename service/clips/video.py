"""Uploaded clips: open and check a video file, decode it frame by frame, shape the per-frame results.

Frames are decoded and converted by media.decode, as training decodes videos (luma for nc == 1, else RGB, at full
size), and go through model.preprocess(); scores come from model.iter_clip_scores + the same post-processing as
evaluation, normalised by the checkpoint's statistics or by a calibration (the clip's opening seconds, or a camera's).

Frames are turned upright as the stream's display matrix says (a phone's 90-degree rotation), and timestamped in
seconds from the first frame (its time in the file is the clip's start_time).

A clip over its frame or pixel budget is refused before any of its frames is converted, preprocessed or scored
(Clip._survey counts its packets first), and so is an MPEG-TS or -PS file with bytes no packet came from after its
last packet (a damaged or spliced file, refused like one cut short); a Watch stops the work of a clip that takes
too long or whose client has gone, between two frames.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F

from media.decode import FrameClock, FrameConverter, VideoDecoder, frame_rate, open_input
from model import ClipScores, OCRGANConfig, OCRGANVideo, SequencePreprocessor, WindowScores, iter_clip_scores
from model.scales import cue_values
from model.windows import postprocess
from service.errors import CLIENT_GONE, ServiceError
from service.inference.calibration import CheckpointScale, ClipScale, Scale
from service.inference.host import ModelHost

Reduce = Callable[[WindowScores], WindowScores]
ClipRunner = Callable[[Iterable[torch.Tensor], int, bool, Reduce | None], list[WindowScores]]  # frames, stride, ...
STILL_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "gif", "tiff_pipe")


EXPANSION_ALLOWANCE = 2**27  # decoded pixels any clip may have whatever its size (~65 frames of 1080p)
TRUNCATION_SLACK = 0.95  # a clip decoding to less than this share of its declared frames or duration is cut short
DECODER_THREADS = 2  # per upload being decoded; uploads in parallel use the other cores
# a demuxed video packet holds a frame or one field of one (H.264 PAFF, MPEG-2 field pictures in MPEG-TS or PS),
# so a clip of n packets decodes to at least n / FIELDS_PER_FRAME frames
FIELDS_PER_FRAME = 2
# formats whose packets run to the end of the file (no trailing index): bytes after the last packet are damage
STREAMED_FORMATS = ("mpegts", "mpeg")
# a packet's bytes in the file are its payload plus the container's headers (MPEG-TS: 4 in 188, PES and pack
# headers: about 2%); what lies beyond its estimated end and the slack (tables and padding a broadcast capture may
# end with: 87 MPEG-TS packets) was read by no packet
PACKET_OVERHEAD, TRAILING_SLACK_BYTES = 1.05, 16 * 1024


@dataclass
class ClipLimits:
    max_frames: int
    max_pixels: int
    max_side: int
    max_expansion: float = 10_000.0  # decoded pixels per byte of the file, beyond EXPANSION_ALLOWANCE
    min_side: int = 16  # below it a frame holds too little to scale up to the model's working size

    @classmethod
    def from_settings(cls, s) -> ClipLimits:
        return cls(s.upload_max_frames, s.upload_max_pixels, s.upload_max_side, s.upload_max_expansion,
                   s.upload_min_side)

    def pixel_budget(self, file_bytes: int) -> int:
        """Decoded pixels a file of this size may expand to (a decompression bomb goes far beyond)."""
        return max(EXPANSION_ALLOWANCE, int(self.max_expansion * file_bytes))


class Watch:
    """Stops one clip's decoding and scoring between two frames: 413 once it has taken longer than `max_seconds`
    since start(), CLIENT_GONE once cancel() was called (the client went away: its answer would go nowhere)."""

    def __init__(self, max_seconds: float = math.inf) -> None:
        self.max_seconds = max_seconds
        self.cancelled = threading.Event()
        self.started = time.monotonic()

    def start(self) -> None:
        """The wall-time budget runs from now (the clip's turn to be decoded has come)."""
        self.started = time.monotonic()

    def cancel(self) -> None:
        self.cancelled.set()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise ServiceError(CLIENT_GONE, "the client went away before the clip was scored")
        if time.monotonic() - self.started > self.max_seconds:
            raise ServiceError(413, f"decoding and scoring the clip took longer than {self.max_seconds:g} s "
                                    "(OCRGAN_UPLOAD_PROCESSING_TIMEOUT_SECONDS): send a shorter or smaller clip")


@dataclass
class ClipMeta:
    format: str
    codec: str
    width: int
    height: int
    fps: float | None
    timestamps: list[float] = field(default_factory=list)  # seconds from the first frame, one per decoded frame
    start_time: float | None = None  # the first frame's time in the file, seconds (None: the file has none)
    rotation: int = 0  # degrees counterclockwise the decoded frames were turned to stand upright

    def upright_size(self) -> tuple[int, int]:
        """(width, height) of the frames as scored: the coded size, turned by the rotation."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)


def _reason(e: Exception) -> str:
    """FFmpeg's reason without the file name (a server-side temp path)."""
    return getattr(e, "strerror", None) or type(e).__name__


def _check_size(width: int, height: int, limits: ClipLimits, what: str) -> None:
    if width < limits.min_side or height < limits.min_side:
        raise ServiceError(422, f"{what} is {width}x{height}; a side must be at least {limits.min_side} pixels "
                                "(OCRGAN_UPLOAD_MIN_SIDE)")
    if width > limits.max_side or height > limits.max_side:
        raise ServiceError(422, f"{what} is {width}x{height}; a side may be at most {limits.max_side} pixels")
    if width * height > limits.max_pixels:
        raise ServiceError(422, f"{what} is {width}x{height} = {width * height} pixels; "
                                f"the limit is {limits.max_pixels}")


class Clip:
    """An opened video file, checked up front (its header, then its packets); frames() decodes lazily. Use as a
    context manager. Raises ServiceError: 415 not a video / no video stream, 413 too many frames or pixels, or
    longer than the watch allows, 422 undecodable or absurd."""

    def __init__(self, path: Path, grey: bool, limits: ClipLimits, watch: Watch | None = None) -> None:
        self.path = path
        self.grey = grey
        self.limits = limits
        self.watch = watch or Watch()
        self.file_bytes = path.stat().st_size
        try:
            self.container = open_input(path)
        except av.error.EOFError as e:
            raise ServiceError(422, "the file ends before its first frame (no frames, or cut short)") from e
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
            raise ServiceError(415, f"not a video file FFmpeg can read ({_reason(e)})") from e
        try:
            self.meta = self._check()
            self._survey()
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
        if self.stream.frames > self.limits.max_frames:  # refused before decoding anything
            raise ServiceError(413, f"the clip has more than {self.limits.max_frames} frames (the limit): "
                                    f"its header declares {self.stream.frames}")
        return ClipMeta(fmt, ctx.name, ctx.width, ctx.height, frame_rate(self.stream))

    def __enter__(self) -> Clip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def _survey(self) -> None:
        """Refuse a clip over the frame or pixel budget before decoding any of it, by its video packets (demuxed,
        not decoded: milliseconds for a whole file). Packets / FIELDS_PER_FRAME frames are certain; when only the
        packets themselves are over a budget, the frames are counted by decoding alone (no conversion, no
        scoring), which stops at the first frame over the budget."""
        packets, end = 0, 0
        try:
            for packet in self.container.demux():  # every stream's packets: an audio packet may come last
                self.watch.check()
                if packet.size and packet.pos is not None and packet.pos >= 0:
                    end = max(end, packet.pos + int(packet.size * PACKET_OVERHEAD))
                if packet.size and packet.stream.index == self.stream.index:  # an empty one flushes the decoder
                    packets += 1
        except av.FFmpegError:
            end = 0  # a damaged file: decoding will say where
        self._rewind()
        self._check_tail(packets, end)
        limits, size = self.limits, self.meta.width * self.meta.height
        budget, frames = limits.pixel_budget(self.file_bytes), packets // FIELDS_PER_FRAME
        if frames > limits.max_frames:
            raise ServiceError(413, f"the clip has more than {limits.max_frames} frames (the limit): its "
                                    f"{packets} video packets hold at least {frames}")
        if frames * size > budget:
            raise ServiceError(413, self._bomb_message(frames, f" (at least: its {packets} video packets)"))
        if packets > limits.max_frames or packets * size > budget:
            for _ in self._decode():
                pass
            self._rewind()

    def _check_tail(self, packets: int, end: int) -> None:
        """422 for an MPEG-TS or -PS file with more than a little after its last packet: bytes the demuxer skipped,
        as it skips what it cannot read, are damage (junk or a file spliced onto the clip), and the clip is refused
        as one cut short is, rather than scored as part of itself."""
        if self.meta.format not in STREAMED_FORMATS or not end:
            return
        unread = self.file_bytes - end
        if unread > TRAILING_SLACK_BYTES:
            raise ServiceError(422, f"the {self.meta.format} file is damaged: {unread} of its {self.file_bytes} "
                                    f"bytes, after its {packets} video packets, are no packet FFmpeg can read")

    def _rewind(self) -> None:
        """Back to the first packet: the file is opened anew (seeking to the start is not exact in every format)."""
        self.container.close()
        self.container = open_input(self.path)
        self.stream = self.container.streams.video[0]

    def _decode(self) -> Iterator[av.VideoFrame]:
        """The video's frames in decode order, each checked against the limits and the watch before anything else
        is done with it: a clip over a budget costs no conversion, preprocessing or scoring of its frames."""
        meta, limits = self.meta, self.limits
        budget = limits.pixel_budget(self.file_bytes)
        n = pixels = 0
        try:
            for frame in VideoDecoder(self.container, DECODER_THREADS):  # not FFmpeg's one per core, per upload
                self.watch.check()
                if n == limits.max_frames:
                    raise ServiceError(413, f"the clip has more than {limits.max_frames} frames (the limit)")
                if (frame.width, frame.height) != (meta.width, meta.height):
                    if n:
                        raise ServiceError(422, f"frame {n} is {frame.width}x{frame.height}, "
                                                f"the clip started at {meta.width}x{meta.height}")
                    _check_size(frame.width, frame.height, limits, "the first frame")
                    meta.width, meta.height = frame.width, frame.height
                pixels += frame.width * frame.height
                if pixels > budget:
                    raise ServiceError(413, self._bomb_message(n + 1))
                n += 1
                yield frame
        except av.FFmpegError as e:
            raise ServiceError(422, f"the {meta.codec} video cannot be decoded after {n} frames ({_reason(e)})") from e

    def frames(self) -> Iterator[np.ndarray]:
        """uint8 frames (H, W) luma or (H, W, 3) RGB, in decode order; timestamps recorded in meta."""
        meta = self.meta
        convert, clock = FrameConverter(self.grey), FrameClock(meta.fps)
        n = 0
        for frame in self._decode():
            t = clock(frame)
            image = convert(frame)
            if n == 0:  # the display matrix is the stream's: the first frame's holds for the clip
                meta.rotation = convert.rotation or 0
                meta.start_time = round(t, 6) if frame.time is not None else None
            meta.timestamps.append(round(t - (meta.start_time or 0.0), 6))
            n += 1
            yield image
        if n == 0:
            raise ServiceError(422, f"no frame of the {meta.codec} video stream could be decoded")
        self._check_complete(n)

    def _bomb_message(self, n: int, counted: str = "") -> str:
        m = self.meta
        return (f"the clip expands too much for its size: {n} frames of {m.width}x{m.height}{counted} from a file of "
                f"{self.file_bytes} bytes is more than {self.limits.max_expansion:g} decoded pixels per byte "
                "(a decompression bomb, or a clip too compressed to score; OCRGAN_UPLOAD_MAX_EXPANSION)")

    def _check_complete(self, n: int) -> None:
        """422 when the file decodes to clearly less than its header declares (a file cut short)."""
        declared = self.stream.frames
        if declared and n < TRUNCATION_SLACK * declared:
            raise ServiceError(422, f"the file is cut short: its header declares {declared} frames, "
                                    f"{n} could be decoded")
        expected = self._declared_duration()
        if expected and self.meta.timestamps:
            step = 1.0 / (self.meta.fps or 25.0)
            got = self.meta.timestamps[-1] - self.meta.timestamps[0] + step
            if got < TRUNCATION_SLACK * expected - step:
                raise ServiceError(422, f"the file is cut short: its header declares {expected:.2f}s of video, "
                                        f"frames for {got:.2f}s could be decoded")

    def _declared_duration(self) -> float | None:
        """The video's declared duration in seconds: the stream's, or the file's when video is all it holds."""
        s = self.stream
        if s.duration and s.time_base:
            return float(s.duration * s.time_base)
        if self.container.duration and len(self.container.streams) == 1:
            return self.container.duration / av.time_base
        return None


GAPS_KEPT = 25  # a clip's frame period is the median of its last this many gaps between frames


def model_inputs(frames: Iterator[np.ndarray], cfg: OCRGANConfig,
                 timestamps: list[float] | None = None) -> Iterator[torch.Tensor]:
    """Decoded frames -> model input frames (in_channels, h, w), one at a time (bounded memory). With the clip's
    `timestamps` (seconds, one per frame, filled as its frames are decoded), each frame's flow is divided by its gap
    in frame periods, as a camera's is, the period being the median of the clip's last GAPS_KEPT gaps (its frame
    rate, whatever frames it lost): a frame the recording lost leaves a gap of two."""
    prep = SequencePreprocessor(cfg)
    gaps: deque[float] = deque(maxlen=GAPS_KEPT)
    before = None
    for k, f in enumerate(frames):
        now = timestamps[k] if timestamps is not None and k < len(timestamps) else None
        interval = 1.0
        if now is not None and before is not None:
            gap = now - before
            period = float(np.median(gaps)) if len(gaps) >= 3 else 0.0
            interval = gap / period if period > 0 else 1.0
            gaps.append(gap)
        before = now
        yield prep(f, interval)


def pool_maps(maps: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(N, k, H, W) each heat cue's map (model.Scored.maps) -> (N, k, rows, cols) its mean per cell; a map already
    that coarse is unchanged."""
    rows, cols = min(grid[0], maps.shape[-2]), min(grid[1], maps.shape[-1])
    return F.adaptive_avg_pool2d(maps.float(), (rows, cols))


def coarse_maps(grid: tuple[int, int]) -> Reduce:
    """Pool each window's maps as it is scored: a long clip's full-size maps would not fit in memory
    (10,000 frames of three 64x96 float maps are 700 MB; their 12x16 grids are 23 MB). The cues are drawn into a
    heatmap at the end, in the units the clip is calibrated to (heatmap_grid)."""
    def reduce(scores: WindowScores) -> WindowScores:
        if scores.maps is None:
            return scores
        return dataclasses.replace(scores, maps=pool_maps(scores.maps, grid))

    return reduce


def heatmap_grid(model: OCRGANVideo, maps: torch.Tensor, scales: dict[str, float] | None,
                 grid: tuple[int, int]) -> list[list[list[float]]]:
    """(N, k, H, W) heat cues' maps -> N coarse (rows, cols) heatmaps, rounded: in each cell the largest weighted
    cue's mean there, in the units `scales` (None: the checkpoint's)."""
    heat = model.heatmap(pool_maps(maps, grid), scales, patch=1)
    return [[[float(f"{v:.5g}") for v in row] for row in m] for m in heat.tolist()]


def normalised_frames(post: ClipScores, timestamps: list[float], scale: Scale,
                      threshold: float) -> list[dict[str, Any]]:
    """Per-frame results on `scale`: the checkpoint's is post-processing's own normalisation (the evaluator's);
    another is (score - mean) / std, its calibrating opening frames never anomalous."""
    scores = post.score.tolist()
    if scale.source == "checkpoint":
        normalised, anomaly = post.normalised.tolist(), post.anomaly.tolist()
    else:
        normalised = [(x - scale.mean) / scale.std for x in scores]
        anomaly = [i >= scale.opening and z > threshold for i, z in enumerate(normalised)]
    return [{"index": i, "timestamp": timestamps[i], "score": scores[i], "normalised": normalised[i],
             "anomaly": bool(anomaly[i]), "calibrating": i < scale.opening} for i in range(len(scores))]


def clip_result(meta: ClipMeta, parts: list[WindowScores], host: ModelHost, grid: tuple[int, int] | None,
                elapsed_s: float, scale: ClipScale | None = None) -> dict[str, Any]:
    """The JSON document of POST /score and `ocrgan score`; `scale` defaults to the checkpoint's statistics."""
    cues = cue_values(parts)
    chosen = scale if scale is not None and parts else CheckpointScale()  # nothing scored: nothing to calibrate on
    resolved = chosen.resolve(host.model, cues, meta.timestamps)
    if resolved.scales is None:  # the checkpoint's units: the scores as scored
        raw = torch.cat([p.raw for p in parts]) if parts else torch.zeros(0)
    else:  # the scene's units
        raw = host.model.combine(cues, resolved.scales)
    post = postprocess(host.model, raw)
    frames = normalised_frames(post, meta.timestamps, resolved, host.threshold)
    out: dict[str, Any] = {
        "frames": frames,
        "num_frames": len(frames),
        "calibration": resolved.describe(),
        "fps": meta.fps,
        "width": meta.upright_size()[0],
        "height": meta.upright_size()[1],
        "rotation": meta.rotation,
        "start_time": meta.start_time,
        "format": meta.format,
        "codec": meta.codec,
        "model": host.describe(),
        "elapsed_ms": round(elapsed_s * 1000, 1),
    }
    if grid is not None and parts and parts[0].maps is not None:
        maps = heatmap_grid(host.model, torch.cat([p.maps for p in parts]), resolved.scales, grid)
        for f, m in zip(frames, maps, strict=True):
            f["heatmap"] = m
        out["heatmap_grid"] = [len(maps[0]), len(maps[0][0])] if maps else list(grid)
    return out


def score_file(path: Path, host: ModelHost, limits: ClipLimits, stride: int, heatmaps: bool,
               grid: tuple[int, int], run: ClipRunner, started: float | None = None,
               scale: ClipScale | None = None, watch: Watch | None = None) -> dict[str, Any]:
    """Decode, score and describe a clip; `run` executes iter_clip_scores (in the scorer thread, or inline);
    `scale` is what normalises the scores (service/inference/calibration.py; the checkpoint's by default); `watch` stops
    the work when it takes too long or its client has gone (its budget runs from this call)."""
    t0 = started if started is not None else time.perf_counter()
    watch = watch or Watch()
    watch.start()
    with Clip(path, host.grey, limits, watch) as clip:
        parts = run(model_inputs(clip.frames(), host.model.cfg, clip.meta.timestamps), stride, heatmaps,
                    coarse_maps(grid))
        return clip_result(clip.meta, parts, host, grid if heatmaps else None, time.perf_counter() - t0, scale)


def inline_runner(host: ModelHost, batch: int) -> ClipRunner:
    """Run iter_clip_scores in the calling thread (the CLI, which has no scorer thread)."""
    def run(frames: Iterable[torch.Tensor], stride: int, heatmaps: bool, reduce: Reduce | None) -> list[WindowScores]:
        scores = iter_clip_scores(host.model, frames, stride, batch, heatmaps=heatmaps, amp=host.amp)
        return [reduce(s) if reduce else s for s in scores]

    return run
