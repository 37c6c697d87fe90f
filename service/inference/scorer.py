"""The scorer: the one thread that runs the model. Windows from every source, cameras and uploaded clips alike,
wait in one queue and are micro-batched (up to max_batch windows, waiting at most max_wait after the first)
into one score_windows() call. Each source bounds what it has queued (a camera max_pending_windows, a clip
clip_batch), so the queue is bounded and neither starves the other."""

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
from model.windows import iter_clip_windows
from service.errors import ServiceError
from service.inference.host import ModelHost
from service.metrics import Metrics

log = logging.getLogger("ocrgan.scorer")


class ScoreSink(Protocol):
    """Where a source's scored windows go (a camera's stream worker, an uploaded clip's ClipSink)."""

    alive: bool

    def on_scores(self, job: WindowJob, scores: WindowScores) -> None: ...

    def on_failed(self, job: WindowJob, error: BaseException) -> None: ...


class ClipSink:
    """An uploaded clip's results, in order (a source's windows are scored in the order they were queued)."""

    def __init__(self, reduce: Callable[[WindowScores], WindowScores] | None) -> None:
        self.alive = True  # False once the caller has gone: its queued windows are skipped
        self.reduce = reduce
        self.results: list[WindowScores] = []
        self.error: BaseException | None = None
        self.pending = 0  # windows queued at the scorer
        self.changed = threading.Condition()

    def on_scores(self, job: WindowJob, scores: WindowScores) -> None:
        with self.changed:
            self.results.append(self.reduce(scores) if self.reduce else scores)
            self.pending -= 1
            self.changed.notify_all()

    def on_failed(self, job: WindowJob, error: BaseException) -> None:
        with self.changed:
            self.error = self.error or error
            self.pending -= 1
            self.changed.notify_all()


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
        self._windows: deque[WindowJob] = deque()  # bounded per source: a camera's worker, a clip's caller
        self._arrived = threading.Condition()  # a window arrived
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

    # --- clips -----------------------------------------------------------------------------------
    def run_clip(self, frames: Iterable[torch.Tensor], stride: int, heatmaps: bool,
                 reduce: Callable[[WindowScores], WindowScores] | None = None) -> list[WindowScores]:
        """Score a clip's preprocessed frames by the windows rule (model.windows), its windows queued with the
        cameras'; blocks the caller, which assembles the windows, with at most clip_batch of them queued.
        `reduce` is applied to each window's scores as they come (to keep only what the answer needs)."""
        sink = ClipSink(reduce)
        try:
            for window in iter_clip_windows(frames, self.host.model.cfg.num_frames, stride):
                self._await(sink, lambda: sink.pending < self.clip_batch)
                with sink.changed:
                    sink.pending += 1
                self.submit(WindowJob(sink, window, [], [], heatmap=heatmaps))
            self._await(sink, lambda: sink.pending == 0)
            return sink.results
        finally:
            sink.alive = False

    def _await(self, sink: ClipSink, ready: Callable[[], bool]) -> None:
        """Wait until `ready()`; raise the clip's scoring error, or 503 when the scorer stops meanwhile."""
        while True:
            with sink.changed:
                if sink.error is not None:
                    raise sink.error
                if ready():
                    return
                sink.changed.wait(0.5)
            if self._stop.is_set() or not self.alive:
                raise ServiceError(503, "the scorer is shutting down")

    # --- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._collect()
            if batch:
                self._score(batch)

    def _collect(self) -> list[WindowJob]:
        """Up to max_batch windows: the first (waiting up to 50 ms), then what arrives within max_wait of it."""
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
                if deadline is None:
                    if waited:
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
        except Exception as e:
            log.exception("scoring a batch of %d windows failed", len(live))
            for job in live:
                try:
                    job.sink.on_failed(job, e)
                except Exception:
                    log.exception("reporting a failed batch failed")
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
