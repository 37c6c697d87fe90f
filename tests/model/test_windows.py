import pytest
import torch

from model import OCRGANVideo, WindowAssembler, score_clip, score_windows
from model.windows import anomalous_runs, iter_clip_windows, postprocess, window_ends, window_positions
from tests.model.helpers import tiny_cfg


def frames(n, cfg):
    return [torch.rand(cfg.nc, *cfg.hw) * 2 - 1 for _ in range(n)]


@pytest.mark.parametrize("n,stride", [(1, 4), (7, 4), (8, 4), (30, 4), (30, 1), (19, 8), (8, 8)])
def test_every_frame_is_published_exactly_once(n, stride):
    cfg = tiny_cfg()
    published = [i for w in iter_clip_windows(frames(n, cfg), cfg.num_frames, stride) for i in w.indices]
    assert published == list(range(n))


@pytest.mark.parametrize("n,stride", [(1, 4), (7, 4), (8, 4), (30, 4), (30, 1), (19, 8), (8, 8)])
def test_the_windows_of_a_finished_sequence_are_those_it_is_scored_by(n, stride):
    cfg = tiny_cfg()
    fs = [torch.full((1, 2, 2), float(i)) for i in range(n)]
    windows = list(iter_clip_windows(fs, cfg.num_frames, stride))
    assert window_ends(n, stride) == [(w.indices[-1], len(w.indices)) for w in windows]
    for w in windows:
        assert [float(f[0, 0, 0]) for f in w.frames] == window_positions(w.indices[-1], cfg.num_frames).tolist()


def test_windows_hold_the_last_frames_and_repeat_the_first_at_the_start():
    tiny_cfg(num_frames=4)
    fs = [torch.full((1, 2, 2), float(i)) for i in range(6)]
    asm = WindowAssembler(4, 2)
    out = [asm.push(f) for f in fs]
    assert out[0] is None and out[2] is None
    first, second = out[1], out[3]
    assert first.indices == [0, 1] and [float(f[0, 0, 0]) for f in first.frames] == [0, 0, 0, 1]
    assert second.indices == [2, 3] and [float(f[0, 0, 0]) for f in second.frames] == [0, 1, 2, 3]
    assert asm.flush() is None
    asm.push(fs[0])
    tail = asm.flush()
    assert tail.indices == [6] and asm.flush() is None


def test_restart_forgets_the_buffer_but_keeps_counting():
    asm = WindowAssembler(4, 2)
    for i in range(3):
        asm.push(torch.full((1, 1, 1), float(i)))
    asm.restart()
    w = asm.push(torch.full((1, 1, 1), 9.0)) or asm.push(torch.full((1, 1, 1), 10.0))
    assert w.indices == [3, 4]
    assert [float(f) for f in w.frames.flatten()] == [9, 9, 9, 10]


def test_stream_and_clip_paths_agree():
    cfg = tiny_cfg()
    model = OCRGANVideo(cfg).eval()
    fs = frames(21, cfg)
    clip = score_clip(model, fs, batch=3)
    # streaming: one frame at a time, windows scored one by one as they come
    asm = WindowAssembler(cfg.num_frames, cfg.stride)
    raw = {}
    for f in fs:
        w = asm.push(f)
        if w:
            for r in score_windows(model, [w]):
                raw.update(zip(r.indices, r.raw.tolist(), strict=True))
    for r in score_windows(model, [asm.flush()]):
        raw.update(zip(r.indices, r.raw.tolist(), strict=True))
    assert sorted(raw) == list(range(21))
    assert torch.allclose(torch.tensor([raw[i] for i in range(21)]), clip.raw, atol=1e-5)


def test_a_frame_score_ignores_later_frames():
    cfg = tiny_cfg()
    model = OCRGANVideo(cfg).eval()
    fs = frames(16, cfg)
    changed = fs[:10] + frames(6, cfg)
    a, b = score_clip(model, fs, stride=1).raw, score_clip(model, changed, stride=1).raw
    assert torch.allclose(a[:10], b[:10], atol=1e-5) and not torch.allclose(a[10:], b[10:])


@pytest.mark.parametrize("batch", [1, 4])
def test_at_stride_1_each_frame_scores_as_the_window_ending_at_it_given_its_true_past(batch):
    from model import iter_clip_scores
    from tests.model.test_streaming import reference

    torch.manual_seed(2)
    cfg = tiny_cfg(motion=True, objective="mixed", temporal="full", isize=[32, 48])
    model = OCRGANVideo(cfg).eval()
    fs = [torch.rand(cfg.in_channels, *cfg.hw) - 0.5 for _ in range(cfg.num_frames + 5)]
    parts = list(iter_clip_scores(model, fs, stride=1, batch=batch, heatmaps=True))
    assert [len(p.indices) for p in parts[:-1]] == [batch] * (len(parts) - 1)
    assert [i for p in parts for i in p.indices] == list(range(len(fs)))
    clip = torch.stack(fs)
    for p in parts:
        for k, t in enumerate(p.indices):
            ref = reference(model, clip, t)
            for name in ("raw", "app", "motion", "speed", "feat"):
                assert torch.allclose(getattr(p, name)[k], getattr(ref, name)[0, 0], atol=1e-4), (t, name)
            assert torch.allclose(p.maps[k], ref.maps[0, 0], atol=1e-4)
    # a model that sees later frames is scored by windows at stride 1, as at any other
    recon = OCRGANVideo(tiny_cfg(objective="reconstruct")).eval()
    assert len(list(iter_clip_scores(recon, frames(20, recon.cfg), stride=1))) == 20


def test_postprocessing_smooths_causally_and_thresholds():
    model = OCRGANVideo(tiny_cfg(score_smoothing=0.5))
    model.set_score_statistics(mean=1.0, std=2.0, threshold=1.0)
    out = postprocess(model, torch.tensor([1.0, 5.0, 5.0]))
    assert out.score.tolist() == [1.0, 3.0, 4.0]
    assert out.normalised.tolist() == [0.0, 1.0, 1.5]
    assert out.anomaly.tolist() == [False, False, True]


def test_empty_sequence():
    model = OCRGANVideo(tiny_cfg()).eval()
    assert len(score_clip(model, []).raw) == 0


@pytest.mark.parametrize(("flags", "runs"), [
    ([], []),
    ([0, 0, 0], []),
    ([1, 1, 1], [(0, 3)]),
    ([0, 1, 1, 0, 1, 0, 0, 1, 1], [(1, 3), (4, 5), (7, 9)]),
])
def test_anomalous_runs_are_half_open_and_take_any_flags(flags, runs):
    assert anomalous_runs(flags) == runs
    assert anomalous_runs(torch.tensor(flags, dtype=torch.bool)) == runs
    assert anomalous_runs(f > 0 for f in flags) == runs
