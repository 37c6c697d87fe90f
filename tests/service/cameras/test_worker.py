"""One camera against a real loopback RTSP server: scores, frame numbering, drops, reconnects, watchdog,
calibration by default, the snapshot drawn on the camera's own scale, and the camera's thread below the scorer's
CPU priority."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from service.api.schemas import StreamSpec
from service.cameras.snapshot import render_snapshot
from service.cameras.urls import StreamTarget
from service.cameras.worker import FpsSampler, StreamState, StreamWorker
from service.inference.host import ModelHost
from service.inference.scorer import Scorer
from service.metrics import Metrics
from testkit.servers import free_port, wait_for
from tests.service.junk_servers import SilentTCP


def test_fps_sampler_keeps_the_target_rate():
    s = FpsSampler(10.0)
    kept = [t / 25 for t in range(250) if s.keep(t / 25)]  # 10 s of 25 fps
    assert 98 <= len(kept) <= 102
    s = FpsSampler(30.0)
    assert all(s.keep(t / 25) for t in range(50))  # slower source: everything
    s = FpsSampler(5.0)
    assert s.keep(0.0) and s.keep(100.0) and s.keep(3.0)  # a jump ahead, then time going back


class Recorder:
    """What a worker publishes, as the JSON it is sent as."""

    def __init__(self):
        self.messages = []
        self.received = []  # monotonic time each message was published at
        self.lock = threading.Lock()

    def __call__(self, messages):
        now = time.monotonic()
        with self.lock:
            self.messages.extend(m.model_dump(mode="json") for m in messages)
            self.received.extend(now for _ in messages)

    def first_status(self, state):
        """(message, monotonic time) of the first status message that announced `state`."""
        with self.lock:
            return next((m, t) for m, t in zip(self.messages, self.received, strict=True)
                        if m["type"] == "status" and m["state"] == state)

    def of(self, kind):
        with self.lock:
            return [m for m in self.messages if m["type"] == kind]

    def states(self):
        return [m["state"] for m in self.of("status")]


@pytest.fixture
def parts(make_settings):
    """(settings, host, scorer, metrics); the scorer is started by the test when wanted."""
    built = []

    def make(start_scorer=True, **kw):
        settings = make_settings(**kw)
        host = ModelHost.load(settings)
        metrics = Metrics([str(s) for s in StreamState])
        scorer = Scorer(host, metrics, host.batch_sizes(settings)[0], 0.005, host.batch_sizes(settings)[1])
        if start_scorer:
            scorer.start()
        built.append(scorer)
        return settings, host, scorer, metrics

    yield make
    for s in built:
        s.stop()


@pytest.fixture
def workers():
    made = []
    yield made
    for w in made:
        w.stop()
        w.join()


def start_worker(workers, parts, url, fps=10.0, stride=None):
    settings, host, scorer, metrics = parts
    rec = Recorder()
    w = StreamWorker(StreamSpec(id="cam", url=url, fps=fps, stride=stride), StreamTarget(url, False), settings, host,
                     scorer,
                     metrics, rec, "test")
    workers.append(w)
    w.start()
    return w, rec


@pytest.mark.slow
def test_every_accepted_frame_gets_exactly_one_score(rtsp, parts, workers):
    server = rtsp(fps=10)
    w, rec = start_worker(workers, parts(), f"rtsp://127.0.0.1:{server.port}/cam")
    wait_for(lambda: len(rec.of("score")) >= 24, 20, what="24 scores")
    assert w.state is StreamState.RUNNING
    w.stop()
    w.join()
    idx = [m["frame_index"] for m in rec.of("score")]
    assert idx == list(range(len(idx)))  # in order, none twice, none missing
    assert w.counts["scored"] == len(idx) and w.counts["dropped"] == 0
    stamps = [m["timestamp"] for m in rec.of("score")]
    assert stamps == sorted(stamps)
    assert rec.states()[:1] == ["running"] and rec.states()[-1] == "stopped"
    assert w.snapshot()[:2] == b"\xff\xd8"  # a JPEG
    v = w.view()
    assert v.source_size == [96, 64] and 5 < v.fps_measured < 15


@pytest.mark.slow
def test_a_camera_calibrates_by_default_and_draws_its_snapshot_on_its_own_scale(rtsp, parts, workers):
    server = rtsp(fps=10)
    built = parts(calibration_frames=10, snapshot_interval_seconds=0.1)
    w, rec = start_worker(workers, built, f"rtsp://127.0.0.1:{server.port}/cam")  # no "calibrate" given
    assert w.spec.calibrate and w.view().normalisation.calibration_target == 10
    wait_for(lambda: w.view().normalisation.calibration == "done" and w.heat is not None
             and w.heat[0] >= 10, 20, what="calibration and a later heatmap")
    w.stop()  # the scorer no longer replaces w.heat
    w.join()
    scores = rec.of("score")
    assert not any(m["anomaly"] for m in scores[:10])  # flags held back during the warm-up
    norm = w.view().normalisation
    rec_scale = float(built[1].model.rec_scale)
    assert norm.heatmap_scale == w.scoring.calibration.heatmap_scale != rec_scale
    _, image, maps = w.heat
    heat, scale = w.scoring.snapshot_heat(maps)  # in the camera's units
    heat = heat.numpy()
    assert scale == norm.heatmap_scale and w.snapshot() == render_snapshot(image, heat, norm.heatmap_scale)
    assert w.snapshot() != render_snapshot(image, heat, rec_scale)


@pytest.mark.slow
def test_frames_are_dropped_and_counted_when_scoring_falls_behind(rtsp, parts, workers):
    server = rtsp(fps=25)
    built = parts(start_scorer=False, max_pending_windows=1)  # a scorer that never scores
    w, _rec = start_worker(workers, built, f"rtsp://127.0.0.1:{server.port}/cam", fps=25)
    wait_for(lambda: w.counts["dropped"] >= 10, 20, what="drops")
    assert w.pending == 1 and built[2].queued == 1  # bounded: one window queued, no more
    assert w.assembler.count == 4  # frames that got a number: the first window's
    metrics = built[3].render().decode()
    assert 'ocrgan_frames_dropped_total{stream="cam"}' in metrics


@pytest.mark.slow
def test_the_motion_band_is_told_each_frames_gap_in_periods_of_the_target_fps(rtsp, parts, workers):
    """25 fps kept at 10 keeps frames 0.12 s and 0.08 s apart, 1.2 and 0.8 periods: the flow is scaled by them."""
    server = rtsp(fps=25)
    w, _rec = start_worker(workers, parts(), f"rtsp://127.0.0.1:{server.port}/cam", fps=10)
    intervals = []
    real = w.prep

    def recording(image, interval=1.0):
        intervals.append(interval)
        return real(image, interval)

    w.prep = recording
    wait_for(lambda: len(intervals) >= 20, 20, what="20 frames")
    w.stop()
    w.join()
    gaps = intervals[1:20]
    assert all(0.75 <= g <= 1.25 for g in gaps), gaps
    assert any(g > 1.1 for g in gaps) and any(g < 0.9 for g in gaps)  # uneven, as 25 is not a multiple of 10
    assert sum(gaps) / len(gaps) == pytest.approx(1.0, abs=0.1)


@pytest.mark.slow
def test_reconnects_after_the_camera_dies_and_returns(rtsp, parts, workers):
    server = rtsp(fps=10)
    w, rec = start_worker(workers, parts(), f"rtsp://127.0.0.1:{server.port}/cam")
    wait_for(lambda: w.state is StreamState.RUNNING and w.counts["scored"] > 4, 20, what="running")
    server.kill()
    wait_for(lambda: w.state is StreamState.RECONNECTING, 10, what="reconnecting")
    scored = w.counts["scored"]
    server.start()
    wait_for(lambda: w.state is StreamState.RUNNING and w.counts["scored"] > scored + 4, 20, what="running again")
    assert w.reconnects >= 1
    states = rec.states()
    assert states.index("reconnecting") < len(states) - 1 - states[::-1].index("running")
    idx = [m["frame_index"] for m in rec.of("score")]
    assert len(idx) == len(set(idx)) and idx == sorted(idx)  # numbering continues across the reconnect


@pytest.mark.slow
def test_at_stride_1_every_frame_is_scored_on_its_own_across_a_reconnect(rtsp, parts, workers):
    server = rtsp(fps=10)
    built = parts(snapshot_interval_seconds=0.1)
    w, rec = start_worker(workers, built, f"rtsp://127.0.0.1:{server.port}/cam", stride=1)
    assert w.view().scoring == "frames" and w.assembler is None
    wait_for(lambda: w.state is StreamState.RUNNING and w.counts["scored"] > 4, 20, what="running")
    server.kill()
    wait_for(lambda: w.state is StreamState.RECONNECTING, 10, what="reconnecting")
    scored = w.counts["scored"]
    server.start()
    wait_for(lambda: w.state is StreamState.RUNNING and w.counts["scored"] > scored + 4 and w.heat is not None,
             20, what="running again")
    w.stop()
    w.join()
    assert w.reconnects >= 1
    idx = [m["frame_index"] for m in rec.of("score")]
    assert idx == list(range(len(idx)))  # in order, none twice, none lost to the reconnect
    assert w.numbered - len(idx) <= w.max_pending  # only those still queued at the stop
    assert w.counts["scored"] == len(idx)  # frames dropped while the scorer was behind never got a number
    latency = built[3].render().decode()
    assert f"ocrgan_end_to_end_latency_seconds_count {float(len(idx))}" in latency  # observed per frame
    assert w.snapshot()[:2] == b"\xff\xd8"
    assert w.view().scoring == "frames" and w.view().stride == 1


@pytest.mark.slow
def test_at_stride_1_frames_are_dropped_once_a_windows_worth_of_frames_is_queued(rtsp, parts, workers):
    server = rtsp(fps=25)
    built = parts(start_scorer=False, max_pending_windows=2)  # a scorer that never scores
    w, _rec = start_worker(workers, built, f"rtsp://127.0.0.1:{server.port}/cam", fps=25, stride=1)
    held = 2 * built[1].model.cfg.stride  # the frames two windows of the checkpoint's stride publish
    assert w.max_pending == held
    wait_for(lambda: w.counts["dropped"] >= 10, 20, what="drops")
    assert w.pending == held and built[2].queued == held and w.numbered == held  # that many queued, no more


@pytest.mark.slow
def test_watchdog_ends_a_frozen_camera_on_time_and_the_error_is_past_once_running(rtsp, parts, workers):
    """A server frozen mid-stream (its socket open, nothing sent): the watchdog fires at its setting, counted from
    the last frame received, not later because of frames the decoder or FFmpeg still held."""
    watchdog = 3.0
    server = rtsp(fps=10)
    w, rec = start_worker(workers, parts(watchdog_seconds=watchdog), f"rtsp://127.0.0.1:{server.port}/cam")
    wait_for(lambda: w.state is StreamState.RUNNING and w.counts["decoded"] > 10, 20, what="running")
    assert w.view().last_error is None
    os.killpg(server.proc.pid, signal.SIGSTOP)  # the socket stays open, no more packets
    frozen = time.monotonic()
    try:
        wait_for(lambda: w.state is not StreamState.RUNNING, watchdog + 10, what="watchdog")
        message, fired = rec.first_status("reconnecting")
        last_frame = w.last_frame_at
    finally:
        os.killpg(server.proc.pid, signal.SIGCONT)
    silence = fired - last_frame
    print(f"\nwatchdog {watchdog:g}s: left running {silence:.2f}s after the last frame "
          f"({fired - frozen:.2f}s after SIGSTOP)")
    assert watchdog - 1 <= silence <= watchdog + 1, silence
    assert last_frame <= frozen + 1  # no frame came long after the freeze (the decoder held none back)
    assert message["reason"] == f"watchdog: no frame for {watchdog:g}s" == w.last_error
    v = w.view()
    assert v.last_error == message["reason"] and v.last_error_at >= message["timestamp"] - 1
    wait_for(lambda: w.state is StreamState.RUNNING, 20, what="running again")
    assert w.reconnects >= 1
    v = w.view()
    assert v.last_error is None and v.last_error_at is None  # running: no error is current


def test_a_camera_that_accepts_and_sends_nothing_times_out(parts, workers):
    with SilentTCP() as silent:
        start = time.monotonic()
        w, rec = start_worker(workers, parts(max_failures=1, open_timeout_seconds=2),
                              f"rtsp://127.0.0.1:{silent.port}/cam")
        wait_for(lambda: w.state is StreamState.FAILED, 10, what="failed")
        took = time.monotonic() - start
    assert w.last_error == "cannot open: timed out after 2s", w.last_error
    assert 1.5 <= took <= 4, took
    assert rec.states() == ["failed"]


def test_a_refusing_camera_fails_after_max_failures(parts, workers):
    w, rec = start_worker(workers, parts(max_failures=2), f"rtsp://127.0.0.1:{free_port()}/none")
    wait_for(lambda: w.state is StreamState.FAILED, 10, what="failed")
    assert rec.states() == ["reconnecting", "failed"]
    assert w.last_error == "cannot open: could not connect to the camera" and w.reconnects == 1


@pytest.mark.parametrize("nice", [0, 5])
def test_a_cameras_thread_yields_the_cpu_to_the_scorer_by_its_nice(parts, workers, nice):
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    w, _ = start_worker(workers, parts(camera_nice=nice), f"rtsp://127.0.0.1:{free_port()}/none")
    wait_for(lambda: w.reconnects >= 1, 10, what="a failed connection")  # the thread is under way
    assert os.getpriority(os.PRIO_PROCESS, w._thread.native_id) == min(19, mine + nice)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller's is its own


def test_credentials_never_reach_status_or_errors(parts, workers):
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/none"
    w, rec = start_worker(workers, parts(max_failures=1), url)
    wait_for(lambda: w.state is StreamState.FAILED, 10, what="failed")
    assert "hunter2" not in repr(w.view()) and "hunter2" not in repr(rec.messages)
    assert w.view().url.startswith("rtsp://***@")


@pytest.mark.slow
def test_the_url_policy_is_checked_again_at_every_connection(rtsp, parts, workers):
    """A host that passed at registration but resolves to a refused address later is not connected to."""
    server = rtsp()
    w, rec = start_worker(workers, parts(allow_loopback=False, max_failures=2), f"rtsp://127.0.0.1:{server.port}/cam")
    wait_for(lambda: w.state is StreamState.FAILED, 10, what="failed")
    assert "refused" in w.last_error and "loopback" in w.last_error
    assert w.counts["decoded"] == 0 and rec.states() == ["reconnecting", "failed"]
