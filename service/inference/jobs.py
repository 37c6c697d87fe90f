"""What sources queue at the scorer: a window (of a clip, or of a camera scored by windows) or a single frame (of
a camera scored frame by frame), and the sink each one's scores go to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from model import Window, WindowScores
from model.streaming import FrameStream


class ScoreSink(Protocol):
    """Where a source's scored jobs go (a camera's stream worker, an uploaded clip's ClipSink)."""

    alive: bool

    def on_scores(self, job: Job, scores: WindowScores) -> None: ...

    def on_failed(self, job: Job, error: BaseException) -> None: ...


@dataclass
class WindowJob:
    sink: ScoreSink
    window: Window
    arrivals: list[float]  # time.monotonic() when each published frame was decoded
    timestamps: list[float]  # wall-clock time (unix seconds) of each published frame
    heatmap: bool = False  # also compute the anomaly map (for the snapshot)
    frame: np.ndarray | None = field(default=None, repr=False)  # the window's last frame, for the snapshot

    @property
    def published(self) -> int:
        """Frames this job publishes a score for."""
        return len(self.window.indices)


@dataclass
class FrameJob:
    sink: ScoreSink
    stream: FrameStream  # the camera's cached past; touched by the scorer thread only
    inputs: torch.Tensor = field(repr=False)  # (C_in, H, W) the preprocessed frame
    index: int  # the frame's number in its camera
    arrival: float  # time.monotonic() when the frame was decoded
    timestamp: float  # wall-clock time (unix seconds) of the frame
    heatmap: bool = False  # also compute the anomaly map (for the snapshot)
    frame: np.ndarray | None = field(default=None, repr=False)  # the image, for the snapshot
    reset: bool = False  # the first frame of a new connection: the stream forgets its past first

    @property
    def arrivals(self) -> list[float]:
        return [self.arrival]

    @property
    def timestamps(self) -> list[float]:
        return [self.timestamp]

    @property
    def published(self) -> int:
        """Frames this job publishes a score for."""
        return 1


Job = WindowJob | FrameJob
