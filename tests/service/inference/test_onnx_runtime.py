"""The window path in ONNX Runtime scores as torch does: on the shipped checkpoint every cue of every published
frame within 1e-4 (relative), a clip's last window that publishes fewer frames included, and their maps;
windows the graph was not exported for go to torch; an empty memory and a window of another shape are refused
with a reason; and a host with the default OCRGAN_RUNTIME on a CPU keeps scoring with torch until its background
exports are done, then with the graphs (the window graph, which only uploads read, opened on its first window; one
gone from its place meanwhile leaves windows to torch),
which a later start reads from its cache (a damaged one is exported again;
a graph that does not score as its model does fails verification); an export ends when the process that started
it does. The frame path in ONNX Runtime scores every frame as torch does,
on the shipped checkpoint and on random configs of the temporal modules, their maps included, with a sequence's first
frames on torch over the same rings. Neither graph holds a Where or a Mod, which ONNX Runtime runs many times slower
than arithmetic, and both run with denormal numbers flushed, the caller's thread left as it was."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import psutil
import pytest
import torch

from model import OCRGANConfig, OCRGANVideo, load_checkpoint, preprocess_sequence
from model.streaming import FrameStream, score_frames
from model.windows import iter_clip_windows, score_windows
from service.inference import onnx_runtime
from service.inference.host import ModelHost
from service.settings import DEFAULT_CHECKPOINT, Settings
from testkit.servers import wait_for
from testkit.synthetic import moving_shapes

pytestmark = pytest.mark.slow
TOLERANCE = 1e-4
FIELDS = ("raw", "rec", "feat", "app", "motion", "speed", "dir", "mem", "grey")


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(DEFAULT_CHECKPOINT)[0]


@pytest.fixture(scope="module")
def runner(shipped, tmp_path_factory):
    path = onnx_runtime.export_window_scorer(shipped, tmp_path_factory.mktemp("onnx") / "window.onnx")
    return onnx_runtime.WindowRunner(shipped, onnx_runtime.OnnxWindowScorer(path))


def windows_of(model, n: int = 30):
    frames = moving_shapes(n, h=120, w=180, seed=3, anomaly_from=12)[0]
    return list(iter_clip_windows(preprocess_sequence(frames, model.cfg), model.cfg.num_frames, model.cfg.stride))


def assert_same(ours, theirs):
    for a, b in zip(ours, theirs, strict=True):
        assert a.indices == b.indices
        for name in FIELDS:
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            if x is not None:
                assert torch.allclose(x, y, rtol=TOLERANCE, atol=1e-6), (name, x, y)


def slow_selections(path) -> list[str]:
    """The graph's Where and Mod nodes: ONNX Runtime runs them an order of magnitude slower than an arithmetic
    operation of the same size (docs/benchmarks.md), so the model's scoring is written without them."""
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Where", "Mod")]


def test_graphs_run_with_denormals_flushed_and_leave_the_thread_as_it_was():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormal numbers")
    tiny = torch.tensor([1e-39])  # below float32's smallest normal number
    with onnx_runtime.denormals_flushed():
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() > 0.0
    torch.set_flush_denormal(True)  # a thread that flushes them already keeps doing so
    try:
        with onnx_runtime.denormals_flushed():
            assert (tiny * 1.0).item() == 0.0
        assert (tiny * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)


def test_published_frames_score_as_in_torch(shipped, runner):
    assert slow_selections(runner.scorer.path) == []
    windows = windows_of(shipped)
    assert [len(w.indices) for w in windows] == [8, 8, 8, 6]  # the last publishes fewer
    assert_same(score_windows(shipped, windows, run=runner), score_windows(shipped, windows))
    assert len(windows[0].indices) == runner.scorer.published


def test_maps_come_from_the_graph_and_other_windows_go_to_torch(shipped, runner):
    windows = windows_of(shipped, 16)
    ours = score_windows(shipped, windows, heatmaps=True, run=runner)
    theirs = score_windows(shipped, windows, heatmaps=True)
    assert_same(ours, theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.maps.shape == b.maps.shape == (len(b.indices), len(shipped.heat_cues), *shipped.cfg.hw)
        assert torch.allclose(a.maps, b.maps, rtol=TOLERANCE, atol=1e-6)
    assert score_windows(shipped, windows, run=runner)[0].maps is None
    clip = torch.stack([w.frames for w in windows])  # two windows
    whole = runner(clip, slice(0, clip.shape[1]), False)  # more frames than the graph publishes
    assert whole.raw.shape == clip.shape[:2]
    with pytest.raises(ValueError, match="windows of shape"):
        runner.scorer.score(clip[:, :-1])


def test_a_window_graph_on_standby_opens_again_or_leaves_windows_to_torch(shipped, runner, tmp_path, caplog):
    """A closed session opens on its next window; a graph gone from its place since is logged once, and its
    windows are scored by torch."""
    path = tmp_path / "window.onnx"
    shutil.copyfile(runner.scorer.path, path)
    standby = onnx_runtime.WindowRunner(shipped, onnx_runtime.OnnxWindowScorer(path))
    standby.scorer.close()
    assert not standby.scorer.is_open
    windows = windows_of(shipped, 20)
    assert_same(score_windows(shipped, windows, run=standby), score_windows(shipped, windows))
    assert standby.scorer.is_open

    standby.scorer.close()
    path.unlink()
    for _ in range(2):
        assert_same(score_windows(shipped, windows, run=standby), score_windows(shipped, windows))
    assert caplog.text.count("cannot be opened again") == 1


def test_the_remembered_grey_levels_score_as_in_torch(tmp_path):
    torch.manual_seed(4)
    cfg = OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4, motion=True,
                       objective="mixed", memory_size=64, memory_grey=True, score_patch=8, w_score_grey=1.0)
    model = OCRGANVideo(cfg).eval()
    model.set_memory(torch.randn(256, model.memory.shape[1]))
    path = onnx_runtime.export_window_scorer(model, tmp_path / "grey.onnx")
    runner = onnx_runtime.WindowRunner(model, onnx_runtime.OnnxWindowScorer(path))
    windows = windows_of(model, 20)
    ours, theirs = score_windows(model, windows, run=runner), score_windows(model, windows)
    assert all(w.grey is not None for w in ours)
    assert_same(ours, theirs)


