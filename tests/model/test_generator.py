import pytest
import torch

from model import OCRGANVideo
from model import losses as L
from model.config import TEMPORAL_VARIANTS
from tests.model.helpers import tiny_cfg


@pytest.mark.parametrize("size", [64, 128, 256, (64, 96)])
@pytest.mark.parametrize("variant", TEMPORAL_VARIANTS)
def test_shapes_for_every_size_and_variant(size, variant):
    cfg = tiny_cfg(isize=size, temporal=variant, num_frames=16, nc=3, ngf=4, ndf=4)
    model = OCRGANVideo(cfg).eval()
    clip = torch.rand(1, 16, 3, *cfg.hw) * 2 - 1
    with torch.no_grad():
        gen = model(clip)
    assert gen.fake.shape == gen.fake_lap.shape == gen.fake_res.shape == clip.shape
    assert torch.allclose(gen.fake, gen.fake_lap + gen.fake_res)
    assert model.score(clip).shape == (1, 16)
    assert model.anomaly_map(clip).shape == (1, 16, *cfg.hw)
    assert model.score(clip, positions=slice(12, 16)).shape == (1, 4)


@pytest.mark.parametrize("variant", TEMPORAL_VARIANTS)
def test_prediction_never_sees_the_frame_it_predicts(variant):
    cfg = tiny_cfg(temporal=variant)
    model = OCRGANVideo(cfg).eval()
    clip = torch.rand(1, cfg.num_frames, 1, *cfg.hw) * 2 - 1
    t = 5
    changed = clip.clone()
    changed[:, t:] = torch.rand_like(changed[:, t:])
    with torch.no_grad():
        a, b = model(clip).fake, model(changed).fake
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-5)  # frame t predicted from frames < t
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


def test_reconstruction_objective_uses_the_frame_itself():
    model = OCRGANVideo(tiny_cfg(objective="reconstruct", temporal="none")).eval()
    clip = torch.rand(1, 8, 1, 32, 32) * 2 - 1
    changed = clip.clone()
    changed[:, 3] = 0
    with torch.no_grad():
        assert not torch.allclose(model(clip).fake[:, 3], model(changed).fake[:, 3])


