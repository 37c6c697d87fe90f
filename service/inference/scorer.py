"""The scorer: the one thread that runs the model. Jobs from every source wait in one queue: windows of
uploaded clips and of cameras scored by windows, single frames of cameras and clips scored frame by frame. They are
micro-batched (up to max_batch windows' worth, a frame counting as the checkpoint's stride-th part of a window;
waiting at most max_wait after the first): the windows into one score_windows() call, the frames of all cameras
into one score_frames() call on a GPU and each camera's into its own on a CPU (service/inference/frame_jobs.py),
each pass's scores published as soon as it is done. Each source bounds what it has queued (a camera
max_pending_windows windows or as many frames, a clip clip_batch), so the queue is bounded and neither starves
the other."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import torch

from model import WindowScores, score_windows
from model.streaming import FrameStream
from model.windows import frame_by_frame, iter_clip_windows
from service.errors import ServiceError
from service.inference.frame_jobs import score_frame_jobs
from service.inference.host import ModelHost
from service.inference.jobs import FrameJob, Job, WindowJob
from service.metrics import Metrics

log = logging.getLogger("ocrgan.scorer")


class ClipSink:
    """An uploaded clip's results, in order (a source's windows are scored in the order they were queued)."""

    def __init__(self, reduce: Callable[[WindowScores], WindowScores] | None) -> None:
        self.alive = True  # False once the caller has gone: its queued jobs are skipped
        self.reduce = reduce
        self.results: list[WindowScores] = []
        self.error: BaseException | None = None
        self.pending = 0  # jobs (windows, or frames at stride 1) queued at the scorer
        self.changed = threading.Condition()

    def on_scores(self, job: Job, scores: WindowScores) -> None:
        with self.changed:
            self.results.append(self.reduce(scores) if self.reduce else scores)
            self.pending -= 1
            self.changed.notify_all()

    def on_failed(self, job: Job, error: BaseException) -> None:
        with self.changed:
            self.error = self.error or error
            self.pending -= 1
            self.changed.notify_all()


class Scorer:
    def __init__(self, host: ModelHost, metrics: Metrics, max_batch: int, max_wait_s: float, clip_batch: int) -> None:
        self.host = host
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.clip_batch = clip_batch
        self._jobs: deque[Job] = deque()  # bounded per source: a camera's worker, a clip's caller
        self._arrived = threading.Condition()  # a job arrived
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ocrgan-scorer", daemon=True)
        self.batches = 0
        self.windows_scored = 0
        self.frames_scored = 0  # frame jobs

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, job: Job) -> None:
        with self._arrived:
            self._jobs.append(job)
            self.metrics.scorer_queue.set(len(self._jobs))
            self._arrived.notify()

    @property
    def queued(self) -> int:
        """Jobs (windows and frames) waiting to be scored."""
        return len(self._jobs)

    # --- clips -----------------------------------------------------------------------------------
    def run_clip(self, frames: Iterable[torch.Tensor], stride: int, heatmaps: bool,
                 reduce: Callable[[WindowScores], WindowScores] | None = None) -> list[WindowScores]:
        """Score a clip's preprocessed frames by the rule of model.windows, its jobs queued with the cameras': its
        windows, or at stride 1 its frames one by one from cached features, as a camera's; blocks the caller, which
        makes the jobs, with at most clip_batch windows' worth of them queued. `reduce` is applied to each job's
        scores as they come (to keep only what the answer needs)."""
        sink = ClipSink(reduce)
        model = self.host.model
        try:
            if frame_by_frame(model, stride):
                stream, bound = FrameStream(model), self.clip_batch * model.cfg.stride
                jobs: Iterable[Job] = (FrameJob(sink, stream, f, i, 0.0, 0.0, heatmap=heatmaps)
                                       for i, f in enumerate(frames))
            else:
                bound = self.clip_batch
                jobs = (WindowJob(sink, w, [], [], heatmap=heatmaps)
                        for w in iter_clip_windows(frames, model.cfg.num_frames, stride))
            for job in jobs:
                self._await(sink, lambda: sink.pending < bound)
                with sink.changed:
                    sink.pending += 1
                self.submit(job)
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

    def _share(self, job: Job) -> float:
        """A job's share of max_batch: a window, or a frame as the checkpoint's stride-th part of one (the frames
        a window publishes), so a camera scored frame by frame catches up in batches as a window would."""
        return 1.0 if isinstance(job, WindowJob) else 1.0 / self.host.model.cfg.stride

    def _collect(self) -> list[Job]:
        """Up to max_batch windows' worth of jobs: the first (waiting up to 50 ms), then what arrives within
        max_wait of it. Frame jobs on a CPU do not wait for more: there a pass of frames of several cameras costs
        as much per frame as one camera's (59.8 against 60.1 frames/s for four cameras and for one, shipped
        model, one thread), so waiting would only add to their latency."""
        frames_wait = self.host.device.type != "cpu"
        batch: list[Job] = []
        used = 0.0
        deadline = None
        waited = False
        with self._arrived:
            while used < self.max_batch - 1e-9:
                if self._jobs:
                    batch.append(self._jobs.popleft())
                    used += self._share(batch[-1])
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
                if remaining <= 0 or not (frames_wait or any(isinstance(j, WindowJob) for j in batch)):
                    break
                self._arrived.wait(remaining)
            if batch:
                self.metrics.scorer_queue.set(len(self._jobs))
        return batch

    def _score(self, batch: list[Job]) -> None:
        live = [j for j in batch if j.sink.alive]
        if not live:
            return
        windows = [j for j in live if isinstance(j, WindowJob)]
        frames = [j for j in live if isinstance(j, FrameJob)]
        scored, busy = 0, 0.0
        passes = [(self._score_windows, windows)] + [(self._score_frames, p) for p in self._frame_passes(frames)]
        for score, jobs in passes:
            t0 = time.perf_counter()
            done = score(jobs)
            busy += time.perf_counter() - t0
            scored += len(done)
            for job, scores in done:  # published as soon as their pass is done, not at the batch's end
                try:
                    job.sink.on_scores(job, scores)
                except Exception:
                    log.exception("publishing scores failed")
        if scored:
            self.metrics.inference.observe(busy)
            self.metrics.batch_size.observe(len(live))
            self.batches += 1

    def _frame_passes(self, jobs: list[FrameJob]) -> list[list[FrameJob]]:
        """The passes a batch's camera frames are scored in: on a GPU one, the new frames of every camera in one
        forward pass; on a CPU one per camera (in the order of their first frames), where a pass of several cameras
        costs as much per frame as one camera's: so one camera's frames are published without waiting for the
        others' (four cameras whose frames arrive together no longer all wait for the fourth), and a camera whose
        frames fail does not fail the others."""
        if self.host.device.type != "cpu":
            return [jobs] if jobs else []
        cameras: dict[int, list[FrameJob]] = {}
        for job in jobs:
            cameras.setdefault(id(job.stream), []).append(job)
        return list(cameras.values())

    def _score_windows(self, jobs: list[WindowJob]) -> list[tuple[Job, WindowScores]]:
        done = self._run_pass(jobs, "windows", lambda heat: score_windows(
            self.host.model, [j.window for j in jobs], heatmaps=heat, amp=self.host.amp, run=self.host.window_runner))
        self.windows_scored += len(done)
        return done

    def _score_frames(self, jobs: list[FrameJob]) -> list[tuple[Job, WindowScores]]:
        done = self._run_pass(jobs, "camera frames", lambda heat: score_frame_jobs(
            self.host.model, jobs, heat, self.host.amp, run=self.host.frame_runner))
        self.frames_scored += len(done)
        return done

    def _run_pass(self, jobs: list[WindowJob] | list[FrameJob], what: str,
                  run: Callable[[bool], list[WindowScores]]) -> list[tuple[Job, WindowScores]]:
        """One forward pass over jobs of one kind (`run(heatmaps)`), each job with its scores; on a failure, every
        source in the pass hears of it and nothing is returned."""
        if not jobs:
            return []
        try:
            results = run(any(j.heatmap for j in jobs))
        except Exception as e:
            log.exception("scoring a batch of %d %s failed", len(jobs), what)
            self._failed(jobs, e)
            return []
        return list(zip(jobs, results, strict=True))

    def _failed(self, jobs: list[WindowJob] | list[FrameJob], error: BaseException) -> None:
        """A pass the model failed on: every source in it hears of it."""
        for job in jobs:
            try:
                job.sink.on_failed(job, error)
            except Exception:
                log.exception("reporting a failed batch failed")
