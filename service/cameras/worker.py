"""One camera: a thread that connects, decodes, samples to the target fps and hands its frames to the scorer;
reconnects with capped exponential backoff. At stride 1 (with a model that never sees later frames) each frame
is a job of its own, scored on arrival from the camera's cached per-frame features (model/streaming.py);
otherwise frames are assembled into windows by the model/windows.py rule.

Frames are numbered in the order they are accepted. Every such frame gets exactly one published score (its
own, or that of the window that ends at or after it, see model/windows.py). When the scorer is behind
(max_pending_windows windows of this camera queued, or as many frames as they hold), arriving frames are
dropped and counted before they get a number; after a reconnect the assembler restarts, so frames waiting
for their window are dropped (and counted) too, and the frame stream forgets the old connection's frames.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

import av
import numpy as np
import torch

from media.decode import FrameConverter
from model import SequencePreprocessor, WindowAssembler, WindowScores
from model.streaming import FrameStream
from service.api.schemas import EventMessage, ScoreMessage, StatusMessage, StreamSpec, StreamView
from service.cameras.scores import StreamScoring
from service.cameras.snapshot import render_snapshot
from service.cameras.source import FrameSource, SourceError, SourceOptions
from service.cameras.urls import StreamTarget, check_stream_url, redact
from service.errors import ServiceError
from service.inference.host import ModelHost
from service.inference.jobs import FrameJob, Job, WindowJob
from service.inference.scorer import Scorer
from service.metrics import Metrics
from service.settings import Backoff, Settings

log = logging.getLogger("ocrgan.streams")


def lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (on Linux, where niceness is per thread; threads it starts
    later, such as the decoder's, inherit it). Elsewhere, or where the system refuses, it is left as it is."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as e:
        log.warning("a camera thread's priority could not be lowered: %s", e)


class StreamState(StrEnum):
    PENDING = "pending"  # registered, not (yet) taken by any replica
    CONNECTING = "connecting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"  # gave up after OCRGAN_MAX_FAILURES failed connections in a row


Publish = Callable[[list[ScoreMessage | EventMessage | StatusMessage]], None]


class FpsSampler:
    """Keep frames so that kept timestamps are about 1/fps apart (all of them when the source is slower)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self.next_due: float | None = None

    def keep(self, t: float) -> bool:
        if self.next_due is None or t < self.next_due - 10 * self.period:  # first frame, or time went back
            self.next_due = t + self.period
            return True
        if t < self.next_due - 1e-3:
            return False
        self.next_due += self.period
        if self.next_due <= t:  # after a gap, do not try to catch up
            self.next_due = t + self.period
        return True


