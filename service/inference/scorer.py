"""The scorer: the one thread that runs the model. Ready windows from all cameras are micro-batched
(up to max_batch windows, waiting at most max_wait after the first) into one score_windows() call;
uploaded clips are advanced a batch at a time in between, so neither starves the other."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from model import Window, WindowScores, score_windows
from service.clips.job import ClipJob
from service.errors import ServiceError
from service.inference.host import ModelHost
from service.metrics import Metrics

log = logging.getLogger("ocrgan.scorer")


class ScoreSink(Protocol):
    """Where a camera's scored windows go (its stream worker)."""

    alive: bool

    def on_scores(self, job: WindowJob, scores: WindowScores) -> None: ...


@dataclass
class WindowJob:
    sink: ScoreSink
    window: Window
    arrivals: list[float]  # time.monotonic() when each published frame was decoded
    timestamps: list[float]  # wall-clock time (unix seconds) of each published frame
    heatmap: bool = False  # also compute the anomaly map (for the snapshot)
    frame: np.ndarray | None = field(default=None, repr=False)  # the window's last frame, for the snapshot


class Scorer:
    def __init__(self, host: ModelHost, metrics: Metrics, max_batch: int, max_wait_s: float, clip_batch: int) -> None:
        self.host = host
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.clip_batch = clip_batch
        self._windows: deque[WindowJob] = deque()  # bounded per camera by its worker
        self._clip_ready = False  # a clip has a batch waiting: the scorer does not sleep on the windows
        self._arrived = threading.Condition()  # a window or a clip batch arrived
        self.clips: list[ClipJob] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ocrgan-scorer", daemon=True)
        self.batches = 0
        self.windows_scored = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for job in self.clips:
                job.cancel()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, job: WindowJob) -> None:
        with self._arrived:
            self._windows.append(job)
            self.metrics.scorer_queue.set(len(self._windows))
            self._arrived.notify()

    @property
    def queued(self) -> int:
        """Windows waiting to be scored."""
        return len(self._windows)

    def _wake(self) -> None:
        with self._arrived:
            self._clip_ready = True
            self._arrived.notify()

    # --- clips -----------------------------------------------------------------------------------
    def run_clip(self, frames: Iterable[torch.Tensor], stride: int, heatmaps: bool,
                 reduce: Callable[[WindowScores], WindowScores] | None = None) -> list[WindowScores]:
        """Score a clip's preprocessed frames via iter_clip_scores in the scorer thread; blocks the caller.
        `reduce` is applied to each window's scores as they come (to keep only what the answer needs)."""
        job = ClipJob(self.host.model, stride, self.clip_batch, heatmaps, self.host.amp, reduce)
        with self._lock:
            self.clips.append(job)
        try:
            for frame in frames:
                while not job.put(frame):
                    self._check(job)
                if job.frames.qsize() == job.need:
                    self._wake()
            while not job.end():
                self._check(job)
            self._wake()
            while not job.finished.wait(0.5):
                self._check(job)
            if job.error is not None:
                raise job.error
            return job.results
        finally:
            job.cancel()
            with self._lock:
                if job in self.clips:
                    self.clips.remove(job)

    def _check(self, job: ClipJob) -> None:
        if job.finished.is_set() and job.error is not None:
            raise job.error
        if self._stop.is_set() or not self.alive:
            raise ServiceError(503, "the scorer is shutting down")

    def _ready_clip(self) -> ClipJob | None:
        with self._lock:
            for job in self.clips:
                if not job.finished.is_set() and job.ready():
                    # rotate so concurrent clips take turns
                    self.clips.remove(job)
                    self.clips.append(job)
                    return job
        return None

    # --- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            clip = self._ready_clip()
            batch = self._collect(wait=clip is None)
            if batch:
                self._score(batch)
            if clip is not None:
                clip.step()

    def _collect(self, wait: bool) -> list[WindowJob]:
        """Up to max_batch windows: the first (waiting up to 50 ms when `wait`, unless a clip batch
        arrives), then what arrives within max_wait of it."""
        batch: list[WindowJob] = []
        deadline = None
        waited = False
        with self._arrived:
            while len(batch) < self.max_batch:
                if self._windows:
                    batch.append(self._windows.popleft())
                    if deadline is None:
                        deadline = time.monotonic() + self.max_wait_s
                    continue
                if self._clip_ready:
                    self._clip_ready = False
                    if not batch:
                        break  # a clip is ready: go and step it
                if deadline is None:
                    if not wait or waited:
                        break
                    waited = True
                    self._arrived.wait(0.05)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
            if batch:
                self.metrics.scorer_queue.set(len(self._windows))
        return batch

    def _score(self, batch: list[WindowJob]) -> None:
        live = [j for j in batch if j.sink.alive]
        if not live:
            return
        heat = any(j.heatmap for j in live)
        t0 = time.perf_counter()
        try:
            results = score_windows(self.host.model, [j.window for j in live], heatmaps=heat, amp=self.host.amp)
        except Exception:
            log.exception("scoring a batch of %d windows failed", len(live))
            return
        self.metrics.inference.observe(time.perf_counter() - t0)
        self.metrics.batch_size.observe(len(live))
        self.batches += 1
        self.windows_scored += len(live)
        for job, scores in zip(live, results, strict=True):
            try:
                job.sink.on_scores(job, scores)
            except Exception:
                log.exception("publishing scores failed")