def test_the_motion_memory_scores_as_in_torch(tmp_path):
    torch.manual_seed(6)
    cfg = OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4, motion=True,
                       objective="mixed", direction_memory=64, speed_classes=3, score_patch=8, w_score_dir=1.0)
    model = OCRGANVideo(cfg).eval()
    model.set_direction_prior(torch.randn(20, 2, *cfg.hw))
    path = onnx_runtime.export_window_scorer(model, tmp_path / "dir.onnx")
    runner = onnx_runtime.WindowRunner(model, onnx_runtime.OnnxWindowScorer(path))
    windows = windows_of(model, 20)
    ours, theirs = score_windows(model, windows, run=runner), score_windows(model, windows)
    assert all(w.dir is not None and float(w.dir.max()) > 0 for w in ours)
    assert_same(ours, theirs)


def test_an_empty_memory_is_refused(tmp_path):
    model = OCRGANVideo(OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4,
                                     memory_size=16)).eval()
    with pytest.raises(ValueError, match="memory is empty"):
        onnx_runtime.export_window_scorer(model, tmp_path / "w.onnx")


def test_a_host_switches_to_the_graphs_once_exported(make_settings, checkpoint, caplog):
    settings = make_settings(runtime=Settings.model_fields["runtime"].default)  # the default: ONNX Runtime on a CPU
    host = ModelHost.load(settings)
    assert host.runtime == "onnx" and host.camera_stride == 1
    assert host.describe()["runtime"] == "torch"  # torch scores while the export runs
    wait_for(lambda: host.window_runner is not None, timeout=180, what="the background ONNX export of windows")
    assert host.describe()["runtime"] == "onnx"
    assert not host.window_runner.scorer.is_open  # cameras go frame by frame: only uploads read windows
    windows = windows_of(host.model, 20)
    assert_same(score_windows(host.model, windows, run=host.window_runner), score_windows(host.model, windows))
    assert host.window_runner.scorer.is_open
    wait_for(lambda: host.frame_runner is not None, timeout=180, what="the background ONNX export of frames")
    cameras = [camera_frames(host.model, 12, 3)]
    assert_frames_same(frame_scores(host.frame_runner, host.model, cameras), frame_scores(None, host.model, cameras))

    kept = sorted(settings.onnx_cache.glob("*.onnx"))
    assert [p.name.split("-")[1] for p in kept] == ["frame", f"window{host.stride}"]
    caplog.set_level("INFO", logger="ocrgan.service")
    again = ModelHost.load(settings)  # a second start reads both graphs from the cache
    wait_for(lambda: again.window_runner is not None and again.frame_runner is not None, timeout=30,
             what="the cached graphs")
    assert sum("graph read from" in r.getMessage() for r in caplog.records) == 2
    assert_same(score_windows(again.model, windows, run=again.window_runner), score_windows(again.model, windows))

    kept[1].write_bytes(b"not a graph")  # a damaged cache is exported again
    third = ModelHost.load(settings)
    wait_for(lambda: third.window_runner is not None, timeout=180, what="the window graph exported again")
    assert any("cannot be used" in r.getMessage() for r in caplog.records)
    assert_same(score_windows(third.model, windows, run=third.window_runner), score_windows(third.model, windows))
    assert kept[1].read_bytes()[:11] != b"not a graph"


def test_an_export_ends_with_the_process_that_started_it(checkpoint, tmp_path):
    """A service stopped (even by SIGKILL) while it exports leaves no export taking a core."""
    out = tmp_path / "window.onnx"
    starter = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-m', 'service.inference.onnx_runtime', {str(checkpoint)!r}, "
        f"{str(out)!r}, '--parent', str(os.getpid())])\n"
        "time.sleep(600)")])
    try:
        export = wait_for(lambda: psutil.Process(starter.pid).children(), timeout=30, what="the export")[0]
        time.sleep(1)
        assert export.is_running() and export.status() != psutil.STATUS_ZOMBIE
    finally:
        starter.kill()
        starter.wait()
    export.wait(timeout=10)  # psutil.TimeoutExpired if it outlives its parent
    assert not out.exists()


