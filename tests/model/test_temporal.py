import pytest
import torch

from model.temporal import (
    AdaptiveTemporalPooling,
    BasicTemporalAttention,
    EnhancedTemporalFusion,
    HierarchicalTemporalAttention,
    MultiScaleTemporalAttention,
    TemporalFeatureFusion,
    make_temporal,
    skip_plan,
    temporal_mask,
)
from model.temporal.attention import NoTemporal, PooledTemporal, fit_heads

MODULES = {
    "basic": lambda c: BasicTemporalAttention(c, 4, 16, causal=True),
    "multiscale": lambda c: MultiScaleTemporalAttention(c, 4, 16, causal=True),
    "hierarchical": lambda c: HierarchicalTemporalAttention(c, 4, 16, causal=True),
    "adaptive": lambda c: AdaptiveTemporalPooling(c, 16, causal=True),
    "enhanced": lambda c: EnhancedTemporalFusion(c, 4, 16, causal=True),
    "pooled": lambda c: PooledTemporal(BasicTemporalAttention(c, 4, 16, causal=True), 2),
}


def test_masks():
    m = temporal_mask(5, causal=True)
    assert torch.equal(m, torch.ones(5, 5, dtype=torch.bool).tril())
    d2 = temporal_mask(5, causal=True, dilation=2)
    assert d2[4].tolist() == [True, False, True, False, True]
    w = temporal_mask(6, causal=False, window=2)
    assert w[3].tolist() == [False, False, True, True, True, False]
    assert temporal_mask(16, causal=True, window=4, dilation=4).diagonal().all()


def test_heads_fit_the_channels():
    assert fit_heads(16, 4) == 1 and fit_heads(64, 4) == 4 and fit_heads(100, 4) == 4 and fit_heads(48, 4) == 3


@pytest.mark.parametrize("name", sorted(MODULES))
def test_shape_and_causality(name):
    module = MODULES[name](32).eval()
    x = torch.randn(2, 16, 32, 4, 6)
    y = module(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[:, 9:] = torch.randn_like(x2[:, 9:])  # change the future of frame 8
    y2 = module(x2)
    assert torch.allclose(y[:, :9], y2[:, :9], atol=1e-5), "a causal module must not see later frames"
    assert not torch.allclose(y[:, 9:], y2[:, 9:])


def test_non_causal_attention_sees_the_future():
    module = BasicTemporalAttention(16, 4, 8, causal=False).eval()
    x = torch.randn(1, 8, 16, 2, 2)
    x2 = x.clone()
    x2[:, -1] = torch.randn_like(x2[:, -1])
    assert not torch.allclose(module(x)[:, 0], module(x2)[:, 0])


def test_attention_probabilities_are_recorded_while_training_only():
    module = HierarchicalTemporalAttention(16, 4, 8, causal=True)
    module(torch.randn(1, 8, 16, 2, 2))
    maps = module.attention_maps()
    assert len(maps) == 2 and all(torch.allclose(m.sum(-1), torch.ones(())) for m in maps)
    assert maps[0][..., 0, 1:].abs().max() == 0  # causal: the first frame attends only itself
    module.eval()
    module(torch.randn(1, 8, 16, 2, 2))
    assert module.attention_maps() == []


def test_input_fusion_adds_causal_motion_channels():
    fusion = TemporalFeatureFusion(3, 16, causal=True)
    x = torch.randn(2, 16, 3, 5, 7)
    y = fusion(x)
    assert y.shape == (2, 16, 9, 5, 7) and torch.equal(y[:, :, :3], x)
    x2 = x.clone()
    x2[:, 10] += 1
    assert torch.allclose(fusion(x2)[:, :10], y[:, :10])
    # the banded convolution equals the direct sum over the k previous frames
    idx = (torch.arange(16)[:, None] + torch.arange(3) - 2).clamp(0, 15)
    ref = torch.einsum("btkchw,ekc->btehw", x[:, idx], fusion.weight) + fusion.bias[:, None, None]
    assert torch.allclose(y[:, :, 3:], ref, atol=1e-5)


def test_plans():
    assert skip_plan("full", 5) == ["multiscale", "hierarchical", "hierarchical", "hierarchical", "enhanced"]
    assert skip_plan("coarse", 5) == ["none", "hierarchical", "hierarchical", "hierarchical", "enhanced"]
    assert skip_plan("basic", 3) == ["basic"] * 3
    assert isinstance(make_temporal("none", 8, 4, 16, True), NoTemporal)
    assert isinstance(make_temporal("basic", 8, 4, 16, True, grid=(64, 96)), PooledTemporal)
    assert isinstance(make_temporal("basic", 8, 4, 16, True, grid=(32, 48)), BasicTemporalAttention)
    with pytest.raises(ValueError):
        make_temporal("lstm", 8, 4, 16, True)
