"""The scorer thread: micro-batches windows of cameras and uploaded clips, and single frames of cameras scored
frame by frame, from one bounded queue; owns the model."""

from __future__ import annotations

import threading

import pytest
import torch

from model import Window, iter_clip_scores, score_windows
from model.streaming import FrameStream, score_frames
from service.errors import ServiceError
from service.inference.host import ModelHost
from service.inference.jobs import FrameJob, WindowJob
from service.inference.scorer import Scorer
from service.metrics import Metrics
from testkit.servers import wait_for


class Sink:
    def __init__(self):
        self.alive = True
        self.got = []
        self.threads = set()

        self.failed = []

    def on_scores(self, job, scores):
        self.got.append((job, scores))
        self.threads.add(threading.current_thread().name)

    def on_failed(self, job, error):
        self.failed.append((job, error))


@pytest.fixture
def host(make_settings):
    return ModelHost.load(make_settings())


@pytest.fixture
def scorer(host):
    s = Scorer(host, Metrics(["running"]), max_batch=4, max_wait_s=0.01, clip_batch=2)
    yield s
    s.stop()


def window(cfg, start):
    return Window(torch.rand(cfg.num_frames, cfg.nc, *cfg.hw) * 2 - 1, list(range(start, start + 4)))


def job(sink, w):
    return WindowJob(sink, w, [0.0] * len(w.indices), [0.0] * len(w.indices))


