"""A camera's published scores: the checkpoint's smoothing/normalisation (ScorePostprocessor), optional
calibration to the camera's own normal statistics, and anomaly events with hysteresis."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from model import ScorePostprocessor, WindowScores
from service.model_host import ModelHost


class CalibrationState(StrEnum):
    OFF = "off"  # the checkpoint's statistics
    WARMING = "warming"  # collecting the camera's first frames; anomaly flags held back
    DONE = "done"  # normalising with the camera's own mean/std


class Calibration:
    """Learn the mean/std of a camera's smoothed scores over its first `frames` frames (Welford)."""

    def __init__(self, frames: int) -> None:
        self.target = frames
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.state = CalibrationState.WARMING

    def add(self, x: float) -> bool:
        """Take one smoothed score; True when the warm-up has just completed."""
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)
        if self.n >= self.target:
            self.state = CalibrationState.DONE
            return True
        return False

    @property
    def std(self) -> float:
        """Sample std, floored at 5% of the mean so a static scene does not turn noise into anomalies."""
        std = math.sqrt(self.m2 / max(self.n - 1, 1))
        return max(std, 0.05 * abs(self.mean), 1e-8)


class EventTracker:
    """Anomaly events with hysteresis: start after `start` anomalous frames in a row, end after `end` normal ones."""

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end
        self.active = False
        self.run = 0  # consecutive frames disagreeing with the current state
        self.peak = 0.0
        self.started_at: float | None = None

    def update(self, anomaly: bool, normalised: float, timestamp: float) -> str | None:
        """'start', 'end' or None."""
        if self.active:
            self.peak = max(self.peak, normalised)
        self.run = self.run + 1 if anomaly != self.active else 0
        if not self.active and self.run >= self.start:
            self.active, self.run, self.peak, self.started_at = True, 0, normalised, timestamp
            return "start"
        if self.active and self.run >= self.end:
            self.active, self.run = False, 0
            return "end"
        return None


@dataclass
class LastScore:
    frame_index: int
    timestamp: float
    score: float
    normalised: float
    anomaly: bool


class StreamScoring:
    def __init__(self, stream_id: str, host: ModelHost, calibrate: bool, calibration_frames: int,
                 event_start: int, event_end: int) -> None:
        self.stream_id = stream_id
        self.post = ScorePostprocessor.for_model(host.model)
        self.calibration = Calibration(calibration_frames) if calibrate else None
        self.events = EventTracker(event_start, event_end)
        self.last: LastScore | None = None
        self.events_started = 0

    def consume(self, scores: WindowScores, timestamps: list[float]) -> list[dict[str, Any]]:
        """One window's published frames -> score messages (and event messages), in frame order."""
        out: list[dict[str, Any]] = []
        for index, raw, ts in zip(scores.indices, scores.raw.tolist(), timestamps, strict=True):
            score, normalised, anomaly = self.post(raw)
            if self.calibration is not None and self.calibration.state is CalibrationState.WARMING:
                anomaly = False
                if self.calibration.add(score):
                    self.post.mean, self.post.std = self.calibration.mean, self.calibration.std
            self.last = LastScore(index, ts, score, normalised, anomaly)
            out.append({"type": "score", "stream_id": self.stream_id, "frame_index": index, "timestamp": ts,
                        "score": score, "normalised": normalised, "anomaly": anomaly})
            event = self.events.update(anomaly, normalised, ts)
            if event is not None:
                self.events_started += event == "start"
                out.append({"type": "event", "stream_id": self.stream_id, "event": event, "frame_index": index,
                            "timestamp": ts, "started_at": self.events.started_at,
                            "peak": self.events.peak, "at": time.time()})
        return out

    def describe(self) -> dict[str, Any]:
        c = self.calibration
        return {
            "last_score": None if self.last is None else vars(self.last),
            "anomaly_active": self.events.active,
            "anomaly_events": self.events_started,
            "normalisation": {
                "mean": self.post.mean, "std": self.post.std, "threshold": self.post.threshold,
                "calibration": CalibrationState.OFF if c is None else c.state,
                "calibration_frames": None if c is None else min(c.n, c.target),
                "calibration_target": None if c is None else c.target,
            },
        }