def test_decoding_a_subset_of_positions_matches_decoding_all():
    model = OCRGANVideo(tiny_cfg()).eval()
    clip = torch.rand(2, 8, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        full = model(clip).fake
        part = model(clip, positions=slice(4, 8)).fake
    assert torch.allclose(full[:, 4:], part, atol=1e-5)


@pytest.mark.parametrize("variant", ["full", "basic", "multiscale", "hierarchical", "adaptive", "none"])
def test_gradients_reach_every_parameter(variant):
    cfg = tiny_cfg(temporal=variant, isize=(64, 96))  # large enough for a pooled temporal level
    model = OCRGANVideo(cfg).train()
    clip = torch.rand(2, cfg.num_frames, 1, *cfg.hw) * 2 - 1
    gen = model(clip)
    logits, _feat, attended = model.discriminator(gen.fake)
    loss = (gen.fake - gen.target).abs().mean() + logits.mean() + attended.pow(2).mean()
    loss.backward()
    # a bias added to every frame's relevance before their softmax shifts them all alike: its gradient is zero in
    # exact arithmetic, and rounding leaves it zero or not by chance
    shift_invariant = {n for n, _ in model.named_parameters() if n.endswith("relevance.bias")}
    dead = [n for n, p in model.named_parameters()
            if n not in shift_invariant and (p.grad is None or p.grad.abs().max() == 0)]
    assert dead == []


def test_residual_prediction_starts_as_the_previous_frame():
    model = OCRGANVideo(tiny_cfg()).eval()
    clip = torch.rand(2, 8, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        gen = model(clip)
    assert (gen.fake[:, 1:] - clip[:, :-1]).abs().max() < 0.05  # untrained: "nothing moves"
    assert torch.allclose(gen.fake, gen.fake_lap + gen.fake_res)
    plain = OCRGANVideo(tiny_cfg(residual=False)).eval()
    with torch.no_grad():
        assert (plain(clip).fake[:, 1:] - clip[:, :-1]).abs().max() > 0.5


def _motion_clip(cfg, b: int = 2) -> torch.Tensor:
    app = torch.rand(b, cfg.num_frames, cfg.nc, *cfg.hw) * 2 - 1
    flow = torch.randn(b, cfg.num_frames, 2, *cfg.hw)
    return torch.cat([app, flow], dim=2)


@pytest.mark.parametrize("variant", ["full", "none"])
def test_the_motion_band_is_a_third_stream_predicted_from_the_past(variant):
    cfg = tiny_cfg(temporal=variant, motion=True, residual=False, skip_cut=1)
    model = OCRGANVideo(cfg).eval()
    assert len(model.generator.enc) == 3 and model.generator.select[0].heads.__len__() == 3
    clip = _motion_clip(cfg)
    t = 5
    changed = clip.clone()
    changed[:, t:] = torch.randn_like(changed[:, t:])
    with torch.no_grad():
        a, b = model(clip), model(changed)
    assert a.fake_flow.shape == (2, cfg.num_frames, 2, *cfg.hw) and torch.equal(a.target_flow, clip[:, :, 1:])
    assert torch.allclose(a.fake_flow[:, : t + 1], b.fake_flow[:, : t + 1], atol=1e-5)  # frame t from frames < t
    assert torch.allclose(a.fake[:, : t + 1], b.fake[:, : t + 1], atol=1e-5)
    assert not torch.allclose(a.fake_flow[:, t + 1:], b.fake_flow[:, t + 1:])


def test_a_predicted_flow_is_never_faster_than_the_bound():
    cfg = tiny_cfg(motion=True)
    model = OCRGANVideo(cfg).eval()
    model.generator.flow_bound.fill_(0.3)
    with torch.no_grad():
        model.generator.head.bias.fill_(50.0)  # whatever the network says ...
        speed = model(_motion_clip(cfg) * 100).fake_flow.norm(dim=2)
    assert speed.max() <= 0.3 + 1e-6 and speed.min() > 0.29  # ... it stays below the normal speed


def test_skip_cut_leaves_out_the_finest_skips():
    full = OCRGANVideo(tiny_cfg(motion=True)).generator
    cut = OCRGANVideo(tiny_cfg(motion=True, skip_cut=1)).generator
    assert cut.use_skip[0] is False and all(cut.use_skip[1:])
    assert cut.head.in_channels == full.head.in_channels // 2
    with pytest.raises(ValueError, match="skip_cut"):
        tiny_cfg(skip_cut=9)


def test_mixed_reconstructs_appearance_and_predicts_flow_causally():
    cfg = tiny_cfg(motion=True, objective="mixed", residual=False, skip_cut=1)
    model = OCRGANVideo(cfg).eval()
    clip = _motion_clip(cfg, 1)
    t = 5
    later = clip.clone()
    later[:, t + 1:] = torch.randn_like(later[:, t + 1:])  # the future
    own_flow = clip.clone()
    own_flow[:, t, 1:] = torch.randn_like(own_flow[:, t, 1:])  # frame t's own flow
    own_look = clip.clone()
    own_look[:, t, :1] = torch.rand_like(own_look[:, t, :1])  # frame t's own appearance
    with torch.no_grad():
        a, b, c, d = (model(x) for x in (clip, later, own_flow, own_look))
    assert torch.allclose(a.fake[:, : t + 1], b.fake[:, : t + 1], atol=1e-5)  # nothing from the future
    assert torch.allclose(a.fake_flow[:, : t + 1], b.fake_flow[:, : t + 1], atol=1e-5)
    assert torch.allclose(a.fake_flow[:, t], c.fake_flow[:, t], atol=1e-5)  # its flow is predicted, not seen
    assert not torch.allclose(a.fake[:, t], d.fake[:, t])  # its appearance is reconstructed from itself


def test_levels_no_one_reads_skip_their_temporal_modules_and_scores_are_unchanged():
    torch.manual_seed(0)
    cfg = tiny_cfg(isize=(32, 48), motion=True, objective="mixed", residual=False, skip_cut=2, memory_size=64)
    model = OCRGANVideo(cfg).eval()
    assert model.memory_level == 1 and model.generator.idle_levels == {0}  # cut, and not the memory's
    assert OCRGANVideo(cfg.replace(memory_size=0)).generator.idle_levels == {0, 1}
    assert OCRGANVideo(cfg.replace(skip_cut=0)).generator.idle_levels == frozenset()
    clip = torch.rand(2, cfg.num_frames, cfg.in_channels, *cfg.hw) * 2 - 1
    with torch.no_grad():
        model.set_memory(model(clip).features.flatten(0, -2))
    calls = []
    model.generator.temporal[0].register_forward_hook(lambda *_: calls.append(1))
    fast = model.score_detailed(clip, heatmap=True)
    assert not calls  # the finest level's temporal module did not run
    model.generator.idle_levels = frozenset()
    full = model.score_detailed(clip, heatmap=True)
    assert calls
    for name in ("raw", "app", "motion", "speed", "mem", "feat", "maps"):
        assert torch.allclose(getattr(fast, name), getattr(full, name), atol=1e-6), name
    model.train()
    model(clip)  # every level runs, level 0 records its attention
    stale = model.generator.temporal[0].attention_maps()
    assert stale
    model.generator.idle_levels = frozenset({0})
    calls.clear()
    out = model(clip)
    assert not calls  # nor in training: its output would reach no loss but the attention regulariser
    maps = model.attention_maps()  # the regulariser reads the levels that ran, not level 0's last maps
    assert maps and not any(m is a for m in maps for a in stale)
    (out.fake.square().mean() + L.attention_regularisation(maps)).backward()
    assert all(p.grad is None for p in model.generator.temporal[0].parameters())
    assert any(p.grad is not None for p in model.generator.temporal[1].parameters())
