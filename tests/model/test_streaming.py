"""Frame-by-frame scoring from cached features equals scoring the full window that ends at each frame."""

import pytest
import torch

from model import OCRGANConfig, OCRGANVideo
from model.streaming import FrameStream, score_frames
from service.settings import DEFAULT_CHECKPOINT
from tests.model.helpers import tiny_cfg

CUES = ("raw", "rec", "feat", "app", "motion", "speed", "dir", "mem", "grey")


def reference(model: OCRGANVideo, frames: torch.Tensor, t: int):
    """The window of T frames ending at frame t, each given its true past (frame 0 stands before the start)."""
    T, c = model.cfg.num_frames, model.context_frames
    idx = [max(0, j) for j in range(t - T + 1 - c, t + 1)]
    return model.score_detailed(frames[idx][None], positions=slice(T - 1, T), context=c, heatmap=True)


def stream(model: OCRGANVideo, frames: torch.Tensor, chunks=(1, 3, 2, 5)) -> list:
    """Per frame (Scored, position in it), fed in chunks of varying size."""
    state, out, a, k = FrameStream(model), [], 0, 0
    while a < len(frames):
        n = chunks[k % len(chunks)]
        s = score_frames(model, [(state, frames[a:a + n])], heatmap=True)[0]
        out += [(s, j) for j in range(s.raw.shape[1])]
        a, k = a + n, k + 1
    assert state.count == len(frames)
    return out


def assert_equal(model: OCRGANVideo, frames: torch.Tensor, tol: float = 1e-4) -> None:
    for t, (s, j) in enumerate(stream(model, frames)):
        ref = reference(model, frames, t)
        for name in CUES:
            r, g = getattr(ref, name), getattr(s, name)
            assert (r is None) == (g is None), name
            if r is not None:
                assert torch.allclose(g[0, j], r[0, 0], rtol=tol, atol=tol), (t, name, float(g[0, j]), float(r[0, 0]))
        assert torch.allclose(s.maps[0, j], ref.maps[0, 0], rtol=tol, atol=tol)


def clip(cfg: OCRGANConfig, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, cfg.in_channels, *cfg.hw, generator=g) * 2 - 1
    if cfg.motion:
        x[:, cfg.nc:] *= 0.5  # pixels per frame
    return x


@pytest.mark.parametrize("temporal", ["none", "basic", "multiscale", "hierarchical", "adaptive", "full", "coarse"])
@pytest.mark.parametrize("objective", ["predict", "mixed"])
def test_every_temporal_variant_streams_exactly(temporal, objective):
    torch.manual_seed(1)
    cfg = tiny_cfg(temporal=temporal, objective=objective, motion=True, isize=[32, 48], memory_size=16)
    model = OCRGANVideo(cfg).eval()
    model.set_memory(torch.randn(64, model.memory.shape[1]))
    assert_equal(model, clip(cfg, 2 * cfg.num_frames + 3))


def test_the_grey_memory_streams_exactly():
    torch.manual_seed(3)
    cfg = tiny_cfg(objective="mixed", motion=True, isize=[32, 48], memory_size=16, memory_grey=True, score_patch=8)
    model = OCRGANVideo(cfg).eval()
    model.set_memory(torch.randn(64, model.memory.shape[1]))
    assert_equal(model, clip(cfg, 2 * cfg.num_frames + 3))


def test_the_motion_memory_streams_exactly():
    torch.manual_seed(5)
    cfg = tiny_cfg(objective="mixed", motion=True, isize=[32, 48], direction_memory=32, speed_classes=3,
                   score_patch=8, w_score_dir=1.0)
    model = OCRGANVideo(cfg).eval()
    model.set_direction_prior(torch.randn(20, 2, *cfg.hw))
    assert_equal(model, clip(cfg, 2 * cfg.num_frames + 3))


def test_the_shipped_checkpoint_streams_exactly():
    from model import load_checkpoint

    model = load_checkpoint(DEFAULT_CHECKPOINT)[0].eval()
    assert model.context_frames == 3  # the previous frame's flow, and the input fusion's two frames before
    assert_equal(model, clip(model.cfg, model.cfg.num_frames + 6))