class StreamWorker:
    def __init__(self, spec: StreamSpec, target: StreamTarget, settings: Settings, host: ModelHost,
                 scorer: Scorer, metrics: Metrics, publish: Publish, replica: str) -> None:
        self.spec = spec
        self.id = spec.id
        self.target = target
        self.settings = settings
        self.host = host
        self.scorer = scorer
        self.metrics = metrics
        self.publish = publish
        self.replica = replica
        self.fps = spec.fps or settings.stream_fps
        self.stride = spec.stride or host.camera_stride
        self.by_frames = host.frame_path(self.stride)  # scored frame by frame, else by windows
        self.scoring = StreamScoring(spec.id, replica, host, spec.calibrate, settings.calibration_frames,
                                     settings.event_start_frames, settings.event_end_frames,
                                     settings.recalibration_frames)
        self.state = StreamState.CONNECTING
        self.alive = True  # the scorer drops jobs of a stopped worker
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"ocrgan-stream-{spec.id}", daemon=True)
        self.assembler = None if self.by_frames else WindowAssembler(host.model.cfg.num_frames, self.stride)
        self.frame_stream = FrameStream(host.model) if self.by_frames else None  # touched by the scorer thread only
        self._new_sequence = True  # the next frame job tells the scorer to reset the frame stream
        self.numbered = 0  # frames accepted so far (= index of the next frame)
        self.prep = SequencePreprocessor(host.model.cfg)  # holds the previous frame for the motion band
        self._prep_time: float | None = None  # stream time of the frame the motion band's flow starts from
        self._arrivals: deque[tuple[float, float]] = deque()  # (monotonic, wall) of frames awaiting a window
        self._accepted: deque[float] = deque(maxlen=256)  # monotonic times, for the measured fps
        self.pending = 0  # jobs (windows or frames) queued at the scorer
        # beyond this many, arriving frames are dropped: max_pending_windows windows, or as many frames as they hold
        self.max_pending = settings.max_pending_windows * (host.model.cfg.stride if self.by_frames else 1)
        self.counts = {"decoded": 0, "skipped": 0, "dropped": 0, "scored": 0, "decode_errors": 0}
        self.reconnects = 0
        self.failures = 0  # consecutive failed connections
        self.retry = Backoff(settings.reconnect_base_seconds, settings.reconnect_cap_seconds)
        self.last_error: str | None = None  # why the camera is not running; None while it runs
        self.last_error_at: float | None = None  # epoch seconds last_error was recorded at
        self.last_frame_at: float | None = None  # monotonic
        self.started_at = time.time()
        self.source_size: tuple[int, int] | None = None
        self.latest: tuple[int, np.ndarray] | None = None  # (frame index, image) of the newest frame
        self.heat: tuple[int, np.ndarray, torch.Tensor] | None = None  # (index, image, heat cues' maps) of the
        # latest frame scored with its maps, drawn into a heatmap when a snapshot is asked for
        self._last_heat_request = 0.0
        # one scaler context for every frame; big frames shrunk by it to twice the model size (settings.prescale)
        self._convert = FrameConverter(host.grey, host.model.cfg.hw if settings.prescale else None)
        self._m = {name: getattr(metrics, f"frames_{name}").labels(self.id)
                   for name in ("decoded", "skipped", "dropped", "scored")}
        metrics.add_stream(self.id)
        metrics.set_state(self.id, self.state)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, reason: str = "stopped") -> None:
        """Signal the thread to end (it does within one frame or one I/O timeout); see join()."""
        self._stop.set()
        self.alive = False
        self._set_state(StreamState.STOPPED, reason)

    def join(self) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.settings.open_timeout_seconds + 5)

    def _set_state(self, state: StreamState, reason: str | None = None) -> None:
        with self._lock:
            if state == self.state or (self.state is StreamState.STOPPED and state is not StreamState.STOPPED):
                return
            previous, self.state = self.state, state
        self.metrics.set_state(self.id, state)
        log.info("stream %s: %s -> %s%s", self.id, previous, state, f" ({reason})" if reason else "")
        self.publish([StatusMessage(type="status", stream_id=self.id, replica=self.replica, state=state,
                                    previous=previous, reason=reason, timestamp=time.time())])

    # --- connection loop -------------------------------------------------------------------------
    def _run(self) -> None:
        s = self.settings
        lower_priority(s.camera_nice)  # the scorer first (Settings.camera_nice)
        opts = SourceOptions(s.open_timeout_seconds, s.watchdog_seconds, s)
        while not self._stop.is_set():
            try:
                self._recheck_url()
                with FrameSource(self.target, opts, self._stop) as source:
                    self.source_size = source.size
                    self._consume(source)
            except SourceError as e:
                self._error(str(e))
            except Exception as e:  # a bug must not kill the camera for good
                log.exception("stream %s: unexpected error", self.id)
                self._error(redact(f"{type(e).__name__}: {e}"))
            if self._stop.is_set():
                break
            self.failures += 1
            if s.max_failures and self.failures >= s.max_failures:
                self._set_state(StreamState.FAILED, self.last_error)
                return
            self.reconnects += 1
            self.metrics.reconnects.labels(self.id).inc()
            self._set_state(StreamState.RECONNECTING, self.last_error)
            self._restart_windows()
            self._stop.wait(self.retry.next())

    def _error(self, message: str) -> None:
        self.last_error, self.last_error_at = message, time.time()

    def _recheck_url(self) -> None:
        """The URL policy again before every connection: a host name checked at registration may resolve
        to a refused address now (DNS rebinding onto loopback, link-local or metadata addresses), or to none.
        The relay checks each address it connects to once more (service/cameras/relay.py)."""
        if self.target.is_file:
            return  # a built-in camera, or a file allowed at registration
        try:
            check_stream_url(self.spec.url, self.settings)
        except ServiceError as e:
            raise SourceError(f"refused: {e.message}") from e

    def _consume(self, source: FrameSource) -> None:
        sampler = FpsSampler(self.fps)
        got_frame = False
        for frame, t in source.frames():
            if self._stop.is_set():
                return
            now = time.monotonic()
            self.counts["decode_errors"] = source.decode_errors
            if not got_frame:
                got_frame = True
                self.failures = 0
                self.retry.reset()
                self.last_error = self.last_error_at = None  # the error is past (its reason stays in the status log)
                self._set_state(StreamState.RUNNING)
            self.last_frame_at = now
            self.counts["decoded"] += 1
            self._m["decoded"].inc()
            if not sampler.keep(t):
                self.counts["skipped"] += 1
                self._m["skipped"].inc()
                continue
            self._accept(frame, now, t)
        if not got_frame:
            raise SourceError(f"no frame decoded ({source.decode_errors} undecodable packets)")

    # --- frames -> jobs --------------------------------------------------------------------------
    def _accept(self, frame: av.VideoFrame, now: float, t: float) -> None:
        with self._lock:
            busy = self.pending >= self.max_pending
        if busy:
            self.counts["dropped"] += 1
            self._m["dropped"].inc()
            return
        image = self._convert(frame)  # uint8 luma or RGB, upright
        # the motion band's flow in pixels per period of the target fps, whatever the gap since the frame before
        interval = 1.0 if self._prep_time is None else (t - self._prep_time) * self.fps
        self._prep_time = t
        x = self.prep(image, interval)  # (in_channels, h, w)
        self._accepted.append(now)
        index = self.numbered
        self.numbered += 1
        self.latest = (index, image)
        job = self._frame_job(x, index, image, now) if self.by_frames else self._window_job(x, image, now)
        if job is None:
            return
        with self._lock:
            self.pending += 1
        self.scorer.submit(job)

    def _frame_job(self, x: torch.Tensor, index: int, image: np.ndarray, now: float) -> FrameJob:
        heat = self._heat_due(now)
        job = FrameJob(self, self.frame_stream, x, index, now, time.time(), heat, image if heat else None,
                       reset=self._new_sequence)
        self._new_sequence = False
        return job

    def _window_job(self, x: torch.Tensor, image: np.ndarray, now: float) -> WindowJob | None:
        self._arrivals.append((now, time.time()))
        window = self.assembler.push(x)
        if window is None:
            return None
        arrivals = [self._arrivals.popleft() for _ in window.indices]
        heat = self._heat_due(now)
        return WindowJob(self, window, [a[0] for a in arrivals], [a[1] for a in arrivals], heat,
                         image if heat else None)

    def _heat_due(self, now: float) -> bool:
        """Whether this job also computes the anomaly map: once every snapshot_interval_seconds."""
        if now - self._last_heat_request < self.settings.snapshot_interval_seconds:
            return False
        self._last_heat_request = now
        return True

    def _restart_windows(self) -> None:
        """After a discontinuity: frames still waiting for their window are dropped with the buffer; the frame
        stream starts a new sequence with the next frame."""
        lost = len(self._arrivals)
        if self.assembler is not None:
            self.assembler.restart()
        self._new_sequence = True
        self.prep.reset()
        self._prep_time = None
        self._convert.restart()  # the next connection's display matrix is read anew
        self._arrivals.clear()
        if lost:
            self.counts["dropped"] += lost
            self._m["dropped"].inc(lost)

    # --- scorer thread ---------------------------------------------------------------------------
    def on_failed(self, job: Job, error: BaseException) -> None:
        """The scorer could not score this job (it logged why): its frames are lost, counted as dropped."""
        with self._lock:
            self.pending -= 1
        lost = job.published
        self.counts["dropped"] += lost
        self._m["dropped"].inc(lost)

    def on_scores(self, job: Job, scores: WindowScores) -> None:
        with self._lock:
            self.pending -= 1
        if not self.alive:
            return
        recalibrations = self.scoring.recalibrations
        messages = self.scoring.consume(scores, job.timestamps)
        if scores.maps is not None and job.frame is not None:
            self.heat = (scores.indices[-1], job.frame, scores.maps[-1].clone())  # not a view of the whole batch
        self.publish(messages)
        done = time.monotonic()
        for t in job.arrivals:
            self.metrics.latency.observe(done - t)
        n = len(scores.indices)
        self.counts["scored"] += n
        m = self.metrics
        self._m["scored"].inc(n)
        last = self.scoring.last
        m.anomaly_score.labels(self.id).set(last.normalised)
        m.anomaly_active.labels(self.id).set(1.0 if self.scoring.events.active else 0.0)
        started = sum(1 for msg in messages if isinstance(msg, EventMessage) and msg.event == "start")
        if started:
            m.anomaly_events.labels(self.id).inc(started)
        if self.scoring.recalibrations > recalibrations:
            m.recalibrations.labels(self.id).inc(self.scoring.recalibrations - recalibrations)

    # --- views -----------------------------------------------------------------------------------
    def measured_fps(self) -> float:
        times = [t for t in self._accepted if t >= time.monotonic() - 5.0]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def snapshot(self) -> bytes | None:
        """JPEG of the newest frame with the latest anomaly map blended over it (None before any frame), the map
        drawn relative to the camera's own typical level once it has calibrated (StreamScoring.heatmap_scale)."""
        if self.heat is not None:
            _, image, maps = self.heat
            heat, scale = self.scoring.snapshot_heat(maps)
            return render_snapshot(image, heat.numpy(), scale)
        if self.latest is not None:
            return render_snapshot(self.latest[1], None, 1.0)
        return None

    def view(self) -> StreamView:
        age = None if self.last_frame_at is None else round(time.monotonic() - self.last_frame_at, 3)
        fps = self.measured_fps()
        self.metrics.stream_fps.labels(self.id).set(fps)
        return StreamView(
            id=self.id,
            url=redact(self.spec.url),
            state=self.state,
            fps=self.fps,
            fps_measured=round(fps, 2),
            stride=self.stride,
            scoring=self.host.scoring(self.stride),
            calibrate=self.spec.calibrate,
            frames_decoded=self.counts["decoded"],
            frames_skipped=self.counts["skipped"],
            frames_dropped=self.counts["dropped"],
            frames_scored=self.counts["scored"],
            decode_errors=self.counts["decode_errors"],
            reconnects=self.reconnects,
            last_error=self.last_error,  # why it is not running (connecting/reconnecting/failed); null while running
            last_error_at=self.last_error_at,
            last_frame_age_s=age,
            source_size=list(self.source_size) if self.source_size else None,
            replica=self.replica,
            started_at=self.started_at,
            updated_at=time.time(),
            **self.scoring.describe(),
        )
