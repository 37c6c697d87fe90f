"""The one rule that turns a frame sequence into scored windows and per-frame scores.

Rule (the same for uploaded clips, evaluation and live cameras):
- A sequence behaves as if its first frame had been shown for T-1 frames before it began, so the
  first frames are scored from a full window whose earlier positions repeat frame 0.
- A window of the last T frames is scored every `stride` frames, i.e. when frames stride-1,
  2*stride-1, ... arrive; it publishes the scores of its last `stride` positions, which are
  exactly the frames that arrived since the previous window. At the end of a clip, a last window
  ends at the final frame and publishes the frames not yet published.
- So every frame gets exactly one score, computed from itself and the frames before it only.
- At stride 1 a causal model scores frame by frame from cached features (model.streaming): each frame's score is
  that of the T-frame window ending at it, its frames given their true past, without encoding each frame T times.
- Published raw scores then pass a causal exponential smoother (cfg.score_smoothing) and are
  normalised with the statistics stored in the checkpoint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from model.ocrgan import OCRGANVideo, Scored
from model.scoring import CUES
from model.streaming import FrameStream, score_frames


@dataclass
class Window:
    frames: torch.Tensor  # (T, C, H, W) preprocessed frames, oldest first
    indices: list[int]  # indices of the frames this window publishes: its last len(indices) positions


class WindowAssembler:
    """Rolling T-frame buffer of one sequence; emits a Window every `stride` frames."""

    def __init__(self, num_frames: int, stride: int) -> None:
        if not 1 <= stride <= num_frames:
            raise ValueError(f"stride must be in [1, {num_frames}]")
        self.num_frames = num_frames
        self.stride = stride
        self.buffer: deque[torch.Tensor] = deque(maxlen=num_frames)
        self.count = 0  # frames pushed so far (= index of the next frame)
        self.pending = 0  # frames pushed since the last window

    def push(self, frame: torch.Tensor) -> Window | None:
        """Add one preprocessed frame (C, H, W); returns a window when one is due."""
        if not self.buffer:
            self.buffer.extend([frame] * (self.num_frames - 1))
        self.buffer.append(frame)
        self.count += 1
        self.pending += 1
        return self._emit() if self.pending == self.stride else None

    def flush(self) -> Window | None:
        """The last window of a finished sequence, if frames are still unpublished."""
        return self._emit() if self.pending else None

    def restart(self) -> None:
        """Forget the buffered frames after a discontinuity (a reconnect); indices keep counting.
        Frames pushed but not yet published are dropped with the buffer."""
        self.buffer.clear()
        self.pending = 0

    def _emit(self) -> Window:
        w = Window(torch.stack(list(self.buffer)), list(range(self.count - self.pending, self.count)))
        self.pending = 0
        return w


@dataclass
class WindowScores:
    indices: list[int]
    raw: torch.Tensor  # (n,) raw scores of the published frames, on the CPU
    maps: torch.Tensor | None  # (n, k, H, W) on the CPU, when asked for: each heat cue's map (Scored.maps), which
    # OCRGANVideo.heatmap draws in the units of the scene
    rec: torch.Tensor  # (n,) the error map's largest patch mean (the heatmap's peak)
    feat: torch.Tensor  # (n,) the discriminator-feature distance
    app: torch.Tensor | None = None  # (n,) the appearance error alone (its largest patch mean)
    motion: torch.Tensor | None = None  # (n,) the flow error alone (None without the motion band)
    speed: torch.Tensor | None = None  # (n,) the flow's magnitude alone (None without the motion band)
    dir: torch.Tensor | None = None  # (n,) the direction surprise alone (None without the motion band)
    mem: torch.Tensor | None = None  # (n,) the distance to the memory of normal patches alone (None without one)
    grey: torch.Tensor | None = None  # (n,) the distance to the remembered grey levels alone (None without them)

    def cues(self) -> dict[str, torch.Tensor | None]:
        """The per-frame cues the raw score combines (model.scoring.CUES)."""
        return {k: getattr(self, k) for k in CUES}

    @classmethod
    def from_scored(cls, s: Scored, indices: list[int], start: int = 0) -> WindowScores:
        """Frames start .. start + len(indices) of one sequence's Scored (fields (1, n), maps (1, n, k, H, W)), as the
        scores of the frames `indices`, on the CPU."""
        def part(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[0, start:start + len(indices)].float().cpu()

        return cls(list(indices), part(s.raw), part(s.maps), part(s.rec), part(s.feat), part(s.app),
                   part(s.motion), part(s.speed), part(s.dir), part(s.mem), part(s.grey))


def autocast(device: torch.device, amp: bool):
    """float16 autocast on CUDA when `amp` is asked for; nothing otherwise."""
    return torch.autocast(device.type, dtype=torch.float16) if amp and device.type == "cuda" else nullcontext()


def score_windows(model: OCRGANVideo, windows: list[Window], heatmaps: bool = False,
                  amp: bool = False, run: Callable[[torch.Tensor, slice, bool], Scored] | None = None
                  ) -> list[WindowScores]:
    """Score a batch of windows (from any mix of sequences) in one forward pass: `model.score_detailed`, or `run`
    (clip, positions, heatmap) in its place when given (the same scoring by another runtime)."""
    if not windows:
        return []
    device = next(model.parameters()).device
    t = model.cfg.num_frames
    k = max(len(w.indices) for w in windows)
    clip = torch.stack([w.frames for w in windows]).to(device, non_blocking=True)  # (B, T, C, H, W)
    with torch.inference_mode(), autocast(device, amp):
        s = (run or model.score_detailed)(clip, slice(t - k, t), heatmaps)
    parts = [x.float().cpu() if x is not None else None
             for x in (s.raw, s.rec, s.feat, s.app, s.motion, s.speed, s.dir, s.mem, s.grey)]
    maps = s.maps.float().cpu() if heatmaps else None
    out = []
    for i, w in enumerate(windows):
        n = len(w.indices)
        raw, rec, feat, app, motion, speed, dirs, mem, grey = (x[i, k - n:] if x is not None else None for x in parts)
        out.append(WindowScores(w.indices, raw, maps[i, k - n:] if maps is not None else None, rec, feat, app, motion,
                                speed, dirs, mem, grey))
    return out


class ScorePostprocessor:
    """Per-sequence causal smoothing, normalisation and thresholding of raw scores, in frame order."""

    def __init__(self, alpha: float, mean: float, std: float, threshold: float) -> None:
        self.alpha = alpha
        self.mean = mean
        self.std = std
        self.threshold = threshold
        self.state: float | None = None

    @classmethod
    def for_model(cls, model: OCRGANVideo) -> ScorePostprocessor:
        return cls(model.cfg.score_smoothing, float(model.score_mean), float(model.score_std), float(model.threshold))

    def __call__(self, raw: float) -> tuple[float, float, bool]:
        """raw -> (smoothed score, normalised score, anomalous?)."""
        self.state = raw if self.state is None else self.alpha * self.state + (1 - self.alpha) * raw
        normalised = (self.state - self.mean) / self.std
        return self.state, normalised, normalised > self.threshold


def window_ends(length: int, stride: int) -> list[tuple[int, int]]:
    """(end, published) of each window that scores a finished sequence of `length` frames, by the rule above: one
    ends at every stride-th frame and publishes the `stride` frames up to it; a last one ends at the final frame
    and publishes those not yet published (what iter_clip_windows yields, without the frames)."""
    out = [(e, stride) for e in range(stride - 1, length, stride)]
    done = out[-1][0] + 1 if out else 0
    return [*out, (length - 1, length - done)] if done < length else out


def window_positions(end: int, num_frames: int) -> torch.Tensor:
    """(T,) indices of the frames of the window that ends at frame `end`: frame 0 stands for those before it."""
    return torch.arange(end - num_frames + 1, end + 1).clamp(min=0)


def iter_clip_windows(frames: Iterable[torch.Tensor], num_frames: int, stride: int) -> Iterator[Window]:
    """Windows of a finished sequence of preprocessed frames (C, H, W), by the rule above."""
    asm = WindowAssembler(num_frames, stride)
    for frame in frames:
        w = asm.push(frame)
        if w is not None:
            yield w
    last = asm.flush()
    if last is not None:
        yield last


def iter_clip_scores(model: OCRGANVideo, frames: Iterable[torch.Tensor], stride: int | None = None,
                     batch: int = 8, heatmaps: bool = False, amp: bool = False) -> Iterator[WindowScores]:
    """Score a whole sequence, `batch` windows per forward pass (at stride 1, `batch` frames); yields results in
    frame order."""
    stride = stride or model.cfg.stride
    if frame_by_frame(model, stride):
        yield from _iter_frame_scores(model, frames, batch, heatmaps, amp)
        return
    pending: list[Window] = []
    for w in iter_clip_windows(frames, model.cfg.num_frames, stride):
        pending.append(w)
        if len(pending) == batch:
            yield from score_windows(model, pending, heatmaps, amp)
            pending = []
    yield from score_windows(model, pending, heatmaps, amp)


def frame_by_frame(model: OCRGANVideo, stride: int) -> bool:
    """Whether a sequence at this stride is scored frame by frame from cached features (model.streaming) rather
    than by windows: at stride 1, for a model that never sees later frames."""
    return stride == 1 and model.cfg.causal


def _iter_frame_scores(model: OCRGANVideo, frames: Iterable[torch.Tensor], batch: int, heatmaps: bool,
                       amp: bool) -> Iterator[WindowScores]:
    """A whole sequence scored frame by frame (model.streaming), `batch` frames per pass, in frame order."""
    stream = FrameStream(model)
    device = next(model.parameters()).device
    pending: list[torch.Tensor] = []
    count = 0

    def run() -> WindowScores:
        with autocast(device, amp):
            (scored,) = score_frames(model, [(stream, torch.stack(pending))], heatmaps)
        return WindowScores.from_scored(scored, list(range(count - len(pending), count)))

    for frame in frames:
        pending.append(frame)
        count += 1
        if len(pending) == batch:
            yield run()
            pending = []
    if pending:
        yield run()


@dataclass
class ClipScores:
    raw: torch.Tensor  # (N,) raw per-frame scores
    score: torch.Tensor  # (N,) after causal smoothing
    normalised: torch.Tensor  # (N,)
    anomaly: torch.Tensor  # (N,) bool


def score_clip(model: OCRGANVideo, frames: Iterable[torch.Tensor], stride: int | None = None,
               batch: int = 8, amp: bool = False) -> ClipScores:
    """Per-frame scores of a finished sequence: what evaluation and clip uploads both use."""
    chunks = [r.raw for r in iter_clip_scores(model, frames, stride, batch, amp=amp)]
    return postprocess(model, torch.cat(chunks) if chunks else torch.zeros(0))


def postprocess(model: OCRGANVideo, raw: torch.Tensor) -> ClipScores:
    """Apply the causal smoother, normalisation and threshold to one sequence's raw scores."""
    post = ScorePostprocessor.for_model(model)
    rows = [post(float(r)) for r in raw]
    score = torch.tensor([r[0] for r in rows])
    norm = torch.tensor([r[1] for r in rows])
    anomaly = torch.tensor([r[2] for r in rows], dtype=torch.bool)
    return ClipScores(raw, score, norm, anomaly)


def anomalous_runs(flags: Iterable[bool]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive anomalous frames, from per-frame flags (ground truth or predicted)."""
    runs, start, n = [], None, 0
    for n, flag in enumerate(flags):
        if flag and start is None:
            start = n
        elif not flag and start is not None:
            runs.append((start, n))
            start = None
    if start is not None:
        runs.append((start, n + 1))
    return runs