def test_a_graph_of_another_model_or_kind_is_refused(tmp_path):
    cfg = OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4, motion=True,
                       objective="mixed")
    torch.manual_seed(0)
    model = OCRGANVideo(cfg).eval()
    scorer = onnx_runtime.OnnxWindowScorer(onnx_runtime.export_window_scorer(model, tmp_path / "w.onnx"))
    onnx_runtime.verify(onnx_runtime.WindowRunner(model, scorer))
    torch.manual_seed(1)
    other = OCRGANVideo(cfg).eval()
    with pytest.raises(ValueError, match="where the model scores"):
        onnx_runtime.verify(onnx_runtime.WindowRunner(other, scorer))
    frames = onnx_runtime.export_frame_scorer(model, tmp_path / "f.onnx")
    with pytest.raises(ValueError, match="not a window graph"):
        onnx_runtime.OnnxWindowScorer(frames)
    with pytest.raises(ValueError, match="not a frame graph"):
        onnx_runtime.OnnxFrameScorer(tmp_path / "w.onnx", model)
    with pytest.raises(ValueError, match="where the model scores"):
        onnx_runtime.verify(onnx_runtime.FrameRunner(other, onnx_runtime.OnnxFrameScorer(frames, other)))


def frame_scores(run, model, cameras: list[torch.Tensor], chunks=(1, 3, 2)) -> list[list[dict]]:
    """Each camera's frames, interleaved in runs of varying size, through `run(stream, frames, heatmap)` (torch's
    score_frames without it); every fourth run asks for the maps. Per camera, per frame its fields (and maps)."""
    run = run or (lambda stream, x, heat: score_frames(model, [(stream, x)], heat)[0])
    states = [FrameStream(model) for _ in cameras]
    out: list[list[dict]] = [[] for _ in cameras]
    a, k = 0, 0
    while a < len(cameras[0]):
        n = chunks[k % len(chunks)]
        for per_camera, state, x in zip(out, states, cameras, strict=True):
            scored = run(state, x[a:a + n], k % 4 == 3)
            assert (scored.maps is not None) == (k % 4 == 3)
            per_camera += [{name: getattr(scored, name)[0, j] for name in (*FIELDS, "maps")
                            if getattr(scored, name) is not None} for j in range(scored.raw.shape[1])]
        a, k = a + n, k + 1
    return out


def assert_frames_same(ours, theirs):
    for cam_a, cam_b in zip(ours, theirs, strict=True):
        assert len(cam_a) == len(cam_b)
        for t, (a, b) in enumerate(zip(cam_a, cam_b, strict=True)):
            assert a.keys() == b.keys()
            for name in a:
                assert torch.allclose(a[name], b[name], rtol=TOLERANCE, atol=1e-6), (t, name, a[name], b[name])


def camera_frames(model, n: int, seed: int) -> torch.Tensor:
    frames = moving_shapes(n, h=120, w=180, seed=seed, anomaly_from=n // 2)[0]
    return torch.stack(list(preprocess_sequence(frames, model.cfg)))


def test_frames_score_as_in_torch(shipped, tmp_path):
    """Two cameras interleaved, several frames of a camera in a run, some runs asking for the maps: every cue of
    every frame, and every map, as torch scores it."""
    runner = onnx_runtime.FrameRunner(shipped, onnx_runtime.OnnxFrameScorer(
        onnx_runtime.export_frame_scorer(shipped, tmp_path / "frame.onnx"), shipped))
    assert slow_selections(tmp_path / "frame.onnx") == []
    cameras = [camera_frames(shipped, 26, 3), camera_frames(shipped, 26, 5)]
    ours = frame_scores(runner, shipped, cameras)
    theirs = frame_scores(None, shipped, cameras)
    assert_frames_same(ours, theirs)
    stream = FrameStream(shipped)
    with pytest.raises(ValueError, match="has not begun"):
        runner.scorer.score(stream, cameras[0][:1])
    runner(stream, cameras[0][:1], False)  # the first frame, by torch
    with pytest.raises(ValueError, match="frames of shape"):
        runner.scorer.score(stream, cameras[0][:1, :, :-2])


@pytest.mark.parametrize("temporal", ["basic", "adaptive", "full"])
def test_every_temporal_module_scores_frames_as_in_torch(temporal, tmp_path):
    torch.manual_seed(2)
    cfg = OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4, motion=True,
                       objective="mixed" if temporal == "basic" else "predict", temporal=temporal, memory_size=32,
                       score_patch=8)
    model = OCRGANVideo(cfg).eval()
    model.set_memory(torch.randn(128, model.memory.shape[1]))
    runner = onnx_runtime.FrameRunner(model, onnx_runtime.OnnxFrameScorer(
        onnx_runtime.export_frame_scorer(model, tmp_path / "frame.onnx"), model))
    cameras = [camera_frames(model, 20, 7)]
    assert_frames_same(frame_scores(runner, model, cameras),
                       frame_scores(None, model, cameras))
