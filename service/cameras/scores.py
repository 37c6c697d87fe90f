"""A camera's published scores: the checkpoint's smoothing/normalisation (ScorePostprocessor), calibration to
the camera's own units and normal statistics (service/inference/calibration.py, on by default), refreshed from the
frames it did not flag as the scene changes over the day, and anomaly events with hysteresis."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from model import ScorePostprocessor, WindowScores
from service.api.schemas import EventMessage, LastScore, Normalisation, ScoreMessage
from service.inference.calibration import Calibration, CalibrationState, frame_cues
from service.inference.host import ModelHost

if TYPE_CHECKING:
    import torch

log = logging.getLogger("ocrgan.streams")


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


class StreamScoring:
    """`recalibration_frames` (0: never): once calibrated, a camera learns its units and level again over each
    span of that many frames, from an even sample of the frames it did not flag (nor scored during an anomaly
    event), as many as the warm-up held, and uses them from then on, never stricter than its warm-up's
    (Calibration's floor). Light, weather and the day's traffic change a scene's normal scores; a warm-up kept for
    good flags a scene that has merely grown busier or darker, while anomalies stay out of what the camera learns
    as normal."""

    def __init__(self, stream_id: str, replica: str, host: ModelHost, calibrate: bool, calibration_frames: int,
                 event_start: int, event_end: int, recalibration_frames: int = 0) -> None:
        self.stream_id = stream_id
        self.replica = replica
        self.model = host.model
        self.post = ScorePostprocessor.for_model(host.model)
        self.rec_scale = float(host.model.rec_scale)
        self.checkpoint_scales = host.model.scales()  # read once: a snapshot does not read the device's buffers
        self.calibration = Calibration(calibration_frames, host.model) if calibrate else None
        self.warm_up = self.calibration  # what later calibrations may not be stricter than
        # every how many unflagged frames one joins the next calibration (0: no recalibration)
        self.sample_every = max(1, recalibration_frames // calibration_frames) if calibrate and recalibration_frames \
            else 0
        self.next_calibration: Calibration | None = None
        self.recalibrations = 0
        self._unflagged = 0
        self.events = EventTracker(event_start, event_end)
        self.last: LastScore | None = None
        self.events_started = 0

    def consume(self, scores: WindowScores, timestamps: list[float]) -> list[ScoreMessage | EventMessage]:
        """One window's published frames -> score messages (and event messages), in frame order."""
        out: list[ScoreMessage | EventMessage] = []
        sid, replica = self.stream_id, self.replica
        cues = scores.cues()
        raws = self._raw(scores)
        for i, (index, ts) in enumerate(zip(scores.indices, timestamps, strict=True)):
            score, normalised, anomaly = self.post(raws[i])
            c = self.calibration
            if c is not None and c.state is CalibrationState.WARMING:
                anomaly = False
                if c.add(frame_cues(cues, i)):  # from the next frame on: the scene's units and level
                    self.post.mean, self.post.std, self.post.state = c.mean, c.std, c.smoothed
                    raws = self._raw(scores)
            elif self.sample_every and not (anomaly or self.events.active) and self._sample(cues, i):
                raws = self._raw(scores)  # from the next frame on: the newly learnt units and level
            out.append(ScoreMessage(type="score", stream_id=sid, replica=replica, frame_index=index, timestamp=ts,
                                    score=score, normalised=normalised, anomaly=anomaly))
            event = self.events.update(anomaly, normalised, ts)
            if event is not None:
                self.events_started += event == "start"
                out.append(EventMessage(type="event", stream_id=sid, replica=replica, event=event, frame_index=index,
                                        timestamp=ts, started_at=self.events.started_at, peak=self.events.peak,
                                        at=time.time()))
        if out:
            m = next(m for m in reversed(out) if isinstance(m, ScoreMessage))
            self.last = LastScore(frame_index=m.frame_index, timestamp=m.timestamp, score=m.score,
                                  normalised=m.normalised, anomaly=m.anomaly)
        return out

    def _sample(self, cues: dict[str, torch.Tensor | None], i: int) -> bool:
        """Count unflagged frame i of a window (its `cues`) towards the next calibration; True when that one has just
        replaced the current one. The smoother restarts from the next frame, whose raw score is in the new units."""
        self._unflagged += 1
        if self._unflagged % self.sample_every:
            return False
        c = self.calibration
        if self.next_calibration is None:
            self.next_calibration = Calibration(c.target, self.model, floor=self.warm_up)
        if not self.next_calibration.add(frame_cues(cues, i)):
            return False
        c = self.calibration = self.next_calibration
        self.next_calibration = None
        self.recalibrations += 1
        self.post.mean, self.post.std, self.post.state = c.mean, c.std, None
        log.info("stream %s recalibrated (%d) from %d unflagged frames: mean %.4g std %.4g", self.stream_id,
                 self.recalibrations, c.n, c.mean, c.std)
        return True

    def _raw(self, scores: WindowScores) -> list[float]:
        """Raw scores in the scene's units once calibrated, else as scored (the checkpoint's units)."""
        c = self.calibration
        if c is None or c.scales is None:
            return scores.raw.tolist()
        return self.model.combine(scores.cues(), c.scales).tolist()

    def _drawn_with(self) -> tuple[dict[str, float], float]:
        """The units a snapshot's heatmap is drawn in and the scale it is drawn relative to, of one calibration (the
        scorer's thread may replace it meanwhile): the camera's own once it has calibrated (Calibration.heatmap_scale),
        else the checkpoint's units and rec_scale."""
        c = self.calibration
        if c is not None and c.state is CalibrationState.DONE and c.heatmap_scale is not None:
            return c.scales, c.heatmap_scale
        return self.checkpoint_scales, self.rec_scale

    def snapshot_heat(self, maps: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(k, H, W) a frame's heat cues' maps (model.Scored.maps) -> its heatmap (H, W) and the scale to draw it
        relative to. Once the camera has calibrated, the heatmap is in its units: a cue its scores leave out (a memory
        of footage unlike the scene) is left out of the picture too, and each cue weighs as it does in its scores."""
        scales, scale = self._drawn_with()
        return self.model.heatmap(maps, scales), scale

    @property
    def heatmap_scale(self) -> float:
        """What the snapshot heatmap is drawn relative to (_drawn_with)."""
        return self._drawn_with()[1]

    def describe(self) -> dict[str, Any]:
        """This camera's part of its StreamView."""
        c = self.calibration
        return {
            "last_score": self.last,
            "anomaly_active": self.events.active,
            "anomaly_events": self.events_started,
            "normalisation": Normalisation(
                mean=self.post.mean, std=self.post.std, threshold=self.post.threshold,
                calibration=CalibrationState.OFF if c is None else c.state,
                calibration_frames=None if c is None else min(c.n, c.target),
                calibration_target=None if c is None else c.target,
                heatmap_scale=self.heatmap_scale,
                scales=None if c is None else c.scales,
                recalibrations=None if c is None else self.recalibrations,
            ),
        }
