"""A scene's own normal score level, learnt from its first frames, for cameras and uploaded clips alike.

A camera learns it over its first OCRGAN_CALIBRATION_FRAMES frames; an uploaded clip over its first N seconds
(POST /score?calibrate_seconds=N), or takes a camera's (?camera=ID). Either way smoothed scores are then
normalised as (score - mean) / std and compared with the checkpoint's threshold, so the threshold means "this
many spreads above this scene's normal level" wherever the scene was filmed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from service.errors import ServiceError

if TYPE_CHECKING:  # settings import this module: it must not pull in torch
    from model import OCRGANVideo

MIN_FRAMES = 10  # fewer frames than this give no usable spread
TIMESTAMP_SLACK = 1e-4  # seconds: a frame this close to the end of the calibration seconds is past it (rounding)


class CalibrationState(StrEnum):
    OFF = "off"  # the checkpoint's statistics
    WARMING = "warming"  # collecting the first frames; anomaly flags held back
    DONE = "done"  # normalising with the scene's own mean/std


class Calibration:
    """Learn the mean/std of a scene's smoothed scores over its first `frames` frames (Welford), and the mean of
    their raw reconstruction error (`rec`, the peak of each frame's heatmap) as the scene's heatmap scale."""

    def __init__(self, frames: int) -> None:
        self.target = frames
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.rec_n = 0
        self.rec_mean = 0.0
        self.state = CalibrationState.WARMING

    def add(self, x: float, rec: float | None = None) -> bool:
        """Take one smoothed score (and its frame's raw rec); True when the warm-up has just completed."""
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)
        if rec is not None:
            self.rec_n += 1
            self.rec_mean += (rec - self.rec_mean) / self.rec_n
        if self.n >= self.target and self.state is CalibrationState.WARMING:
            self.state = CalibrationState.DONE
            return True
        return False

    @property
    def std(self) -> float:
        """Sample std, floored at 5% of the mean so a static scene does not turn noise into anomalies."""
        std = math.sqrt(self.m2 / max(self.n - 1, 1))
        return max(std, 0.05 * abs(self.mean), 1e-8)

    @property
    def heatmap_scale(self) -> float | None:
        """The heatmap level this scene reaches when nothing unusual happens: the mean over the warm-up of each
        frame's rec, the largest patch mean of its heatmap. The checkpoint's `rec_scale` is the same mean taken
        over the training footage, so a snapshot drawn with this scale shows the scene's own typical peak where
        the checkpoint's would show the training scene's (None when no rec was given)."""
        return self.rec_mean if self.rec_n else None


# --- uploaded clips --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scale:
    """The mean/std that normalise a clip's smoothed scores, where they came from, and how many of its first
    frames were used to learn them (those are flagged `calibrating` and never anomalous)."""

    mean: float
    std: float
    source: str  # "checkpoint", "clip" or "camera"
    info: dict[str, Any] = field(default_factory=dict)  # clip: seconds, frames; camera: its id, frames
    opening: int = 0

    def describe(self) -> str | dict[str, Any]:
        """The answer's "calibration": "checkpoint", or an object naming the source with its mean and std."""
        if self.source == "checkpoint":
            return "checkpoint"
        return {"source": self.source, **self.info, "mean": self.mean, "std": self.std}


class CheckpointScale:
    """The checkpoint's statistics (fitted on its training footage): the default."""

    def resolve(self, model: OCRGANVideo, scores: list[float], timestamps: list[float]) -> Scale:
        return Scale(float(model.score_mean), float(model.score_std), "checkpoint")


@dataclass(frozen=True)
class OpeningScale:
    """Calibrate on the clip's first `seconds` (by its frames' timestamps, from the first frame's) as normal
    footage of the scene; 422 when they hold fewer than MIN_FRAMES frames or all of the clip."""

    seconds: float

    def resolve(self, model: OCRGANVideo, scores: list[float], timestamps: list[float]) -> Scale:
        t0 = timestamps[0] if timestamps else 0.0
        n = sum(1 for t in timestamps if t - t0 < self.seconds - TIMESTAMP_SLACK)
        span = f"the first {self.seconds:g} s"
        if n >= len(scores):
            raise ServiceError(422, f"{span} cover all {len(scores)} frames of the clip "
                                    f"({timestamps[-1] - t0:.2f} s from first to last): none would be left to score; "
                                    "give fewer calibrate_seconds")
        if n < MIN_FRAMES:
            raise ServiceError(422, f"{span} hold {n} frame(s); calibrating needs at least {MIN_FRAMES}: "
                                    "give more calibrate_seconds")
        cal = Calibration(n)
        for x in scores[:n]:
            cal.add(x)
        return Scale(cal.mean, cal.std, "clip", {"seconds": self.seconds, "frames": n}, opening=n)


@dataclass(frozen=True)
class CameraScale:
    """A registered camera's learned calibration, for clips of its scene."""

    camera: str
    mean: float
    std: float
    frames: int

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
        return cls(camera, float(norm["mean"]), float(norm["std"]), int(norm["calibration_target"]))

    def resolve(self, model: OCRGANVideo, scores: list[float], timestamps: list[float]) -> Scale:
        return Scale(self.mean, self.std, "camera", {"camera": self.camera, "frames": self.frames})


ClipScale = CheckpointScale | OpeningScale | CameraScale