def test_windows_of_several_cameras_share_a_batch(scorer, host):
    cfg = host.model.cfg
    sinks = [Sink() for _ in range(3)]
    jobs = [job(s, window(cfg, 4 * k)) for k in range(3) for s in sinks]  # 9 windows queued before start
    for j in jobs:
        scorer.submit(j)
    scorer.start()
    wait_for(lambda: all(len(s.got) == 3 for s in sinks), 20, what="all windows scored")
    assert scorer.batches == 3  # 4 + 4 + 1
    for s in sinks:
        assert [sc.indices for _, sc in s.got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
        assert s.threads == {"ocrgan-scorer"}
    # batched scores equal one-by-one scores
    j0, s0 = sinks[1].got[2]
    alone = score_windows(host.model, [j0.window])[0]
    assert torch.allclose(s0.raw, alone.raw, atol=1e-5)


def test_windows_of_stopped_cameras_are_skipped(scorer, host):
    sink = Sink()
    sink.alive = False
    scorer.submit(job(sink, window(host.model.cfg, 0)))
    live = Sink()
    scorer.submit(job(live, window(host.model.cfg, 0)))
    scorer.start()
    wait_for(lambda: live.got, 10)
    assert sink.got == []


@pytest.mark.parametrize("stride", [4, 1])
def test_a_clip_runs_in_the_scorer_thread_beside_cameras_and_scores_as_the_evaluator(scorer, host, stride):
    cfg = host.model.cfg
    assert cfg.causal  # so at stride 1 a clip is scored frame by frame
    frames = [torch.rand(cfg.in_channels, *cfg.hw) * 2 - 1 for _ in range(23)]
    scorer.start()
    sink = Sink()
    for k in range(6):  # camera traffic at the same time
        scorer.submit(job(sink, window(cfg, 4 * k)))
    got = scorer.run_clip(iter(frames), stride=stride, heatmaps=True)
    ref = list(iter_clip_scores(host.model, frames, stride, 2, heatmaps=True))
    assert [i for g in got for i in g.indices] == list(range(23)) == [i for r in ref for i in r.indices]
    assert torch.allclose(torch.cat([g.raw for g in got]), torch.cat([r.raw for r in ref]), atol=1e-5)
    assert torch.allclose(torch.cat([g.maps for g in got]), torch.cat([r.maps for r in ref]), atol=1e-5)
    assert scorer.frames_scored == (23 if stride == 1 else 0)  # frame jobs at stride 1, windows otherwise
    wait_for(lambda: len(sink.got) == 6, 10)


def test_a_clip_that_fails_to_decode_leaves_the_scorer_working(scorer, host):
    cfg = host.model.cfg
    scorer.start()

    def frames():
        for _ in range(10):
            yield torch.zeros(cfg.nc, *cfg.hw)
        raise ServiceError(422, "broken at frame 10")

    with pytest.raises(ServiceError, match="frame 10"):
        scorer.run_clip(frames(), stride=4, heatmaps=False)
    wait_for(lambda: scorer.queued == 0, 5, what="the cancelled clip's windows to go")
    got = scorer.run_clip(iter([torch.zeros(cfg.nc, *cfg.hw)] * 5), stride=4, heatmaps=False)
    assert [g.indices for g in got] == [[0, 1, 2, 3], [4]]


def test_clip_refused_when_scorer_stopped(scorer, host):
    scorer.start()
    scorer.stop()
    cfg = host.model.cfg
    with pytest.raises(ServiceError) as e:
        scorer.run_clip(iter([torch.zeros(cfg.nc, *cfg.hw)] * 40), stride=4, heatmaps=False)
    assert e.value.status == 503


def test_a_clip_queues_at_most_clip_batch_windows_with_the_cameras(scorer, host):
    cfg = host.model.cfg
    frames = [torch.rand(cfg.nc, *cfg.hw) * 2 - 1 for _ in range(40)]  # 10 windows at stride 4
    out = {}
    caller = threading.Thread(target=lambda: out.update(got=scorer.run_clip(iter(frames), 4, False)))
    caller.start()  # the scorer is not running yet: the clip fills its share of the queue and waits
    wait_for(lambda: scorer.queued == 2, 5, what="the clip's first windows")
    cam = Sink()
    scorer.submit(job(cam, window(cfg, 0)))
    caller.join(0.3)
    assert caller.is_alive() and scorer.queued == 3  # 2 of the clip (clip_batch), 1 of the camera
    scorer.start()
    caller.join(20)
    ref = list(iter_clip_scores(host.model, frames, 4, 2))
    assert [g.indices for g in out["got"]] == [r.indices for r in ref]
    assert torch.allclose(torch.cat([g.raw for g in out["got"]]), torch.cat([r.raw for r in ref]), atol=1e-5)
    wait_for(lambda: len(cam.got) == 1, 5, what="the camera's window")


def test_a_batch_that_fails_is_reported_to_every_source_in_it(scorer, host, monkeypatch):
    import service.inference.scorer as module

    cfg = host.model.cfg
    real, calls = module.score_windows, []

    def flaky(model, windows, **kw):
        calls.append(len(windows))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return real(model, windows, **kw)

    monkeypatch.setattr(module, "score_windows", flaky)
    cam = Sink()
    scorer.submit(job(cam, window(cfg, 0)))
    out = {}

    def clip():
        try:
            scorer.run_clip(iter([torch.zeros(cfg.nc, *cfg.hw)] * 4), 4, False)
        except RuntimeError as e:
            out["error"] = e

    caller = threading.Thread(target=clip)
    caller.start()
    wait_for(lambda: scorer.queued == 2, 5, what="both windows queued")
    scorer.start()  # one batch of both: it fails
    caller.join(10)
    assert "out of memory" in str(out["error"])
    assert [str(e) for _, e in cam.failed] == ["out of memory"] and cam.got == []
    scorer.submit(job(cam, window(cfg, 4)))  # the scorer goes on
    wait_for(lambda: len(cam.got) == 1, 10, what="the next window")


def frame_job(sink, stream, x, index, reset=False):
    return FrameJob(sink, stream, x, index, 0.0, 0.0, reset=reset)


def streamed_alone(model, frames):
    """(n,) raw scores of one camera's frames, scored one by one with a FrameStream of its own."""
    s = FrameStream(model)
    return torch.cat([score_frames(model, [(s, f[None])])[0].raw[0] for f in frames])


def test_frames_of_several_cameras_share_a_pass_a_windows_worth_at_a_time_and_score_as_alone(host):
    cfg, model = host.model.cfg, host.model
    assert cfg.stride == 4  # a pass of one window's worth takes 4 frames
    scorer = Scorer(host, Metrics(["running"]), max_batch=1, max_wait_s=0.01, clip_batch=1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 6, cfg.in_channels, *cfg.hw, generator=g) * 2 - 1  # (cameras, frames, C_in, H, W)
    sinks, streams = [Sink(), Sink()], [FrameStream(model), FrameStream(model)]
    for t in range(6):
        for k in range(2):
            scorer.submit(frame_job(sinks[k], streams[k], x[k, t], t))
    scorer.start()  # 12 frames queued: passes of 4 (2 frames of each camera), 4, 4
    try:
        wait_for(lambda: all(len(s.got) == 6 for s in sinks), 20, what="all frames scored")
    finally:
        scorer.stop()
    assert scorer.batches == 3 and scorer.frames_scored == 12 and scorer.windows_scored == 0
    for k, sink in enumerate(sinks):
        assert [sc.indices for _, sc in sink.got] == [[t] for t in range(6)]
        assert sink.threads == {"ocrgan-scorer"}
        raw = torch.cat([sc.raw for _, sc in sink.got])
        assert torch.allclose(raw, streamed_alone(model, x[k]), atol=1e-4)


def test_on_a_cpu_a_frame_is_scored_without_waiting_for_others_to_join_it(host):
    cfg = host.model.cfg
    assert host.device.type == "cpu"
    scorer = Scorer(host, Metrics(["running"]), max_batch=1, max_wait_s=600.0, clip_batch=1)
    sink = Sink()
    scorer.start()
    try:
        scorer.submit(frame_job(sink, FrameStream(host.model), torch.zeros(cfg.in_channels, *cfg.hw), 0))
        wait_for(lambda: sink.got, 60, what="the frame scored long before the batch wait of 600 s")
    finally:
        scorer.stop()
    assert scorer.batches == 1 and scorer.frames_scored == 1


def test_a_reset_frame_starts_its_camera_anew(scorer, host):
    cfg, model = host.model.cfg, host.model
    x = torch.rand(7, cfg.in_channels, *cfg.hw) * 2 - 1
    sink, stream = Sink(), FrameStream(model)
    scorer.start()
    for t in range(7):
        scorer.submit(frame_job(sink, stream, x[t], t, reset=t == 4))  # frames 4.. come after a reconnect
    wait_for(lambda: len(sink.got) == 7, 20, what="all frames scored")
    raw = torch.cat([sc.raw for _, sc in sink.got])
    assert torch.allclose(raw[4:], streamed_alone(model, x[4:]), atol=1e-4)


def test_a_frame_pass_that_fails_is_reported_to_every_camera_in_it(host):
    import dataclasses

    cfg, model = host.model.cfg, host.model
    # off a CPU the new frames of every camera share one pass ("meta" stands for a GPU; the model stays on the CPU)
    gpu = dataclasses.replace(host, device=torch.device("meta"))
    scorer = Scorer(gpu, Metrics(["running"]), max_batch=4, max_wait_s=0.01, clip_batch=2)
    good, bad = Sink(), Sink()
    stream = FrameStream(model)
    scorer.submit(frame_job(good, stream, torch.zeros(cfg.in_channels, *cfg.hw), 0))
    scorer.submit(frame_job(bad, FrameStream(model), torch.zeros(cfg.in_channels, 8, 8), 0))  # the pass fails on it
    scorer.start()
    try:
        wait_for(lambda: good.failed and bad.failed, 10, what="both cameras told")
        assert good.got == [] == bad.got and scorer.frames_scored == 0
        scorer.submit(frame_job(good, stream, torch.zeros(cfg.in_channels, *cfg.hw), 1))  # the scorer goes on
        wait_for(lambda: len(good.got) == 1, 10, what="the next frame")
    finally:
        scorer.stop()


def test_on_a_cpu_a_camera_whose_frames_fail_fails_alone(scorer, host):
    cfg, model = host.model.cfg, host.model
    assert host.device.type == "cpu"  # each camera's frames are a pass of their own
    good, bad = Sink(), Sink()
    stream = FrameStream(model)
    scorer.submit(frame_job(good, stream, torch.zeros(cfg.in_channels, *cfg.hw), 0))
    scorer.submit(frame_job(bad, FrameStream(model), torch.zeros(cfg.in_channels, 8, 8), 0))  # its pass fails on it
    scorer.start()
    wait_for(lambda: good.got and bad.failed, 10, what="one scored, the other told")
    assert good.failed == [] and bad.got == [] and scorer.frames_scored == 1 and scorer.batches == 1
    scorer.submit(frame_job(bad, FrameStream(model), torch.zeros(cfg.in_channels, *cfg.hw), 1))  # the scorer goes on
    wait_for(lambda: len(bad.got) == 1, 10, what="the next frame")


def test_on_a_cpu_a_cameras_frames_are_published_before_the_next_cameras_are_scored(host):
    cfg, model = host.model.cfg, host.model
    scorer = Scorer(host, Metrics(["running"]), max_batch=4, max_wait_s=0.01, clip_batch=1)
    seen = {}

    class Watching(Sink):
        def on_scores(self, job, scores):
            seen.setdefault(id(self), scorer.frames_scored)  # frames scored when this camera's come out
            super().on_scores(job, scores)

    sinks = [Watching(), Watching(), Watching()]
    for sink in sinks:
        scorer.submit(frame_job(sink, FrameStream(model), torch.rand(cfg.in_channels, *cfg.hw) * 2 - 1, 0))
    scorer.start()  # the three frames arrived together: one batch
    try:
        wait_for(lambda: all(s.got for s in sinks), 20, what="all three scored")
    finally:
        scorer.stop()
    assert scorer.batches == 1
    assert [seen[id(s)] for s in sinks] == [1, 2, 3]  # not [3, 3, 3]: none waited for the batch's last
