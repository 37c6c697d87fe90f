"""A scene's own units and normal score level, learnt from its first frames, for cameras and uploaded clips alike.

A camera learns them over its first OCRGAN_CALIBRATION_FRAMES frames; an uploaded clip over its first N seconds
(POST /score?calibrate_seconds=N), or takes a camera's (?camera=ID). Either way each cue of the score (appearance
error, flow error, flow magnitude, feature distance) is measured in units of its extreme on the scene's own normal
frames, not the training scene's (model/scales.py), and the smoothed scores are normalised as (score - mean) / std
of the opening frames and compared with the checkpoint's threshold. So the threshold means "this many spreads above
this scene's normal level" wherever the scene was filmed, and a cue that is merely noisy on a new scene (the
appearance error of a scene the model never saw) cannot drown the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from service.errors import ServiceError

if TYPE_CHECKING:  # settings import this module: it must not pull in torch
    import torch

    from model import OCRGANVideo

MIN_FRAMES = 10  # fewer frames than this give no usable spread
TIMESTAMP_SLACK = 1e-4  # seconds: a frame this close to the end of the calibration seconds is past it (rounding)
STD_FLOOR = 0.05  # the spread is at least this share of the mean, so a static scene does not turn noise into anomalies


class CalibrationState(StrEnum):
    OFF = "off"  # the checkpoint's statistics
    WARMING = "warming"  # collecting the first frames; anomaly flags held back
    DONE = "done"  # normalising with the scene's own units and mean/std


def floored_std(values: list[float], mean: float) -> float:
    n = len(values)
    std = math.sqrt(sum((x - mean) ** 2 for x in values) / max(n - 1, 1))
    return max(std, STD_FLOOR * abs(mean), 1e-8)


class Calibration:
    """Learn a scene's units and normal score level from its first `frames` frames: each frame's cues are kept
    until the warm-up is complete; then each cue's unit is its extreme on them (at least a share of the
    checkpoint's), and the mean/std of the smoothed scores they give in those units is the normal level; the mean
    of the largest weighted cue that the heatmap shows is the scene's heatmap scale.

    With a `floor` (a camera's warm-up, when it learns its scene again later), the result is never stricter than
    the floor: each unit at least the floor's, and the level at which a score is flagged (mean + threshold x std)
    at least the floor's, else the floor's mean and std are kept. A quiet night learnt as normal would otherwise
    flag the morning's ordinary traffic, and a camera that flags a frame never learns from it."""

    def __init__(self, frames: int, model: OCRGANVideo, floor: Calibration | None = None) -> None:
        self.target = frames
        self.model = model
        self.floor = floor if floor is not None and floor.scales is not None else None
        self.rows: list[dict[str, float | None]] = []
        self.mean = 0.0
        self.std = 1.0
        self.scales: dict[str, float] | None = None
        self.smoothed: float | None = None  # the smoother's state after the last warm-up frame, in the new units
        self.heatmap_scale: float | None = None  # the scene's typical heatmap peak, in the new units (_fit)
        self.state = CalibrationState.WARMING

    @property
    def n(self) -> int:
        return len(self.rows)

    def add(self, cues: dict[str, float | None]) -> bool:
        """Take one frame's cues; True when the warm-up has just completed."""
        if self.state is not CalibrationState.WARMING:
            return False
        self.rows.append(cues)
        if self.n < self.target:
            return False
        self._fit()
        self.state = CalibrationState.DONE
        return True

    def _fit(self) -> None:
        import torch

        from model import ScorePostprocessor
        from model.scales import scene_scales

        cues: dict[str, torch.Tensor | None] = {
            k: torch.tensor([r[k] for r in self.rows]) if self.rows[0][k] is not None else None for k in self.rows[0]}
        self.scales = scene_scales(self.model, cues)
        f = self.floor
        if f is not None:
            # a cue either leaves out (a memory of footage the scene does not resemble) stays out: never stricter
            self.scales = {k: max(v, f.scales[k]) for k, v in self.scales.items() if k in f.scales}
        post = ScorePostprocessor(self.model.cfg.score_smoothing, 0.0, 1.0, math.inf)
        raw = self.model.combine(cues, self.scales)
        # the heatmap's typical peak: the largest weighted cue's largest patch mean of the cues it shows, in these
        # units (a little under the peak of the map of their largest at each pixel: by a tenth on Ped2's footage)
        w = self.model.weights()
        shown = {k: v for k, v in cues.items() if k in self.model.heat_cues and w[k] > 0 and k in self.scales}
        self.heatmap_scale = float(self.model.combine(shown, self.scales).mean()) if shown else 1.0  # (none: a
        # heatmap of zeros)
        smoothed = [post(float(x))[0] for x in raw]
        self.mean = sum(smoothed) / len(smoothed)
        self.std = floored_std(smoothed, self.mean)
        threshold = float(self.model.threshold)
        if f is not None and self.mean + threshold * self.std < f.mean + threshold * f.std:
            self.mean, self.std = f.mean, f.std
        self.smoothed = post.state


def frame_cues(cues: dict[str, torch.Tensor | None], i: int) -> dict[str, float | None]:
    """Frame i's cues as numbers, from per-frame tensors (WindowScores.cues())."""
    return {k: float(v[i]) if v is not None else None for k, v in cues.items()}


# --- uploaded clips --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scale:
    """What normalises a clip's scores: the units of its cues (None: the checkpoint's), the mean/std of its smoothed
    scores, where they came from, and how many of its first frames were used to learn them (those are flagged
    `calibrating` and never anomalous)."""

    mean: float
    std: float
    source: str  # "checkpoint", "clip" or "camera"
    info: dict[str, Any] = field(default_factory=dict)  # clip: seconds, frames; camera: its id, frames
    opening: int = 0
    scales: dict[str, float] | None = None

    def describe(self) -> str | dict[str, Any]:
        """The answer's "calibration": "checkpoint", or an object naming the source with its mean, std and units."""
        if self.source == "checkpoint":
            return "checkpoint"
        return {"source": self.source, **self.info, "mean": self.mean, "std": self.std, "scales": self.scales}


class CheckpointScale:
    """The checkpoint's units and statistics (fitted on its training footage): the default."""

    def resolve(self, model: OCRGANVideo, cues: dict[str, torch.Tensor | None], timestamps: list[float]) -> Scale:
        return Scale(float(model.score_mean), float(model.score_std), "checkpoint")


@dataclass(frozen=True)
class OpeningScale:
    """Calibrate on the clip's first `seconds` (by its frames' timestamps, from the first frame's) as normal
    footage of the scene; 422 when they hold fewer than MIN_FRAMES frames or all of the clip."""

    seconds: float

    def resolve(self, model: OCRGANVideo, cues: dict[str, torch.Tensor | None], timestamps: list[float]) -> Scale:
        t0 = timestamps[0] if timestamps else 0.0
        n = sum(1 for t in timestamps if t - t0 < self.seconds - TIMESTAMP_SLACK)
        span = f"the first {self.seconds:g} s"
        if n >= len(timestamps):
            raise ServiceError(422, f"{span} cover all {len(timestamps)} frames of the clip "
                                    f"({timestamps[-1] - t0:.2f} s from first to last): none would be left to score; "
                                    "give fewer calibrate_seconds")
        if n < MIN_FRAMES:
            raise ServiceError(422, f"{span} hold {n} frame(s); calibrating needs at least {MIN_FRAMES}: "
                                    "give more calibrate_seconds")
        cal = Calibration(n, model)
        for i in range(n):
            cal.add(frame_cues(cues, i))
        return Scale(cal.mean, cal.std, "clip", {"seconds": self.seconds, "frames": n}, opening=n, scales=cal.scales)


@dataclass(frozen=True)
class CameraScale:
    """A registered camera's learned calibration, for clips of its scene."""

    camera: str
    mean: float
    std: float
    frames: int
    scales: dict[str, float] | None = None

    @classmethod
    def of(cls, camera: str, view: dict[str, Any] | None) -> CameraScale:
        """From the camera's view (GET /streams/{id}): 404 unknown, 409 while it has no calibration."""
        if view is None:
            raise ServiceError(404, f"no camera {camera!r}")
        norm = view.get("normalisation")
        if not view.get("calibrate", True):
            raise ServiceError(409, f"camera {camera!r} does not calibrate (registered with \"calibrate\": false): "
                                    "its scores are on the checkpoint's scale, as are uploads without ?camera=")
        if norm is None:
            raise ServiceError(409, f"camera {camera!r} is {view.get('state', 'pending')} and not scored by any "
                                    "replica yet: it has no calibration; retry once it has calibrated")
        state = norm.get("calibration")
        if state == CalibrationState.WARMING:
            raise ServiceError(409, f"camera {camera!r} is still calibrating ({norm['calibration_frames']}/"
                                    f"{norm['calibration_target']} frames); retry once it has calibrated")
        if state != CalibrationState.DONE:
            raise ServiceError(409, f"camera {camera!r} has no calibration (calibration {state})")
        return cls(camera, float(norm["mean"]), float(norm["std"]), int(norm["calibration_target"]),
                   norm.get("scales"))

    def resolve(self, model: OCRGANVideo, cues: dict[str, torch.Tensor | None], timestamps: list[float]) -> Scale:
        return Scale(self.mean, self.std, "camera", {"camera": self.camera, "frames": self.frames},
                     scales=self.scales)


ClipScale = CheckpointScale | OpeningScale | CameraScale
