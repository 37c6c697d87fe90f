"""The window path in ONNX Runtime scores as torch does: on the shipped checkpoint every cue of every published
frame within 1e-4 (relative), a clip's last window that publishes fewer frames included; heatmaps and windows the
graph was not exported for go to torch; an empty memory and a window of another shape are refused with a reason;
and a host with OCRGAN_RUNTIME=onnx keeps scoring with torch until its background export is done, then with the
graph."""

from __future__ import annotations

import pytest
import torch

from model import OCRGANConfig, OCRGANVideo, load_checkpoint, preprocess_sequence
from model.windows import iter_clip_windows, score_windows
from service.inference import onnx_runtime
from service.inference.host import ModelHost
from service.settings import DEFAULT_CHECKPOINT
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


def test_published_frames_score_as_in_torch(shipped, runner):
    windows = windows_of(shipped)
    assert [len(w.indices) for w in windows] == [8, 8, 8, 6]  # the last publishes fewer
    assert_same(score_windows(shipped, windows, run=runner), score_windows(shipped, windows))
    assert len(windows[0].indices) == runner.scorer.published


def test_heatmaps_and_other_windows_go_to_torch(shipped, runner):
    windows = windows_of(shipped, 16)
    ours = score_windows(shipped, windows, heatmaps=True, run=runner)
    theirs = score_windows(shipped, windows, heatmaps=True)
    assert all(torch.equal(a.heatmaps, b.heatmaps) for a, b in zip(ours, theirs, strict=True))
    clip = torch.stack([w.frames for w in windows])  # two windows
    whole = runner(clip, slice(0, clip.shape[1]), False)  # more frames than the graph publishes
    assert whole.raw.shape == clip.shape[:2]
    with pytest.raises(ValueError, match="windows of shape"):
        runner.scorer.score(clip[:, :-1])


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


def test_a_host_switches_to_the_graph_once_exported(make_settings, checkpoint):
    host = ModelHost.load(make_settings(runtime="onnx"))
    assert host.describe()["runtime"] == "torch"  # torch scores while the export runs
    wait_for(lambda: host.window_runner is not None, timeout=180, what="the background ONNX export")
    assert host.describe()["runtime"] == "onnx"
    windows = windows_of(host.model, 20)
    assert_same(score_windows(host.model, windows, run=host.window_runner), score_windows(host.model, windows))