def test_sequences_batched_in_one_pass_score_as_alone():
    torch.manual_seed(2)
    cfg = tiny_cfg(motion=True, objective="mixed", isize=[32, 48])
    model = OCRGANVideo(cfg).eval()
    a, b = clip(cfg, 12), clip(cfg, 12).flip(0)
    alone = [torch.cat([s.raw for s, _ in stream(model, x, chunks=(1,))][::1], 1) for x in (a, b)]
    sa, sb = FrameStream(model), FrameStream(model)
    together = [[], []]
    for i in range(0, 12, 3):  # the two cameras in one pass, with different numbers of new frames
        ra, rb = score_frames(model, [(sa, a[i:i + 3]), (sb, b[i:i + 1])])
        together[0].append(ra.raw)
        together[1].append(rb.raw)
        rb2 = score_frames(model, [(sb, b[i + 1:i + 3])])[0]
        together[1].append(rb2.raw)
    for solo, both in zip(alone, together, strict=True):
        assert torch.allclose(torch.cat(both, 1), solo, atol=1e-5)


def test_reset_starts_a_new_sequence():
    cfg = tiny_cfg(motion=True, objective="mixed", isize=[32, 48])
    model = OCRGANVideo(cfg).eval()
    x = clip(cfg, 10)
    state = FrameStream(model)
    score_frames(model, [(state, x[:6])])
    state.reset()
    after = score_frames(model, [(state, x[6:])])[0].raw
    fresh = score_frames(model, [(FrameStream(model), x[6:])])[0].raw
    assert torch.equal(after, fresh)


def test_a_model_that_sees_later_frames_cannot_stream():
    model = OCRGANVideo(tiny_cfg(objective="reconstruct"))
    with pytest.raises(ValueError, match="later frames"):
        FrameStream(model)


@pytest.mark.parametrize("temporal", ["basic", "hierarchical", "adaptive", "full"])
@pytest.mark.parametrize("objective", ["predict", "reconstruct"])
def test_scoring_the_last_frames_of_a_window_equals_scoring_all_of_it(temporal, objective):
    torch.manual_seed(3)
    cfg = tiny_cfg(temporal=temporal, objective=objective)
    model = OCRGANVideo(cfg).eval()
    x = torch.rand(2, cfg.num_frames, cfg.in_channels, *cfg.hw) * 2 - 1
    for k in (1, 3, cfg.num_frames - 1):
        part = model.score_detailed(x, slice(cfg.num_frames - k, None))
        full = model.score_detailed(x)
        assert torch.allclose(part.raw, full.raw[:, -k:], atol=1e-5)


def test_a_stream_keeps_the_features_only_of_levels_that_read_earlier_frames():
    from model import load_checkpoint
    from model.streaming import KEYS, VALUES, frame_spans
    from model.temporal import TemporalSelfAttention
    from model.temporal.hierarchical import HierarchicalTemporalAttention

    model = load_checkpoint(DEFAULT_CHECKPOINT)[0].eval()
    spans = frame_spans(model)
    levels = {k: v for k, v in spans.items() if isinstance(k, int)}
    assert levels == {len(model.generator.temporal) - 1: 3}  # the bottleneck's temporal convolution's 3 frames
    blocks = [k for k in spans if not isinstance(k, int)]  # each block's keys and values, apart
    sequence = {m.seq_attn for m in model.generator.modules() if isinstance(m, HierarchicalTemporalAttention)}
    assert sequence  # the 4-frame sequence level of the hierarchical attention keeps its 4 frames' only
    assert blocks and all(isinstance(b, TemporalSelfAttention) and part in (KEYS, VALUES)
                          and spans[b, part] == (4 if b in sequence else model.cfg.num_frames) for b, part in blocks)
    assert set(blocks) == {(b, part) for b, _ in blocks for part in (KEYS, VALUES)}
    state = FrameStream(model)
    score_frames(model, [(state, clip(model.cfg, 2))])
    assert {k: state.past(k).shape[0] for k in spans} == {k: s - 1 for k, s in spans.items()}
